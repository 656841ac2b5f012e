"""The app's facade: one call per page action, returning plain frames the pages only display.

Torch-free at import (every heavy module is imported inside the function that needs it), and free of
Streamlit: the pages decide what to cache. Heavy results live in DuckDB (``core.store.runs`` for
evaluation runs, ``core.projection`` for maps, ``core.store`` for embeddings), so a page rerun
reloads them instead of recomputing.

Raw ids cross this boundary (``user_id``, ``item_id`` strings); indices stay inside the engine.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.data import Dataset, LoadOptions
from core.errors import LabError, TechniqueUnavailable

#: Cut-offs every app run is evaluated at (the charts plot metric vs these k).
KS: tuple[int, ...] = (1, 5, 10, 20, 30, 50)
#: Offline defaults per encoder role.
DEFAULT_ENCODERS: dict[str, str] = {
    "text": "text:minilm", "image": "cnn:efficientnet-lite0", "clip": "clip:ViT-B-32/untrained",
}
ROLES: tuple[str, ...] = ("text", "image", "clip")
ROLE_LABELS = {"text": "Text encoder", "image": "Image encoder", "clip": "CLIP encoder"}
#: Techniques learnt from interactions only: their stored runs do not depend on the encoders.
COLLABORATIVE = frozenset({"random", "popular", "als", "bpr", "itemknn"})
#: Categories too generic to colour a map by (Yelp tags nearly every restaurant with them).
GENERIC_CATEGORIES = frozenset(
    {"restaurants", "food", "nightlife", "bars", "event planning & services"})
Progress = Callable[[str, float | None], None]


# --- datasets ----------------------------------------------------------------------------------
@dataclass
class LabData:
    """A loaded dataset plus the read-only lookups every page uses (built once per load).

    Attributes:
        key: identity of the data (spec, load options, counts), part of every stored run's key.
        cover: per item index, the path of a representative photo (food first) or ``None``.
        category: per item index, its most specific category (for colouring maps).
    """

    ds: Dataset
    spec: str
    key: str
    cover: np.ndarray
    category: np.ndarray

    @property
    def is_demo(self) -> bool:
        return self.spec.strip() == "demo"


def load(spec: str, cache_dir: str | Path | None = None,
         options: LoadOptions | None = None) -> LabData:
    """Load dataset ``spec`` (``demo`` is generated into the cache on first use) with its lookups.

    Raises:
        LabError: a bad spec, a missing file, an empty result after filters (message names it).
    """
    from core.data import load_dataset

    options = options or LoadOptions()
    ds = load_dataset(spec, cache_dir=cache_dir, options=options)
    counts = {"users": ds.n_users, "items": ds.n_items, "interactions": len(ds.interactions),
              "photos": len(ds.photos)}
    key = _digest({"spec": spec.strip(), "options": repr(options), "counts": counts})
    return LabData(ds=ds, spec=spec.strip(), key=key, cover=_covers(ds), category=_categories(ds))


def _covers(ds: Dataset) -> np.ndarray:
    out = np.full(ds.n_items, None, dtype=object)
    if len(ds.photos) == 0:
        return out
    ph = ds.photos.assign(_food=(ds.photos["label"].str.lower() != "food"))
    first = ph.sort_values(["item", "_food", "photo_id"], kind="stable").drop_duplicates("item")
    out[first["item"].to_numpy()] = first["path"].to_numpy()
    return out


def _categories(ds: Dataset) -> np.ndarray:
    out = []
    for cats in ds.items["categories"].fillna(""):
        parts = [c.strip() for c in str(cats).split(",") if c.strip()]
        specific = [c for c in parts if c.lower() not in GENERIC_CATEGORIES]
        out.append((specific or parts or ["(none)"])[0])
    return np.asarray(out, dtype=object)


def describe(data: LabData) -> tuple[dict[str, Any], list[str]]:
    """Counts (``Dataset.summary``) and the loader's warnings, for the sidebar."""
    return data.ds.summary(), list(data.ds.report.warnings)


def split_of(data: LabData, kind: str, seed: int):
    """The ``core.evaluation.splits.Split`` of ``kind`` with ``seed``."""
    from core.evaluation.splits import make_split

    return make_split(data.ds, kind, seed)


def split_kinds() -> list[str]:
    """The split kinds the engine offers."""
    from core.evaluation.splits import SPLIT_KINDS

    return list(SPLIT_KINDS)


