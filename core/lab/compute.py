"""Computing the missing runs of a comparison, each once however many sessions ask for it.

``compute_once`` holds a run's ``RunStore.compute_lock`` while computing it with
``core.evaluation.experiment.run_experiment`` and storing it; a session that finds the lock taken
waits for the other (holding nothing, so no deadlock), then reloads what it stored, computing the
run itself only when the other failed, skipped it or took longer than ``RunStore.wait_timeout``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from core.progress import Progress, ProgressEvent

if TYPE_CHECKING:
    from core.lab.data import LabData
    from core.store.runs import RunStore

__all__ = ["Progress", "compute_once"]


def compute_once(data: LabData, cache_root: Path, store: RunStore, split: str, seed: int,
                 missing: Sequence[str], encoders: dict[str, str | None], options: dict[str, Any],
                 ks: Sequence[int], keys: dict[str, str], skey: str,
                 progress: Progress | None) -> tuple[list[str], dict[str, str], list[str]]:
    """Compute and store the ``missing`` runs (technique names; ``keys`` maps each to its run
    key, ``skey`` is the split's key), each under its compute lock, so that concurrent sessions
    compute a run once. Returns (computed, skipped with reasons, waited for another session).
    """
    computed: list[str] = []
    skipped: dict[str, str] = {}

    def run(todo: list[str]) -> None:
        done, skip = _compute(data, cache_root, store, split, seed, todo, encoders, options, ks,
                              keys, skey, progress)
        computed.extend(done)
        skipped.update(skip)

    def unstored(techniques: list[str]) -> list[str]:
        have = store.existing([keys[t] for t in techniques]) if techniques else set()
        return [t for t in techniques if keys[t] not in have]

    locks = {t: store.compute_lock(keys[t]) for t in missing}
    # 1. claim what nobody is computing; another session may have stored it since `existing`
    mine = [t for t in missing if locks[t].acquire(timeout=0)]
    try:
        todo = unstored(mine)
        if todo:
            run(todo)
    finally:
        for t in mine:
            locks[t].release()
    busy = [t for t in missing if t not in mine]
    if not busy:
        return computed, skipped, []

    # 2. wait for the other session (holding nothing, so no deadlock), then reload its runs
    def waiting(seconds: float, technique: str) -> None:
        if progress is not None:
            tail = f" ({seconds:.0f} s)" if seconds >= 1 else ""
            progress(ProgressEvent("wait", technique,
                                   message=f"another session is computing {technique}; "
                                           f"waiting{tail}"))

    held = []
    try:
        for t in sorted(busy, key=lambda t: keys[t]):  # one order for every session
            if locks[t].acquire(timeout=store.wait_timeout,
                                on_wait=lambda s, t=t: waiting(s, t)):
                held.append(t)
        todo = unstored(busy)  # what the other session did not store (failed, skipped, too slow)
        if todo:
            run(todo)
    finally:
        for t in held:
            locks[t].release()
    return computed, skipped, [t for t in busy if t not in todo]


def _compute(data, cache_root, store, split, seed, missing, encoders, options, ks, keys, skey,
             progress) -> tuple[list[str], dict[str, str]]:
    from core.evaluation.experiment import run_experiment

    opts = {k: v for k, v in options.items() if k != "tune"}
    result = run_experiment(
        data.ds, split, list(missing), list(ks), seed, cache_root,
        encoders={r: s for r, s in encoders.items() if s}, options=opts,
        progress=progress, tune=bool(options.get("tune", True)),
    )
    skipped = _skipped(result)
    per_user = _raw_user_ids(data, result.per_user)
    computed = []
    for technique in missing:
        if technique in skipped:
            continue
        metrics = result.metrics[result.metrics["technique"] == technique]
        if metrics.empty:
            skipped.setdefault(technique, "produced no results")
            continue
        # the protocol audit of the split (core.evaluation.experiment.protocol_audit), this
        # technique's cold users included, rides in the params JSON under "audit"
        audit = dict(result.meta.get("audit", {}))
        audit["cold_users"] = dict(audit.get("cold_users", {})).get(technique)
        info = {
            "dataset": data.key, "split": split, "seed": seed, "technique": technique,
            "encoders": {r: s for r, s in encoders.items() if s}, "options": options,
            "ks": list(ks), "params": {**_get(result, "params", technique), "audit": audit},
            "timings": _get(result, "timings", technique),
        }
        store.save(
            keys[technique], split_key_=skey, info=info, metrics=metrics,
            per_user=per_user[per_user["technique"] == technique],
            recs=result.recs[result.recs["technique"] == technique], truth=result.truth,
        )
        computed.append(technique)
    return computed, skipped


def _skipped(result: Any) -> dict[str, str]:
    skipped = getattr(result, "skipped", None)
    if skipped is None:
        return {}
    if isinstance(skipped, pd.DataFrame):
        return {str(r.technique): str(r.reason) for r in skipped.itertuples()}
    return {str(k): str(v) for k, v in dict(skipped).items()}


def _get(result: Any, attr: str, technique: str) -> Any:
    value = getattr(result, attr, None) or {}
    if isinstance(value, dict):
        return value.get(technique, {})
    return {}


def _raw_user_ids(data: LabData, per_user: pd.DataFrame) -> pd.DataFrame:
    frame = per_user.copy()
    if "user_id" not in frame.columns:
        col = frame["user"]
        if pd.api.types.is_integer_dtype(col.dtype):
            frame["user_id"] = data.ds.user_ids[col.to_numpy()]
        else:
            frame["user_id"] = col.astype(str)
    return frame

