"""Progress as events: the engine says what it is doing with ``ProgressEvent``s, each front end
renders them. ``ConsoleProgress`` draws tqdm bars and lines on stderr (the CLI); the app draws
``st.status`` / ``st.progress`` from the same events (``app_pages/_ui.py``). Nothing reads the
message text to learn what happened: the phase, the row and the counts say it.

Phases (``PHASES``) and what their events carry:

* ``audit``: the split's protocol audit (``core.evaluation.experiment.protocol_audit``);
  ``warning`` when a held-out pair is also in train or validation, or unreachable.
* ``fit``: a row starts fitting.
* ``tune``: picking hyperparameters on validation: counted events (``done`` of ``total``
  trials) and one uncounted event per trial with its validation score.
* ``embed``: encoding inputs into the embedding cache (``done`` of ``total`` distinct inputs;
  ``message`` names the job, e.g. ``text:minilm texts``).
* ``train``: training an ``align:`` encoder's projection heads (``done`` of ``total`` epochs;
  ``message`` names the towers and the number of pairs).
* ``evaluate``: scoring the evaluated users (``done`` of ``total`` users).
* ``done``: a row finished (``message``: its fit and evaluation times).
* ``skipped``: a row could not run (``message``: the reason).
* ``wait``: another session is computing this row (the app's run store); waiting for it.
* ``note``: anything else a technique reports (e.g. the hybrid's blend choice).

A counted event (``total`` set) is a step of one job: ``message`` names the job and stays the same
from ``done = 0`` to ``done = total``; what happens along the way is sent as uncounted events.
``technique`` is the row label (``TechniqueSpec.label``); techniques leave it ``None`` and the
experiment runner fills in the row it is fitting.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TextIO

__all__ = ["PHASES", "ConsoleProgress", "Progress", "ProgressEvent", "resolve_progress",
           "stamped"]

PHASES = ("audit", "fit", "tune", "embed", "train", "evaluate", "done", "skipped", "wait",
          "note")


@dataclass(frozen=True)
class ProgressEvent:
    """One thing the engine reports (see the module docstring for the phases).

    Attributes:
        phase: one of ``PHASES``.
        technique: the row label the event is about, or ``None`` (the run as a whole).
        done, total: how far a counted job is (both ``None`` for an uncounted event).
        message: one human sentence; for a counted event, the name of the job.
        warning: the sentence is a warning the user should see (e.g. the protocol audit).
    """

    phase: str
    technique: str | None = None
    done: int | None = None
    total: int | None = None
    message: str = ""
    warning: bool = False

    @property
    def counted(self) -> bool:
        return self.total is not None and self.done is not None

    @property
    def fraction(self) -> float | None:
        """``done / total`` in [0, 1] for a counted event, else ``None``."""
        if not self.counted:
            return None
        return min(1.0, max(0.0, float(self.done) / max(1, int(self.total))))

    def line(self) -> str:
        """The event as one line of text: ``ROW: [skipped: ]MESSAGE[ DONE/TOTAL]``."""
        head = f"{self.technique}: " if self.technique else ""
        body = ("warning: " if self.warning else "") + (
            "skipped: " if self.phase == "skipped" else "") + (self.message or self.phase)
        count = f" {self.done:,}/{self.total:,}" if self.counted else ""
        return head + body + count


#: What the engine calls with each event.
Progress = Callable[[ProgressEvent], None]


def stamped(progress: Progress | None, technique: Callable[[], str | None]) -> Progress | None:
    """``progress`` with ``technique()`` (the row being fitted) filled into events that name
    no row; ``None`` stays ``None``."""
    if progress is None:
        return None

    def emit(event: ProgressEvent) -> None:
        row = technique()
        progress(event if event.technique is not None or row is None
                 else replace(event, technique=row))

    return emit


def resolve_progress(progress: bool | Progress | None) -> Progress | None:
    """``True`` -> a ``ConsoleProgress`` (bars and lines on stderr); a callable as is; anything
    else (``None``, ``False``) -> ``None`` (silence)."""
    if progress is True:
        return ConsoleProgress()
    return progress if callable(progress) else None


class ConsoleProgress:
    """Renders events on a terminal: one tqdm bar per counted job (keyed by phase, row and job
    name; closed when ``done`` reaches ``total`` or the row ends), a line (``ProgressEvent.line``)
    for every uncounted event with something to say."""

    #: tqdm options per phase (unit, whether the finished bar stays, when it appears)
    STYLE: dict[str, dict[str, Any]] = {
        "embed": {"unit": "item", "leave": True, "dynamic_ncols": True, "smoothing": 0.1},
        "evaluate": {"unit": "user", "leave": False, "mininterval": 0.5, "delay": 2.0},
        "tune": {"unit": "trial", "leave": False, "delay": 2.0},
        "train": {"unit": "epoch", "leave": True},
    }

    def __init__(self, file: TextIO | None = None) -> None:
        self.file = file
        self.bars: dict[tuple[str, str | None, str], Any] = {}

    def __call__(self, event: ProgressEvent) -> None:
        from tqdm.auto import tqdm

        out = self.file or sys.stderr
        if event.counted:
            key = (event.phase, event.technique, event.message)
            bar = self.bars.get(key)
            if bar is None:
                desc = (f"{event.technique}: " if event.technique else "") + event.message
                bar = self.bars[key] = tqdm(total=int(event.total), desc=desc, file=out,
                                            **self.STYLE.get(event.phase, {"leave": False}))
            bar.update(int(event.done) - bar.n)
            if event.done >= event.total:
                bar.close()
                del self.bars[key]
            return
        if event.phase in ("done", "skipped"):  # the row ended: close what it left open
            for key in [k for k in self.bars if k[1] == event.technique]:
                self.bars.pop(key).close()
        if event.message:
            tqdm.write(event.line(), file=out)