# --- registries --------------------------------------------------------------------------------
def encoder_role(spec: str) -> str:
    """Role of an encoder spec: ``clip``, ``image`` (cnn) or ``text`` (text, bert)."""
    kind = spec.split(":", 1)[0]
    return {"clip": "clip", "cnn": "image"}.get(kind, "text")


def encoder_choices(check: bool = True) -> dict[str, list[dict[str, Any]]]:
    """Encoder specs per role (``text``, ``image``, ``clip``), each ``{spec, available, reason,
    label, description}``; the offline defaults first. Unavailable ones keep their reason."""
    from core.encoders import list_encoders

    out: dict[str, list[dict[str, Any]]] = {r: [] for r in ROLES}
    for row in list_encoders(check=check):
        row = dict(row)
        role = encoder_role(row["spec"])
        label = row["spec"]
        if "untrained" in row["spec"]:
            label += " (untrained: random weights)"
        if not row.get("available", True):
            label += " — unavailable"
        row["label"] = label
        out[role].append(row)
    for role, rows in out.items():
        rows.sort(key=lambda r: (r["spec"] != DEFAULT_ENCODERS[role], not r.get("available", True)))
    return out


def technique_choices(encoders: dict[str, str | None]) -> list[dict[str, Any]]:
    """Registered techniques, each with ``available`` and ``reason`` given the chosen encoders."""
    from core.recommenders import list_techniques

    rows = []
    for row in list_techniques():
        missing = [r for r in row["needs"] if not encoders.get(r)]
        row["available"] = not missing
        row["reason"] = (f"needs a {', '.join(missing)} encoder (pick one in the sidebar)"
                         if missing else "")
        rows.append(row)
    return rows


# --- comparison runs ---------------------------------------------------------------------------
@dataclass
class Comparison:
    """Stored results of several techniques on one (dataset, split, seed).

    ``metrics`` (technique, encoder, metric, k, value, n_users) and ``truth`` (user_id, item_id)
    are loaded at once; per-user values and top-k lists are big, so ``per_user_rows`` and
    ``recs_rows`` query DuckDB with filters (or filter the in-memory frames ``per_user`` /
    ``recs`` when the comparison was built from frames). ``computed`` / ``reused`` name the
    techniques run now / loaded from DuckDB; ``waited`` names those of ``reused`` that another
    session was computing when asked for (this one waited for it, then loaded its result);
    ``skipped`` maps a technique that could not run to the reason.
    """

    techniques: list[str]
    metrics: pd.DataFrame
    truth: pd.DataFrame
    per_user: pd.DataFrame | None = None
    recs: pd.DataFrame | None = None
    computed: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    split_key: str = ""
    store: Any = None
    keys: dict[str, str] = field(default_factory=dict)
    waited: list[str] = field(default_factory=list)

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
        if self.per_user is None:
            return self.store.query_per_user(
                [self.keys[t] for t in self.available], metric=metric,
                k=None if k is None else int(k), user_id=user_id, technique=technique)
        pu = self.per_user
        for col, value in (("metric", metric), ("k", k), ("user_id", user_id),
                           ("technique", technique)):
            if value is not None:
                pu = pu[pu[col] == value]
        return pu

    def recs_rows(self, user_id: str | None = None, technique: str | None = None) -> pd.DataFrame:
        """Top-k rows (technique, user_id, rank, item_id, score) of a user and/or technique."""
        if self.recs is None:
            return self.store.query_recs([self.keys[t] for t in self.available],
                                         user_id=user_id, technique=technique)
        r = self.recs
        for col, value in (("user_id", user_id), ("technique", technique)):
            if value is not None:
                r = r[r[col] == value]
        return r

    def top_item_ids(self, user_id: str, technique: str, n: int = 10) -> list[str]:
        """Raw ids of ``technique``'s top-``n`` items for ``user_id`` (best first)."""
        r = self.recs_rows(user_id=user_id, technique=technique)
        return r.sort_values("rank").head(n)["item_id"].astype(str).tolist()


def _technique_encoders(technique: str, encoders: dict[str, str | None],
                        needs: dict[str, list[str]]) -> dict[str, str]:
    if technique in COLLABORATIVE:
        return {}
    roles = needs.get(technique) or []
    if not roles:  # e.g. a hybrid that picks its content part on validation: all encoders matter
        roles = list(ROLES)
    return {r: encoders[r] for r in roles if encoders.get(r)}


