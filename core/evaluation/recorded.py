"""Experiments recorded in the run store (``core.store.runs``), the one home of every run.

``evaluate_recorded`` is what ``python -m core evaluate`` runs: a row whose run is stored (for
these data, split, seed, options and encoder ids, at the cut-offs asked for) is reused, the others
are computed once (under the store's compute locks, which the app's sessions take too) and stored,
one run per row, and the result is read back from the store, so a reused run and a fresh one print
the same. ``record_runs`` stores the rows of one ``run_experiment`` result (the app's compute path
stores through it as well); ``stored_result`` reads stored runs back as an ``ExperimentResult``,
which ``save_run`` exports (``--save-run``, ``python -m core runs export``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from core.errors import LabError
from core.evaluation.experiment import ExperimentResult
from core.evaluation.metrics import METRICS

if TYPE_CHECKING:
    from core.data.dataset import Dataset
    from core.progress import Progress
    from core.recommenders.spec import TechniqueSpec
    from core.store.runs import RunIdentity, RunStore

#: ``ExperimentResult.meta`` fields keyed by row label: a stored run keeps its own entry.
PER_ROW_META = ("fallbacks", "labels", "rows")
#: ``meta`` fields a stored run does not keep: per-row ones (above), the request's own (encoders,
#: cut-offs, row order) and what ``presets.finish_run`` derives again when reporting.
#: Seconds between two ``wait`` events while another session computes a run.
WAIT_EVERY = 30.0
_NOT_SHARED = (*PER_ROW_META, "techniques", "audit", "encoders", "ks", "encoder_ids",
               "precision", "filters", "bootstrap", "runs", "stored")


@dataclass
class Recorded:
    """What ``evaluate_recorded`` did: the result read back from the store, the run key of every
    row, and which rows were computed now, reused (``waited``: another session was computing
    them) or skipped (in ``result.skipped``)."""

    result: ExperimentResult
    keys: dict[str, str]
    computed: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    waited: list[str] = field(default_factory=list)


def record_runs(store: RunStore, runs: Mapping[str, RunIdentity], result: ExperimentResult,
                split_key: str) -> tuple[list[str], dict[str, str]]:
    """Store each row of ``result`` named in ``runs`` (row label -> ``RunIdentity``) as one run.

    A run keeps the row's metrics, per-user values and top-k lists, its params and timings, and
    the run details of ``result.meta`` (split, counts, options, the protocol audit with the row's
    cold users, the row's fallback and title); the split's truth and item popularity are stored
    once per ``split_key``. Returns (stored labels, skipped label -> reason): the result's skipped
    rows, and rows that produced no metrics.
    """
    skipped = {str(r.technique): str(r.reason) for r in result.skipped.itertuples()}
    meta = result.meta
    shared = {k: v for k, v in meta.items() if k not in _NOT_SHARED}
    audit = dict(meta.get("audit") or {})
    cold = dict(audit.pop("cold_users", None) or {})
    stored: list[str] = []
    for label, run in runs.items():
        if label in skipped:
            continue
        metrics = result.metrics[result.metrics["technique"] == label]
        if metrics.empty:
            skipped[label] = "produced no results"
            continue
        per_row = {f: meta[f][label] for f in PER_ROW_META
                   if isinstance(meta.get(f), dict) and label in meta[f]}
        per_row["cold_users"] = result.cold_users.get(label, cold.get(label))
        info = {**shared, "audit": {**audit, "cold_users": cold.get(label)}, "per_row": per_row}
        store.save(
            run, split_key_=split_key, ks=meta.get("ks") or sorted(set(metrics["k"])),
            metrics=metrics, per_user=_rows_of(result.per_user, label),
            recs=_rows_of(result.recs, label), params=result.params.get(label, {}),
            timings=result.timings.get(label, {}), info=info, truth=result.truth,
            items=result.items,
        )
        stored.append(label)
    return stored, skipped


def _rows_of(frame: pd.DataFrame, label: str) -> pd.DataFrame:
    return frame[frame["technique"] == label] if len(frame) else frame


def stored_result(store: RunStore, keys: Mapping[str, str],
                  ks: Sequence[int] | None = None) -> ExperimentResult | None:
    """The stored runs ``keys`` (row label -> run key, in row order) as one ``ExperimentResult``
    keyed by those labels, at cut-offs ``ks`` (default: those every run has); ``None`` when none
    of them is stored. ``meta["runs"]`` names the run key of each row and ``meta["stored"]`` when
    it was stored; ``skipped`` is empty and ``models`` too (a stored run keeps no fitted model).
    """
    info = store.runs_info(keys)
    labels = [label for label, key in keys.items() if key in info]
    if not labels:
        return None
    keys = {label: keys[label] for label in labels}
    runs = {label: info[key] for label, key in keys.items()}
    if ks is None:
        ks = sorted(set.intersection(*({int(k) for k in r["ks"]} for r in runs.values())))
    ks = sorted({int(k) for k in ks})
    stored = store.load(keys, ks=ks)
    order = {label: i for i, label in enumerate(labels)}
    metric_order = {m: i for i, m in enumerate(METRICS)}
    metrics = stored.metrics[stored.metrics["k"].isin(ks)]
    metrics = metrics.assign(
        _r=metrics["technique"].map(order), _m=metrics["metric"].map(metric_order)
    ).sort_values(["_r", "_m", "k"], kind="stable").drop(columns=["_r", "_m"])
    per_user = stored.per_user[stored.per_user["k"].isin(ks)]
    recs = stored.recs[stored.recs["rank"] <= max(ks)]
    recs = recs.assign(_r=recs["technique"].map(order)).sort_values(
        ["_r", "user_id", "rank"], kind="stable").drop(columns="_r")

    first = runs[labels[0]]
    meta: dict[str, Any] = {k: v for k, v in first["info"].items() if k not in ("per_row",)}
    meta["seed"] = int(first["seed"])
    meta["ks"] = ks
    encoders: dict[str, str] = {}
    for r in runs.values():
        encoders.update(r["encoders"])
    meta["encoders"] = dict(sorted(encoders.items()))
    per_row = {label: r["info"].get("per_row", {}) for label, r in runs.items()}
    for name in PER_ROW_META:
        meta[name] = {label: p[name] for label, p in per_row.items() if name in p}
    meta["techniques"] = labels
    cold = {label: p.get("cold_users") for label, p in per_row.items()}
    meta["audit"] = {**dict(meta.get("audit") or {}), "cold_users": cold}
    meta["runs"] = dict(keys)
    meta["stored"] = {label: time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(r["created"]))
                      for label, r in runs.items()}
    return ExperimentResult(
        metrics=metrics.reset_index(drop=True), per_user=per_user.reset_index(drop=True),
        recs=recs.reset_index(drop=True), truth=stored.truth, skipped=_skipped_frame({}),
        timings={label: r["timings"] for label, r in runs.items()},
        params={label: r["params"] for label, r in runs.items()},
        cold_users={label: c for label, c in cold.items() if c is not None},
        items=stored.items, meta=meta,
    )


def _skipped_frame(skipped: Mapping[str, str]) -> pd.DataFrame:
    return pd.DataFrame([{"technique": t, "reason": r} for t, r in skipped.items()],
                        columns=["technique", "reason"])


@dataclass
class Computation:
    """What ``compute_missing`` did: rows computed and stored now, rows skipped (with reasons),
    rows another session computed while this one waited, and this session's last
    ``run_experiment`` result (None when it computed nothing)."""

    computed: list[str]
    skipped: dict[str, str]
    waited: list[str]
    last: ExperimentResult | None = None


def compute_missing(
    ds: Dataset,
    store: RunStore,
    runs: Mapping[str, RunIdentity],
    missing: Sequence[str],
    ks: Sequence[int],
    split_key: str,
    cache_root: str | Path,
    encoders: Mapping[str, str | None],
    options: Mapping[str, Any],
    tune: bool,
    progress: Progress | None,
) -> Computation:
    """Compute and store the runs of the rows ``missing`` (labels of ``runs``, the
    ``plan_runs`` of the request), each once however many sessions ask: under the store's compute
    locks (``RunStore.compute_once``), with ``run_experiment`` at ``ks`` plus ``STANDARD_KS`` plus
    the cut-offs an older stored run of the same key had, stored by ``record_runs``. While another
    session computes a row, ``progress`` gets ``wait`` events (the first, then one every
    ``WAIT_EVERY`` seconds). The CLI (``evaluate_recorded``) and the app (``core.lab``) both
    compute through here.
    """
    from core.evaluation import experiment
    from core.progress import ProgressEvent
    from core.recommenders.spec import TechniqueSpec
    from core.store.runs import STANDARD_KS

    keys = {label: runs[label].key for label in missing}
    every_k = set(ks) | set(STANDARD_KS)  # a run stored at other cut-offs keeps them too
    for run in store.runs_info(list(keys.values())).values():
        every_k |= {int(k) for k in run["ks"]}
    used = {r: s for r, s in encoders.items() if s}
    opts = {k: v for k, v in options.items() if k != "tune"}
    fresh: list[ExperimentResult] = []

    def compute(todo: list[str]) -> tuple[list[str], dict[str, str]]:
        rows = [TechniqueSpec(runs[t].technique, runs[t].params, label=t) for t in todo]
        result = experiment.run_experiment(
            ds, runs[todo[0]].split, rows, sorted(every_k), runs[todo[0]].seed, cache_root,
            encoders=dict(used), options=dict(opts), progress=progress, tune=tune)
        stored, skipped = record_runs(store, {t: runs[t] for t in todo}, result, split_key)
        if not stored:  # kept only to report on when nothing was stored (its frames are big)
            fresh.append(result)
        return stored, skipped

    told: dict[str, float] = {}

    def waiting(label: str, seconds: float) -> None:
        if seconds - told.get(label, -WAIT_EVERY) >= WAIT_EVERY:
            told[label] = seconds
            tail = f" ({seconds:.0f} s)" if seconds >= 1 else ""
            progress(ProgressEvent("wait", label, message=f"another session is computing {label}; "
                                                          f"waiting{tail}"))

    computed, skipped, waited = store.compute_once(
        keys, compute, ks, on_wait=waiting if progress is not None else None)
    return Computation(computed, skipped, waited, fresh[-1] if fresh else None)


def evaluate_recorded(
    ds: Dataset,
    dataset: str,
    split: str,
    rows: Iterable[str | TechniqueSpec],
    ks: Sequence[int],
    seed: int,
    cache_root: str | Path | None = None,
    encoders: Mapping[str, str] | None = None,
    options: Mapping[str, Any] | None = None,
    progress: bool | Progress | None = None,
    tune: bool = True,
) -> Recorded:
    """Evaluate ``rows`` like ``run_experiment``, through the run store of ``cache_root``.

    Args:
        dataset: the data's identity, ``core.store.runs.dataset_key`` (the app's ``LabData.key``).
        ks: the cut-offs reported; runs are computed at these plus ``STANDARD_KS`` (so the app's
            charts can show them) and a stored run is reused when it has all of ``ks``.
        encoders, options, progress, tune: as ``run_experiment``'s; while another session
            computes a row's run, ``progress`` gets ``wait`` events (the first, then one every
            ``WAIT_EVERY`` seconds).
    Returns:
        ``Recorded``; its result is read back from the store (``stored_result``) with the skipped
        rows and ``meta["encoders"]`` of this request.
    """
    from core.config import cache_dir
    from core.progress import resolve_progress
    from core.recommenders.spec import as_specs
    from core.store.runs import RunStore, plan_runs, run_options, split_key

    rows = as_specs(rows)
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise LabError(f"cut-offs must be positive integers, got {ks}")
    root = cache_dir(cache_root)
    encoders = {r: s for r, s in dict(encoders or {}).items() if s}
    options = dict(options or {})
    key_options = run_options(options, tune)
    plan = plan_runs(dataset, split, seed, rows, encoders, key_options, dataset_name=ds.name,
                     ds=ds, cache_root=root)
    keys = {label: run.key for label, run in plan.items()}
    skey = split_key(dataset, split, seed, key_options)
    store = RunStore.in_cache(root)
    have = store.existing(keys.values(), ks)
    missing = [label for label, key in keys.items() if key not in have]
    sink = resolve_progress(progress)  # one console for the runs and the waits
    done = (compute_missing(ds, store, plan, missing, ks, skey, root, encoders, options, tune,
                            sink) if missing else Computation([], {}, []))
    computed, skipped, waited = done.computed, done.skipped, done.waited
    result = stored_result(store, {t: k for t, k in keys.items() if t not in skipped}, ks)
    if result is None:  # every row skipped: report on the split of the last computation
        if done.last is None:
            raise LabError("no technique row to evaluate")
        result = done.last
        result.meta["ks"] = ks
    result.meta["encoders"] = dict(encoders)
    result.skipped = _skipped_frame({t: skipped[t] for t in keys if t in skipped})
    reused = [t for t in keys if t not in skipped and t not in computed]
    return Recorded(result=result, keys=keys, computed=computed, reused=reused, waited=waited)
