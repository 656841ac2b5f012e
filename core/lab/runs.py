"""Evaluation runs as the Compare page sees them: ``run_comparison`` reloads the stored runs of
several techniques on one (dataset, split, seed) from the ``RunStore`` and computes the missing
ones once (``core.evaluation.recorded.compute_missing``, as the CLI does); ``metric_table``,
``metric_long`` and ``paired_ci`` turn the resulting ``Comparison`` into the page's table, chart
rows and confidence intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from core.lab.data import LabData
from core.progress import Progress
from core.store.runs import STANDARD_KS

if TYPE_CHECKING:
    from core.store.runs import RunIdentity, RunStore

#: Cut-offs the app shows (the charts plot metric vs these k): those every stored run has, the
#: CLI's included (``core.store.runs.STANDARD_KS``).
KS: tuple[int, ...] = STANDARD_KS


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
    def _available_keys(self) -> dict[str, str]:
        return {t: self.keys[t] for t in self.available}

    @property
    def identity(self) -> tuple[str, ...]:
        """Hashable identity of the stored runs shown (for caching small derived results)."""
        return tuple(sorted(self.keys.values())) + (self.split_key,)

    def per_user_rows(self, metric: str | None = None, k: int | None = None,
                      user_id: str | None = None, technique: str | None = None) -> pd.DataFrame:
        """Per-user rows (technique, user_id, metric, k, value) matching the given filters."""
        return self.store.query_per_user(
            self._available_keys, metric=metric,
            k=None if k is None else int(k), user_id=user_id, technique=technique)

    def user_rows(self, user_id: str, k: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """One user's per-user rows (at ``k``, or every k) and top-k rows, as ``per_user_rows``
        and ``recs_rows`` give them, read in one connection."""
        return self.store.query_user(self._available_keys, str(user_id),
                                     k=None if k is None else int(k))

    def evaluated_users(self) -> list[str]:
        """Users with held-out items, sorted (worked out once per version of the runs file)."""
        def read() -> list[str]:
            return sorted(self.truth["user_id"].astype(str).unique().tolist())

        return list(self.store.remember(("users", self.split_key), read))

    def recs_rows(self, user_id: str | None = None, technique: str | None = None,
                  item_id: str | None = None) -> pd.DataFrame:
        """Top-k rows (technique, user_id, rank, item_id, score) of a user, technique and/or
        item."""
        return self.store.query_recs(self._available_keys, user_id=user_id,
                                     technique=technique, item_id=item_id)

    def top_item_ids(self, user_id: str, technique: str, n: int = 10) -> list[str]:
        """Raw ids of ``technique``'s top-``n`` items for ``user_id`` (best first)."""
        r = self.recs_rows(user_id=user_id, technique=technique)
        return r.sort_values("rank").head(n)["item_id"].astype(str).tolist()


def _plan(data: LabData, split: str, seed: int, techniques: Sequence[str],
          encoders: dict[str, str | None], options: dict[str, Any],
          cache_root: str | Path | None = None) -> dict[str, RunIdentity]:
    from core.store.runs import plan_runs

    return plan_runs(data.key, split, seed, techniques, encoders, options,
                     dataset_name=data.spec, ds=data.ds, cache_root=cache_root)


def run_keys(data: LabData, split: str, seed: int, techniques: Sequence[str],
             encoders: dict[str, str | None], options: dict[str, Any],
             cache_root: str | Path | None = None) -> dict[str, str]:
    """The stored-run key of each technique: ``core.store.runs.plan_runs``, the same key
    ``python -m core evaluate`` gives the same run (data identity, split, seed, run options, the
    technique, and the ``Encoder.id`` — spec, weights, precision — of the roles it uses)."""
    return {t: run.key for t, run in _plan(data, split, seed, techniques, encoders,
                                           options, cache_root).items()}


