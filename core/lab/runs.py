"""Evaluation runs as the Compare page sees them: ``run_comparison`` reloads the stored runs of
several techniques on one (dataset, split, seed) from the ``RunStore`` and computes the missing
ones once (``core.lab.compute``); ``metric_table``, ``metric_long`` and ``paired_ci`` turn the
resulting ``Comparison`` into the page's table, chart rows and confidence intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from core.lab.compute import Progress, compute_once
from core.lab.data import LabData

if TYPE_CHECKING:
    from core.store.runs import RunStore

#: Cut-offs every app run is evaluated at (the charts plot metric vs these k).
KS: tuple[int, ...] = (1, 5, 10, 20, 30, 50)


@dataclass
class Comparison:
    """Stored results of several techniques on one (dataset, split, seed), as ``run_comparison``
    returns them.

    ``metrics`` (technique, encoder, metric, k, value, n_users) and ``truth`` (user_id, item_id)
    are loaded at once; per-user values and top-k lists are big, so ``per_user_rows`` and
    ``recs_rows`` query the runs of ``keys`` (technique -> run key) in ``store`` with filters.
    ``computed`` / ``reused`` name the techniques run now / loaded from DuckDB; ``waited`` names
    those of ``reused`` that another session was computing when asked for (this one waited for
    it, then loaded its result); ``skipped`` maps a technique that could not run to the reason.
    """

    techniques: list[str]
    metrics: pd.DataFrame
    truth: pd.DataFrame
    store: RunStore
    keys: dict[str, str]
    split_key: str
    computed: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    waited: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def available(self) -> list[str]:
        """Techniques with results, in the requested order."""
        have = set(self.metrics["technique"]) if len(self.metrics) else set()
        return [t for t in self.techniques if t in have]

    @property
    def identity(self) -> tuple[str, ...]:
        """Hashable identity of the stored runs shown (for caching small derived results)."""
        return tuple(sorted(self.keys.values())) + (self.split_key,)

    def per_user_rows(self, metric: str | None = None, k: int | None = None,
                      user_id: str | None = None, technique: str | None = None) -> pd.DataFrame:
        """Per-user rows (technique, user_id, metric, k, value) matching the given filters."""
        return self.store.query_per_user(
            [self.keys[t] for t in self.available], metric=metric,
            k=None if k is None else int(k), user_id=user_id, technique=technique)

    def recs_rows(self, user_id: str | None = None, technique: str | None = None) -> pd.DataFrame:
        """Top-k rows (technique, user_id, rank, item_id, score) of a user and/or technique."""
        return self.store.query_recs([self.keys[t] for t in self.available],
                                     user_id=user_id, technique=technique)

    def top_item_ids(self, user_id: str, technique: str, n: int = 10) -> list[str]:
        """Raw ids of ``technique``'s top-``n`` items for ``user_id`` (best first)."""
        r = self.recs_rows(user_id=user_id, technique=technique)
        return r.sort_values("rank").head(n)["item_id"].astype(str).tolist()


def _technique_encoders(technique: str, encoders: dict[str, str | None],
                        uses: dict[str, list[str]]) -> dict[str, str]:
    """The run's encoders of the roles ``technique`` uses (``Recommender.uses``): none for a
    technique learnt from interactions only, all three for a hybrid."""
    return {r: encoders[r] for r in uses.get(technique, []) if encoders.get(r)}


def run_keys(data: LabData, split: str, seed: int, techniques: Sequence[str],
             encoders: dict[str, str | None], options: dict[str, Any],
             ks: Sequence[int] = KS) -> dict[str, str]:
    """The stored-run key of each technique (see ``core.store.runs.run_key``); encoder specs enter
    it with their requested precision spelled out (``spec_with_precision``), so fp32, bf16 and
    ``MMREC_BF16=auto`` runs are stored apart."""
    from core.encoders.precision import spec_with_precision
    from core.recommenders import list_techniques
    from core.store.runs import run_key

    uses = {row["name"]: row["uses"] for row in list_techniques()}
    return {t: run_key(data.key, split, seed, t,
                       {r: spec_with_precision(s)
                        for r, s in _technique_encoders(t, encoders, uses).items()},
                       options, ks) for t in techniques}


def stored_techniques(data: LabData, cache_root: Path, split: str, seed: int,
                      techniques: Sequence[str], encoders: dict[str, str | None],
                      options: dict[str, Any], ks: Sequence[int] = KS) -> list[str]:
    """Which of ``techniques`` already have a stored run for these settings."""
    from core.store.runs import RunStore

    keys = run_keys(data, split, seed, techniques, encoders, options, ks)
    have = RunStore.in_cache(cache_root).existing(keys.values())
    return [t for t, k in keys.items() if k in have]