def run_keys(data: LabData, split: str, seed: int, techniques: Sequence[str],
             encoders: dict[str, str | None], options: dict[str, Any],
             ks: Sequence[int] = KS) -> dict[str, str]:
    """The stored-run key of each technique (see ``core.store.runs.run_key``); encoder specs enter
    it with their requested precision spelled out (``spec_with_precision``), so fp32, bf16 and
    ``MMREC_BF16=auto`` runs are stored apart."""
    from core.encoders.precision import spec_with_precision
    from core.recommenders import list_techniques
    from core.store.runs import run_key

    needs = {row["name"]: row["needs"] for row in list_techniques()}
    return {t: run_key(data.key, split, seed, t,
                       {r: spec_with_precision(s)
                        for r, s in _technique_encoders(t, encoders, needs).items()},
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
        progress: ``progress(message, fraction_or_None)`` while computing or waiting.
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
        computed, skipped, waited = _compute_once(data, cache_root, store, split, seed, missing,
                                                  encoders, options, ks, keys, skey, progress)
    stored = store.load_metrics([keys[t] for t in techniques], split=skey)
    present = set(stored.runs["run_key"]) if len(stored.runs) else set()
    reused = [t for t in techniques if keys[t] in present and t not in computed]
    return Comparison(
        techniques=techniques, metrics=stored.metrics, truth=stored.truth, computed=computed,
        reused=reused, skipped=skipped, split_key=skey, store=store, keys=keys, waited=waited,
    )


def _compute_once(data, cache_root, store, split, seed, missing, encoders, options, ks, keys,
                  skey, progress) -> tuple[list[str], dict[str, str], list[str]]:
    """``_compute`` the ``missing`` runs, each under its compute lock, so that concurrent sessions
    compute a run once. Returns (computed, skipped, waited for another session)."""
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
            progress(f"another session is computing {technique}; waiting{tail}", None)

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

    def report(message: str, fraction: float | None = None) -> None:
        if progress is not None:
            progress(message, fraction)

    opts = {k: v for k, v in options.items() if k != "tune"}
    result = run_experiment(
        data.ds, split, list(missing), list(ks), seed, cache_root,
        encoders={r: s for r, s in encoders.items() if s}, options=opts,
        progress=_progress_adapter(report), tune=bool(options.get("tune", True)),
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


def _progress_adapter(report: Callable[[str, float | None], None]) -> Callable[..., None]:
    """One callback for both engine styles: the experiment's ``progress(message)`` and the
    embedding provider's ``progress(done, total, label)``; forwarded as ``(message, fraction)``."""

    def progress(*args: Any) -> None:
        if len(args) == 3 and isinstance(args[0], (int, np.integer)):
            done, total, label = args
            report(f"{label}: {done:,}/{total:,}", float(done) / max(1, int(total)))
        else:
            report(str(args[0]) if args else "", None)

    return progress


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


# --- users -------------------------------------------------------------------------------------
def user_metric(cmp: Comparison, technique: str, metric: str, k: int) -> pd.Series:
    """Per-user ``metric@k`` of one technique, indexed by user_id."""
    sel = cmp.per_user_rows(metric=metric, k=int(k), technique=technique)
    return sel.set_index("user_id")["value"]


def worst_users(cmp: Comparison, technique: str, metric: str, k: int, n: int = 20,
                data: LabData | None = None, split: Any = None) -> pd.DataFrame:
    """The ``n`` users with the lowest ``metric@k`` for ``technique`` (ties: more held-out items
    first, then the longer train history — the most surprising misses). Columns user_id, value,
    held_out, train."""
    values = user_metric(cmp, technique, metric, k)
    frame = pd.DataFrame({"user_id": values.index.astype(str), "value": values.to_numpy()})
    frame = _with_user_counts(frame, cmp, data, split)
    frame = frame.sort_values(["value", "held_out", "train", "user_id"],
                              ascending=[True, False, False, True])
    return frame.head(n).reset_index(drop=True)


def beats(cmp: Comparison, a: str, b: str, metric: str, k: int, n: int = 20,
          data: LabData | None = None, split: Any = None) -> pd.DataFrame:
    """The ``n`` users where ``a`` beats ``b`` most on ``metric@k``. Columns user_id, value (the
    difference), <a>, <b>, held_out, train."""
    va, vb = user_metric(cmp, a, metric, k), user_metric(cmp, b, metric, k)
    both = pd.concat([va.rename(a), vb.rename(b)], axis=1, join="inner")
    frame = pd.DataFrame({"user_id": both.index.astype(str),
                          "value": (both[a] - both[b]).to_numpy(),
                          a: both[a].to_numpy(), b: both[b].to_numpy()})
    frame = _with_user_counts(frame, cmp, data, split)
    frame = frame.sort_values(["value", "user_id"], ascending=[False, True])
    return frame.head(n).reset_index(drop=True)


def _with_user_counts(frame: pd.DataFrame, cmp: Comparison, data: LabData | None,
                      split: Any) -> pd.DataFrame:
    held = cmp.truth.groupby("user_id").size()
    frame["held_out"] = frame["user_id"].map(held).fillna(0).astype(int)
    if data is not None and split is not None:
        counts = np.bincount(split.train["user"].to_numpy(), minlength=data.ds.n_users)
        idx = [data.ds.user_index(u) if data.ds.has_user(u) else -1 for u in frame["user_id"]]
        frame["train"] = [int(counts[i]) if i >= 0 else 0 for i in idx]
    else:
        frame["train"] = 0
    return frame


def user_ids(cmp: Comparison) -> list[str]:
    """Evaluated users (those with held-out items), sorted."""
    return sorted(cmp.truth["user_id"].astype(str).unique().tolist())


@dataclass
class UserView:
    """Everything the Inspect page shows for one user (raw ids, display-ready frames).

    ``history``: item_id, name, category, rating, date, review, photo. ``held_out``: item_id, name,
    category, photo, rating. ``recs[technique]``: rank, item_id, name, category, score, hit, photo,
    because, because_photo, because_sim. ``metrics``: technique × metric@k per-user values.
    """

    user_id: str
    history: pd.DataFrame
    held_out: pd.DataFrame
    recs: dict[str, pd.DataFrame]
    metrics: pd.DataFrame
    evaluated: bool


def user_view(
    data: LabData,
    split: Any,
    cmp: Comparison,
    user_id: str,
    techniques: Sequence[str],
    n: int = 10,
    explainers: dict[str, Any] | None = None,
    metrics: Sequence[str] = ("ndcg", "map", "recall", "hit_rate"),
    k: int = 10,
) -> UserView:
    """The user's train history, held-out items and each technique's stored top-``n``.

    Args:
        explainers: technique -> fitted content recommender (with ``item_vecs``) to say which
            history item is closest to each recommendation; see ``content_model``.
    Raises:
        LabError: unknown user id.
    """
    ds = data.ds
    u = ds.user_index(user_id)
    train = split.train[split.train["user"] == u].sort_values("timestamp")
    history = _items_frame(data, train["item"].to_numpy())
    history["rating"] = train["rating"].to_numpy()
    history["date"] = pd.to_datetime(train["timestamp"].to_numpy(), unit="s").date
    history["review"] = [_snippet(t) for t in train["text"]]
    truth = cmp.truth[cmp.truth["user_id"] == str(user_id)]
    relevant = set(truth["item_id"].astype(str))
    test = split.test[split.test["user"] == u]
    held_items = test["item"].to_numpy()
    held = _items_frame(data, held_items)
    held["rating"] = test["rating"].to_numpy()
    held["relevant"] = held["item_id"].isin(relevant)
    recs: dict[str, pd.DataFrame] = {}
    hist_idx = train["item"].to_numpy()
    user_recs = cmp.recs_rows(user_id=str(user_id))
    user_rows = cmp.per_user_rows(user_id=str(user_id), k=int(k))
    for technique in techniques:
        r = user_recs[user_recs["technique"] == technique].sort_values("rank").head(n)
        idx = np.asarray([ds.item_index(i) for i in r["item_id"].astype(str)], dtype=np.int64)
        frame = _items_frame(data, idx)
        frame.insert(0, "rank", r["rank"].to_numpy())
        frame["score"] = r["score"].to_numpy()
        frame["hit"] = frame["item_id"].isin(relevant)
        model = (explainers or {}).get(technique)
        frame["because"], frame["because_photo"], frame["because_sim"] = None, None, np.nan
        if model is not None and len(hist_idx) and len(idx):
            best, sims = closest_history(model.item_vecs, idx, hist_idx)
            frame["because"] = ds.items["name"].to_numpy()[best]
            frame["because_photo"] = data.cover[best]
            frame["because_sim"] = sims
        recs[technique] = frame
    rows = []
    for technique in techniques:
        sel = user_rows[(user_rows["technique"] == technique)
                        & user_rows["metric"].isin(list(metrics))]
        row = {"technique": technique}
        from core.evaluation.metrics import METRIC_LABELS

        for rec in sel.itertuples():
            row[f"{METRIC_LABELS.get(rec.metric, rec.metric)}@{k}"] = rec.value
        rows.append(row)
    return UserView(user_id=str(user_id), history=history, held_out=held, recs=recs,
                    metrics=pd.DataFrame(rows).set_index("technique") if rows else pd.DataFrame(),
                    evaluated=bool(relevant))


def closest_history(item_vecs: np.ndarray, rec_idx: np.ndarray,
                    hist_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each recommended item, the history item (index) with the highest cosine in the
    technique's item space, and that cosine ("because you liked …")."""
    v = np.asarray(item_vecs, dtype=np.float32)
    sims = v[rec_idx] @ v[hist_idx].T
    best = sims.argmax(axis=1)
    return hist_idx[best], sims[np.arange(len(rec_idx)), best]


def _items_frame(data: LabData, idx: np.ndarray) -> pd.DataFrame:
    idx = np.asarray(idx, dtype=np.int64)
    items = data.ds.items
    return pd.DataFrame({
        "item_id": items["item_id"].to_numpy()[idx].astype(str),
        "name": items["name"].to_numpy()[idx],
        "category": data.category[idx],
        "photo": data.cover[idx],
    })


def _snippet(text: Any, n: int = 160) -> str:
    if not isinstance(text, str) or not text.strip():
        return ""
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1].rsplit(" ", 1)[0] + " …"


# --- embeddings: provider, content models, search, maps ----------------------------------------
def provider(data: LabData, cache_root: str | Path, progress: Any = None):
    """An ``EmbeddingProvider`` over the dataset (models load only on cache misses)."""
    from core.store import EmbeddingProvider

    return EmbeddingProvider(data.ds, Path(cache_root), progress=progress)


def fit_context(data: LabData, split: Any, embeddings: Any, encoders: dict[str, str | None],
                options: dict[str, Any] | None = None, seed: int = 42):
    """A ``FitContext`` on the split's train part (for representations and content models)."""
    from core.recommenders.base import FitContext

    opts = {k: v for k, v in (options or {}).items() if k != "tune"}
    return FitContext(
        dataset=data.ds, train=split.train, train_csr=data.ds.csr(split.train),
        valid=split.valid, seed=seed, embeddings=embeddings,
        encoders={r: s for r, s in encoders.items() if s}, options=opts,
    )


def is_content(technique: str) -> bool:
    """Whether ``technique`` scores by cosine of content vectors (has ``item_vecs`` once fitted)."""
    from core.recommenders import get_technique
    from core.recommenders.content import EmbeddingRecommender

    try:
        return issubclass(get_technique(technique), EmbeddingRecommender)
    except LabError:
        return False


def default_side_by_side(available: Sequence[str], n: int = 3) -> list[str]:
    """Up to ``n`` techniques to show side by side: the first ones, with the first content
    technique (which can say "because you liked …") taking the last place when there is one."""
    content = [t for t in available if is_content(t)]
    first = list(available[: n - 1]) if content else list(available[:n])
    if content and content[0] not in first:
        first.append(content[0])
    return first[:n]


def content_model(ctx: Any, technique: str):
    """Fit the content technique ``technique`` on ``ctx`` (embeddings come from the cache; used to
    explain recommendations). ``None`` for techniques without item vectors."""
    from core.recommenders import create_recommender

    if not is_content(technique):
        return None
    model = create_recommender(technique)
    model.fit(ctx)
    return model if getattr(model, "item_vecs", None) is not None else None


SEARCH_MODES = {
    "clip-photos": "CLIP: text → photos (zero-shot)",
    "clip-text": "CLIP: text → item text",
    "text": "Text encoder: text → item text",
}


def search(data: LabData, ctx: Any, query: str, mode: str, n: int = 12) -> pd.DataFrame:
    """Items nearest to a free-text ``query``: columns rank, item_id, name, category, score,
    photo (the best-matching photo in ``clip-photos`` mode, else the cover), caption.

    Modes: ``clip-photos`` (CLIP text tower → photo vectors; an item scores its best photo),
    ``clip-text`` / ``text`` (query → item text vectors of the CLIP or text encoder).
    """
    from core.recommenders.representations import item_text_vectors

    query = (query or "").strip()
    if not query:
        raise LabError("type a few words to search for, e.g. 'spicy noodle soup'")
    if mode not in SEARCH_MODES:
        raise LabError(f"unknown search mode {mode!r}: choose from {', '.join(SEARCH_MODES)}")
    role = "text" if mode == "text" else "clip"
    spec = ctx.encoders.get(role)
    if not spec:
        raise TechniqueUnavailable(f"search mode {SEARCH_MODES[mode]!r} needs a {role} encoder")
    emb = ctx.embeddings
    qv, ok = emb.texts(spec, [query])
    qv = np.asarray(qv, dtype=np.float32)[0]
    ds = data.ds
    if mode == "clip-photos":
        if len(ds.photos) == 0:
            raise TechniqueUnavailable(f"dataset {ds.name} has no photos to search")
        vecs, pok = emb.photos(spec)
        sims = np.where(np.asarray(pok, bool), np.asarray(vecs, np.float32) @ qv, -np.inf)
        ph = ds.photos.assign(score=sims)
        ph = ph[np.isfinite(ph["score"])].sort_values("score", ascending=False)
        best = ph.drop_duplicates("item").head(n)
        idx = best["item"].to_numpy(dtype=np.int64)
        out = _items_frame(data, idx)
        out["photo"] = best["path"].to_numpy()
        out["caption"] = best["caption"].to_numpy()
        out["score"] = best["score"].to_numpy()
    else:
        vecs, has = item_text_vectors(ctx, spec)
        sims = np.where(np.asarray(has, bool), np.asarray(vecs, np.float32) @ qv, -np.inf)
        idx = np.argsort(-sims, kind="stable")[:n]
        idx = idx[np.isfinite(sims[idx])]
        out = _items_frame(data, idx)
        out["caption"] = ""
        out["score"] = sims[idx]
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out.reset_index(drop=True)


def map_choices(encoder_spec: str, shared_space: bool, has_text: bool,
                has_photos: bool) -> dict[str, str]:
    """What the embedding map can show for an encoder: ``{what: label}``."""
    role = encoder_role(encoder_spec)
    out: dict[str, str] = {}
    if role in ("image", "clip") and has_photos:
        out["items-photo"] = "Items (mean of their photos)"
    if role in ("text", "clip"):
        out["items-text"] = "Items (text: reviews or description)"
    if role == "clip" and shared_space and has_photos:
        out["items-both"] = "Items, photo and text vectors together (colour by modality)"
    if role in ("image", "clip") and has_photos:
        out["photos"] = "Photos"
    if role in ("text", "clip") and has_text:
        out["reviews"] = "Reviews (train)"
    return out


@dataclass
class EmbeddingMap:
    """Points of a 2-D map (columns x, y, kind, item_id, name, category, popularity, modality,
    label, photo, hover) plus overlay points for a user (columns x, y, role, name)."""

    points: pd.DataFrame
    overlay: pd.DataFrame
    n_total: int
    cached: bool
    what: str


def embedding_map(
    data: LabData,
    ctx: Any,
    cache_root: str | Path,
    encoder_spec: str,
    what: str,
    seed: int = 42,
    sample: int | None = None,
    user_id: str | None = None,
    recommended: Sequence[str] = (),
) -> EmbeddingMap:
    """UMAP (cosine) map of ``what`` (see ``map_choices``) in ``encoder_spec``'s space, cached in
    DuckDB per (dataset, encoder, what). With ``user_id``: the user's vector (placed among its
    nearest mapped points), history and ``recommended`` item ids are returned as overlay points.
    """
    from core.projection import place_near, project_cached
    from core.recommenders.representations import (
        item_photo_vectors,
        item_text_vectors,
        user_photo_vectors,
        user_text_vectors,
    )

    ds = data.ds
    pop = np.bincount(ctx.train["item"].to_numpy(), minlength=ds.n_items)
    vec_parts: list[np.ndarray] = []
    meta_parts: list[pd.DataFrame] = []

    def items_part(vecs: np.ndarray, has: np.ndarray, modality: str) -> None:
        idx = np.flatnonzero(np.asarray(has, bool))
        frame = _items_frame(data, idx)
        frame["kind"], frame["modality"], frame["label"] = "item", modality, ""
        frame["popularity"] = pop[idx]
        frame["item"] = idx
        vec_parts.append(np.asarray(vecs, np.float32)[idx])
        meta_parts.append(frame)

    if what in ("items-photo", "items-both"):
        items_part(*item_photo_vectors(ctx, encoder_spec), "photo")
    if what in ("items-text", "items-both"):
        items_part(*item_text_vectors(ctx, encoder_spec), "text")
    if what == "photos":
        vecs, ok = ctx.embeddings.photos(encoder_spec)
        rows = np.flatnonzero(np.asarray(ok, bool))
        ph = ds.photos.iloc[rows]
        frame = _items_frame(data, ph["item"].to_numpy())
        frame["photo"] = ph["path"].to_numpy()
        frame["kind"], frame["modality"] = "photo", "photo"
        frame["label"] = ph["label"].to_numpy()
        frame["popularity"] = pop[ph["item"].to_numpy()]
        frame["item"] = ph["item"].to_numpy()
        frame["caption"] = ph["caption"].to_numpy()
        vec_parts.append(np.asarray(vecs, np.float32)[rows])
        meta_parts.append(frame)
    if what == "reviews":
        vecs, ok = ctx.embeddings.reviews(encoder_spec)
        idx = ctx.train.index.to_numpy()
        keep = np.asarray(ok, bool)[idx]
        tr = ctx.train[keep]
        frame = _items_frame(data, tr["item"].to_numpy())
        frame["kind"], frame["modality"] = "review", "review"
        frame["label"] = [f"{r:.0f}★" for r in tr["rating"]]
        frame["popularity"] = pop[tr["item"].to_numpy()]
        frame["item"] = tr["item"].to_numpy()
        frame["caption"] = [_snippet(t, 100) for t in tr["text"]]
        vec_parts.append(np.asarray(vecs, np.float32)[tr.index.to_numpy()])
        meta_parts.append(frame)
    if not vec_parts:
        raise LabError(f"the map cannot show {what!r} for encoder {encoder_spec}")
    vectors = np.concatenate(vec_parts)
    meta = pd.concat(meta_parts, ignore_index=True)
    if "caption" not in meta.columns:
        meta["caption"] = ""
    meta["caption"] = meta["caption"].fillna("")
    key = {"dataset": data.key, "encoder": encoder_spec, "what": what,
           "options": {k: v for k, v in ctx.options.items()}}
    proj = project_cached(vectors, key, cache_root, seed=seed, sample=sample)
    points = meta.iloc[proj.index].reset_index(drop=True)
    points["x"], points["y"] = proj.coords[:, 0], proj.coords[:, 1]
    mapped_vecs = vectors[proj.index]

    overlay = pd.DataFrame(columns=["x", "y", "role", "name", "item_id"])
    if user_id:
        u = ds.user_index(user_id)
        rows = []
        role = encoder_role(encoder_spec)
        text_side = what in ("items-text", "reviews") or role == "text"
        uvecs, uhas = (user_text_vectors(ctx, encoder_spec) if text_side
                       else user_photo_vectors(ctx, encoder_spec))
        if uhas[u]:
            xy = place_near(uvecs[u], mapped_vecs, proj.coords)[0]
            rows.append({"x": xy[0], "y": xy[1], "role": "user", "name": f"user {user_id}",
                         "item_id": ""})
        if what.startswith("items"):
            hist = set(ctx.train.loc[ctx.train["user"] == u, "item"].tolist())
            recs = {ds.item_index(i) for i in recommended if i}
            for row in points.itertuples():
                if row.item in hist:
                    rows.append({"x": row.x, "y": row.y, "role": "history", "name": row.name,
                                 "item_id": row.item_id})
                if row.item in recs:
                    rows.append({"x": row.x, "y": row.y, "role": "recommended",
                                 "name": row.name, "item_id": row.item_id})
        if rows:
            overlay = pd.DataFrame(rows)
    return EmbeddingMap(points=points, overlay=overlay, n_total=len(vectors), cached=proj.cached,
                        what=what)


def _digest(payload: dict[str, Any]) -> str:
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