def stored_techniques(data: LabData, cache_root: Path, split: str, seed: int,
                      techniques: Sequence[str], encoders: dict[str, str | None],
                      options: dict[str, Any], ks: Sequence[int] = KS) -> list[str]:
    """Which of ``techniques`` already have a stored run for these settings (made by the app or
    by the CLI) that covers the cut-offs ``ks``."""
    from core.store.runs import RunStore

    keys = run_keys(data, split, seed, techniques, encoders, options, cache_root)
    have = RunStore.in_cache(cache_root).existing(keys.values(), ks)
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
    """Results of ``techniques``: stored runs (the app's or the CLI's) are reloaded; missing ones
    are computed (when ``compute``) with ``core.evaluation.experiment.run_experiment`` and stored,
    one run per technique.

    Each run is computed once however many sessions (threads or processes) ask for it at the
    same time: a missing run is computed under its ``RunStore.compute_lock``; a session that finds
    it locked says so through ``progress``, waits, and reloads what the other stored (listed in
    ``reused`` and ``waited``), computing it itself only if the other did not store it (it failed
    or skipped it) or after ``RunStore.wait_timeout`` seconds.

    Args:
        options: run options (``photo_filter``, ``review_filter``, ``min_rating``, ``tune``).
        ks: the cut-offs a stored run must cover (computed runs get these and
            ``core.store.runs.STANDARD_KS``).
        progress: a ``core.progress.Progress``, called with ``ProgressEvent``s while computing
            (the experiment's phases) or waiting (``wait``).
    """
    from core.store.runs import RunStore, split_key

    options = dict(options or {})
    cache_root = Path(cache_root)
    techniques = list(dict.fromkeys(techniques))
    runs = _plan(data, split, seed, techniques, encoders, options, cache_root)
    keys = {t: run.key for t, run in runs.items()}
    skey = split_key(data.key, split, seed, options)
    store = RunStore.in_cache(cache_root)
    have = store.existing(keys.values(), ks)
    missing = [t for t in techniques if keys[t] not in have]
    skipped: dict[str, str] = {}
    computed: list[str] = []
    waited: list[str] = []
    if missing and compute:
        from core.evaluation.recorded import compute_missing

        done = compute_missing(data.ds, store, runs, missing, ks, skey, cache_root, encoders,
                               options, bool(options.get("tune", True)), progress)
        computed, skipped, waited = done.computed, done.skipped, done.waited
    usable = store.existing(keys.values(), ks) if missing else have
    shown = {t: keys[t] for t in techniques if keys[t] in usable}
    stored = store.load_metrics(shown, split=skey)
    reused = [t for t in shown if t not in computed]
    return Comparison(
        techniques=techniques, metrics=stored.metrics, truth=stored.truth, store=store,
        keys=keys, split_key=skey, computed=computed, reused=reused, waited=waited,
        skipped=skipped,
    )


def metric_column(metric: str, k: int) -> str:
    """How ``metric@k`` is titled in tables, charts and lists: ``"nDCG@10"``."""
    from core.evaluation.metrics import METRIC_LABELS

    return f"{METRIC_LABELS.get(metric, metric)}@{int(k)}"


def metric_table(cmp: Comparison, metrics: Sequence[str], ks: Sequence[int]) -> pd.DataFrame:
    """Wide table: one row per technique (requested order), columns ``"<Label>@k"``, plus
    ``n_users``. Columns absent from the runs are left out."""
    m = cmp.metrics
    m = m[m["metric"].isin(list(metrics)) & m["k"].isin([int(k) for k in ks])]
    if m.empty:
        return pd.DataFrame(index=pd.Index(cmp.available, name="technique"))
    wide = m.pivot_table(index="technique", columns=["metric", "k"], values="value",
                         aggfunc="first")
    order = [(mt, int(k)) for mt in metrics for k in ks if (mt, int(k)) in wide.columns]
    wide = wide[order]
    wide.columns = [metric_column(mt, k) for mt, k in order]
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
    out = paired_cis(cmp, baseline, metric, [int(k)], n_boot=n_boot, seed=seed, alpha=alpha)
    return out.drop(columns="k")