def run_comparison(
    data: LabData,
    cache_root: str | Path,
    split: str,
    seed: int,
    techniques: Sequence[str],
    encoders: dict[str, str | None],
    options: dict[str, Any] | None = None,
    ks: Sequence[int] = KS,
    compute: bool = True,
    progress: Progress | None = None,
) -> Comparison:
    """Results of ``techniques``: stored runs are reloaded; missing ones are computed (when
    ``compute``) with ``core.evaluation.experiment.run_experiment`` and stored, one run per
    technique.

    Each run is computed once however many sessions (threads or processes) ask for it at the
    same time: a missing run is computed under its ``RunStore.compute_lock``; a session that finds
    it locked says so through ``progress``, waits, and reloads what the other stored (listed in
    ``reused`` and ``waited``), computing it itself only if the other did not store it (it failed
    or skipped it) or after ``RunStore.wait_timeout`` seconds.

    Args:
        options: run options (``photo_filter``, ``review_filter``, ``min_rating``, ``tune``).
        progress: a ``core.progress.Progress``, called with ``ProgressEvent``s while computing
            (the experiment's phases) or waiting (``wait``).
    """
    from core.store.runs import RunStore, split_key

    options = dict(options or {})
    cache_root = Path(cache_root)
    techniques = list(dict.fromkeys(techniques))
    keys = run_keys(data, split, seed, techniques, encoders, options, ks)
    skey = split_key(data.key, split, seed, options)
    store = RunStore.in_cache(cache_root)
    have = store.existing(keys.values())
    missing = [t for t in techniques if keys[t] not in have]
    skipped: dict[str, str] = {}
    computed: list[str] = []
    waited: list[str] = []
    if missing and compute:
        computed, skipped, waited = compute_once(data, cache_root, store, split, seed, missing,
                                                 encoders, options, ks, keys, skey, progress)
    stored = store.load_metrics([keys[t] for t in techniques], split=skey)
    present = set(stored.runs["run_key"]) if len(stored.runs) else set()
    reused = [t for t in techniques if keys[t] in present and t not in computed]
    return Comparison(
        techniques=techniques, metrics=stored.metrics, truth=stored.truth, store=store, keys=keys,
        split_key=skey, computed=computed, reused=reused, waited=waited, skipped=skipped,
    )


def metric_table(cmp: Comparison, metrics: Sequence[str], ks: Sequence[int]) -> pd.DataFrame:
    """Wide table: one row per technique (requested order), columns ``"<Label>@k"``, plus
    ``n_users``. Columns absent from the runs are left out."""
    from core.evaluation.metrics import METRIC_LABELS

    m = cmp.metrics
    m = m[m["metric"].isin(list(metrics)) & m["k"].isin([int(k) for k in ks])]
    if m.empty:
        return pd.DataFrame(index=pd.Index(cmp.available, name="technique"))
    wide = m.pivot_table(index="technique", columns=["metric", "k"], values="value",
                         aggfunc="first")
    order = [(mt, int(k)) for mt in metrics for k in ks if (mt, int(k)) in wide.columns]
    wide = wide[order]
    wide.columns = [f"{METRIC_LABELS.get(mt, mt)}@{k}" for mt, k in order]
    wide = wide.reindex([t for t in cmp.available if t in wide.index])
    users = m.groupby("technique")["n_users"].max()
    wide["users"] = users.reindex(wide.index).astype("Int64")
    wide.index.name = "technique"
    return wide


def metric_long(cmp: Comparison, metric: str) -> pd.DataFrame:
    """Tidy rows (technique, k, value) of one metric, for the metric-vs-k chart."""
    m = cmp.metrics
    return m[m["metric"] == metric][["technique", "k", "value"]].sort_values(["technique", "k"])


def paired_ci(cmp: Comparison, baseline: str, metric: str, k: int, n_boot: int = 1000,
              seed: int = 42, alpha: float = 0.05) -> pd.DataFrame:
    """Per technique: mean difference to ``baseline`` of per-user ``metric@k`` with the paired
    bootstrap interval of ``core.evaluation.bootstrap`` (the CLI's ``--baseline``, same numbers).
    Columns technique, diff, low, high, n_users, significant (the interval excludes 0)."""
    from core.evaluation.bootstrap import paired_bootstrap

    columns = ["technique", "diff", "low", "high", "n_users", "significant"]
    pu = cmp.per_user_rows(metric=metric, k=int(k)).rename(columns={"user_id": "user"})
    if pu.empty or baseline not in set(pu["technique"]):
        return pd.DataFrame(columns=columns)
    ci = paired_bootstrap(pu, baseline, n_resamples=n_boot, alpha=alpha, seed=seed)
    out = pd.DataFrame({
        "technique": ci["technique"], "diff": ci["delta"], "low": ci["ci_low"],
        "high": ci["ci_high"], "n_users": ci["n_users"],
    })
    out["significant"] = (out["low"] > 0) | (out["high"] < 0)
    return out[columns].reset_index(drop=True)

