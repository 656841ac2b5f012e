"""Computing the missing runs of a comparison, each once however many sessions ask for it.

``compute_once`` has the run store compute the missing runs under their compute locks
(``RunStore.compute_once``: the locks ``python -m core evaluate`` takes too), with
``core.evaluation.experiment.run_experiment``, and stores one run per row with
``core.evaluation.recorded.record_runs``, as the CLI does. A session that finds a run locked waits
for the other (holding nothing, so no deadlock), then reloads what it stored, computing the run
itself only when the other failed, skipped it or took longer than ``RunStore.wait_timeout``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.progress import Progress, ProgressEvent

if TYPE_CHECKING:
    from core.lab.data import LabData
    from core.store.runs import RunIdentity, RunStore

__all__ = ["Progress", "compute_once"]


def compute_once(data: LabData, cache_root: Path, store: RunStore, split: str, seed: int,
                 missing: Sequence[str], encoders: dict[str, str | None], options: dict[str, Any],
                 ks: Sequence[int], runs: dict[str, RunIdentity], skey: str,
                 progress: Progress | None) -> tuple[list[str], dict[str, str], list[str]]:
    """Compute and store the ``missing`` runs (technique names; ``runs`` maps each to its
    ``RunIdentity``, ``skey`` is the split's key), each under its compute lock, so that concurrent
    sessions compute a run once. Returns (computed, skipped with reasons, waited for another
    session).
    """
    def waiting(technique: str, seconds: float) -> None:
        tail = f" ({seconds:.0f} s)" if seconds >= 1 else ""
        progress(ProgressEvent("wait", technique,
                               message=f"another session is computing {technique}; "
                                       f"waiting{tail}"))

    def compute(todo: list[str]) -> tuple[list[str], dict[str, str]]:
        return _compute(data, cache_root, store, split, seed, todo, encoders, options, ks, runs,
                        skey, progress)

    return store.compute_once({t: runs[t].key for t in missing}, compute, ks,
                              on_wait=waiting if progress is not None else None)


def _compute(data, cache_root, store, split, seed, missing, encoders, options, ks, runs, skey,
             progress) -> tuple[list[str], dict[str, str]]:
    from core.evaluation.experiment import run_experiment
    from core.evaluation.recorded import record_runs
    from core.store.runs import STANDARD_KS

    opts = {k: v for k, v in options.items() if k != "tune"}
    result = run_experiment(
        data.ds, split, list(missing), sorted(set(ks) | set(STANDARD_KS)), seed, cache_root,
        encoders={r: s for r, s in encoders.items() if s}, options=opts,
        progress=progress, tune=bool(options.get("tune", True)),
    )
    return record_runs(store, {t: runs[t] for t in missing}, result, skey)