def paired_cis(cmp: Comparison, baseline: str, metric: str, ks: Sequence[int] | None = None,
               n_boot: int = 1000, seed: int = 42, alpha: float = 0.05,
               techniques: Sequence[str] | None = None) -> pd.DataFrame:
    """``paired_ci`` at every cut-off of ``ks`` (default: all stored) from one set of bootstrap
    draws (the draws depend on the users and the seed only, so each k's numbers equal
    ``paired_ci`` at that k). Columns technique, k, diff, low, high, n_users, significant.
    ``techniques`` limits the rows compared with the baseline (default: every one); a
    technique's numbers do not depend on which others are compared, since the draws are shared.

    Drawing is the cost on a big dataset (1000 resamples of every evaluated user: about 2 s for
    90,000 users on 2 cores), so a page computes every k at once and then switches k for free.
    """
    from core.evaluation.bootstrap import paired_bootstrap

    columns = ["technique", "k", "diff", "low", "high", "n_users", "significant"]
    pu = cmp.per_user_rows(metric=metric)
    if techniques is not None:
        pu = pu[pu["technique"].isin({baseline, *techniques})]
    if ks is not None:
        pu = pu[pu["k"].isin([int(k) for k in ks])]
    if pu.empty or baseline not in set(pu["technique"]):
        return pd.DataFrame(columns=columns)
    ci = paired_bootstrap(pu, baseline, n_resamples=n_boot, alpha=alpha, seed=seed)
    out = pd.DataFrame({
        "technique": ci["technique"], "k": ci["k"].astype(int), "diff": ci["delta"],
        "low": ci["ci_low"], "high": ci["ci_high"], "n_users": ci["n_users"],
    })
    out["significant"] = (out["low"] > 0) | (out["high"] < 0)
    return out[columns].reset_index(drop=True)



# --- how long computing runs takes --------------------------------------------------------------
#: Rough fit + evaluation seconds per 10,000 interactions, for a technique with no stored run on
#: the dataset to time it by (measured on the demo, ~26,000 interactions, with tuning on a
#: 2-core CPU; tuning-free runs are faster). Techniques not listed take ``ROUGH_DEFAULT_S``.
ROUGH_SECONDS_PER_10K: dict[str, float] = {
    "random": 0.02, "popular": 0.02, "itemknn": 0.1, "als": 1.5, "bpr": 1.0, "text": 0.3,
    "image": 0.2, "clip-t1": 0.1, "clip-t2": 0.3, "clip-t3": 0.05, "clip-t4": 0.05,
    "clip-t5": 0.05, "multiview": 2.5, "hybrid": 1.0, "lightgcn": 25.0, "vbpr": 3.5,
    "freedom": 17.0, "fusion": 4.0,
}
ROUGH_DEFAULT_S = 2.0
#: Seconds to encode one photo / one text on a CPU (EfficientNet-Lite0, MiniLM on 2 cores; a
#: CLIP-sized model is slower), plus loading a model: an encoder no stored run on the dataset
#: used encodes the dataset first (the embedding cache keeps the vectors afterwards).
ENCODE_SECONDS = {"photo": 0.02, "text": 0.02, "load": 3.0}
#: Per request (split, protocol audit) and per stored run (writing it to runs.duckdb).
OVERHEAD_S = {"request": 1.0, "run": 0.3}


@dataclass(frozen=True)
class RunEstimate:
    """How long computing some runs should take (``estimate_runs``).

    ``timed``: technique -> seconds from the stored fit + evaluation timings of earlier runs of
    it on the same dataset; ``rough``: technique -> seconds from ``ROUGH_SECONDS_PER_10K``;
    ``encoding``: encoder spec -> seconds to encode the dataset with an encoder no stored run on
    it used (``ENCODE_SECONDS``); ``seconds``: all of it plus ``OVERHEAD_S``."""

    seconds: float
    timed: dict[str, float] = field(default_factory=dict)
    rough: dict[str, float] = field(default_factory=dict)
    encoding: dict[str, float] = field(default_factory=dict)

    def short(self) -> str:
        """``"about 26 s"``, ``"about 3 min"``."""
        return f"about {_duration(self.seconds)}"

    def describe(self) -> str:
        """One sentence saying what the estimate rests on."""
        parts = []
        if self.timed:
            parts.append(f"earlier runs' fit + evaluation times for {', '.join(self.timed)}")
        if self.rough:
            parts.append(f"a rough rate per 10,000 interactions for {', '.join(self.rough)}")
        if self.encoding:
            parts.append("first-time encoding with " + ", ".join(
                f"{spec} (~{_duration(s)})" for spec, s in self.encoding.items()))
        basis = "; ".join(parts) or "nothing to compute"
        return f"{self.short().capitalize()} on this machine ({basis})."


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def estimate_runs(data: LabData, cache_root: str | Path, split: str, seed: int,
                  techniques: Sequence[str], encoders: dict[str, str | None],
                  options: dict[str, Any] | None = None) -> RunEstimate:
    """How long ``run_comparison`` should take to compute the runs of ``techniques``.

    A technique with stored runs on this dataset (any split, seed or encoders; those with the
    same ``tune`` option preferred) takes the median of their fit + evaluation seconds; others
    take ``ROUGH_SECONDS_PER_10K`` scaled by the dataset's interactions. An encoder (by
    ``Encoder.id``) that no stored run on the dataset used adds encoding its photos and/or
    texts (``ENCODE_SECONDS``). Nothing is computed; only the runs table is read."""
    import statistics

    from core.store.runs import RunStore

    options = dict(options or {})
    techniques = list(dict.fromkeys(techniques))
    if not techniques:
        return RunEstimate(0.0)
    planned = _plan(data, split, seed, techniques, encoders, options, cache_root)
    store = RunStore.in_cache(cache_root)
    listed = store.list_runs()
    mine = listed[listed["dataset"] == data.key] if len(listed) else listed
    info = store.runs_info(mine["run_key"].tolist()) if len(mine) else {}
    tune = bool(options.get("tune", True))
    seen_ids = {i for r in info.values() for i in (r.get("encoder_ids") or {}).values()}

    timed: dict[str, float] = {}
    rough: dict[str, float] = {}
    for technique in techniques:
        runs = [r for r in info.values()
                if r["technique"] == technique and r["label"] == technique and r["timings"]]
        same = [r for r in runs if bool((r["options"] or {}).get("tune", True)) == tune] or runs
        if same:
            timed[technique] = statistics.median(
                float(r["timings"].get("fit_s", 0)) + float(r["timings"].get("eval_s", 0))
                for r in same)
        else:
            rate = ROUGH_SECONDS_PER_10K.get(technique, ROUGH_DEFAULT_S)
            rough[technique] = rate * len(data.ds.interactions) / 10_000

    encoding: dict[str, float] = {}
    n_photos = len(data.ds.photos)
    n_texts = len(data.ds.interactions) + data.ds.n_items
    for run in planned.values():
        for role, spec in run.encoders.items():
            if run.encoder_ids.get(role) in seen_ids or spec in encoding:
                continue
            photos = n_photos if role in ("image", "clip") else 0
            texts = n_texts if role in ("text", "clip") else 0
            encoding[spec] = (ENCODE_SECONDS["load"] + photos * ENCODE_SECONDS["photo"]
                              + texts * ENCODE_SECONDS["text"])
    seconds = (OVERHEAD_S["request"] + OVERHEAD_S["run"] * len(techniques)
               + sum(timed.values()) + sum(rough.values()) + sum(encoding.values()))
    return RunEstimate(seconds=seconds, timed=timed, rough=rough, encoding=encoding)
