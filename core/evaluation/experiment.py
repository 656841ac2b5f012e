"""The experiment runner: one split, several techniques, tidy results; saving and re-measuring runs.

``run_experiment`` fits every technique on the same split and evaluates it with the same protocol
(``core.evaluation.evaluator``). Its result is tidy data the CLI and the app only display:
``metrics`` (technique, encoder, metric, k, value, n_users), per-user values, the top-K lists with
raw ids, the relevant held-out items, skipped techniques with their reasons, timings and chosen
hyperparameters, and the protocol ``audit`` of the split (``protocol_audit``). ``save_run`` writes
it to a directory; ``recompute_metrics`` proves that every metric follows from ``recs`` + ``truth``
(+ item popularity for novelty) alone.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from core.data.dataset import Dataset
from core.errors import EncoderUnavailable, LabError, TechniqueUnavailable
from core.evaluation.evaluator import EvalResult, Validator, evaluate_model, relevant_matrix
from core.evaluation.metrics import METRICS, evaluate_topk
from core.evaluation.splits import Split, make_split
from core.progress import Progress, ProgressEvent, resolve_progress, stamped
from core.recommenders.spec import TechniqueSpec, as_specs

DEFAULT_KS = (10, 20, 30)
DEFAULT_TECHNIQUES = ("random", "popular", "als", "bpr", "itemknn")
METRIC_COLUMNS = ["technique", "encoder", "metric", "k", "value", "n_users"]


@dataclass
class ExperimentResult:
    """Everything one ``run_experiment`` call produced (tidy frames + run metadata), keyed by
    the row label (``TechniqueSpec.label``: the technique name for a row without params).

    Attributes:
        metrics: columns ``METRIC_COLUMNS``, one row per (row label, metric, k); ``encoder`` is the
            encoder(s) the row ran with (``Recommender.row_encoders``: a row's ``encoder`` param
            wins over the run's encoder of that role).
        per_user: columns technique, user_id (raw id), metric, k, value (coverage has no per-user
            value).
        recs: columns technique, user_id, rank (1-based), item_id, score: top ``max(ks)`` per
            evaluated user (raw ids; positions with nothing left to rank are omitted).
        truth: columns user_id, item_id: the relevant held-out interactions of evaluated users.
        skipped: columns technique, reason.
        timings: row label -> {"fit_s", "eval_s"}.
        params: row label -> hyperparameters used (incl. what validation picked).
        cold_users: row label -> evaluated users without train history (they got the fallback).
        items: columns item_id, train_users (distinct train users per item; novelty's c_i).
        meta: dataset, split (kind, seed, ratios, sizes), seed, ks, n_items, n_users, n_train_users,
            encoders, options, fallbacks, techniques (the row labels in order), rows (row label ->
            ``TechniqueSpec.identity()``: technique and params), labels (row label -> how it
            reads in tables: ``Recommender.row_title``, or ``params["row_label"]`` when the
            technique refines it after fitting, e.g. a hybrid that kept ALS alone), audit
            (``protocol_audit``, with ``cold_users`` per row).
        models: row label -> the fitted ``Recommender`` (in memory only; not saved).
    """

    metrics: pd.DataFrame
    per_user: pd.DataFrame
    recs: pd.DataFrame
    truth: pd.DataFrame
    skipped: pd.DataFrame
    timings: dict[str, dict[str, float]] = field(default_factory=dict)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    cold_users: dict[str, int] = field(default_factory=dict)
    items: pd.DataFrame | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict)

    def table(self, metrics: list[str] | None = None) -> pd.DataFrame:
        """Wide view: rows = techniques (run order), columns = ``metric@k``, plus ``n_users``."""
        return wide_table(self.metrics, metrics)


def wide_table(metrics: pd.DataFrame, which: list[str] | None = None) -> pd.DataFrame:
    """Pivot a tidy metrics frame to rows = technique, columns = ``metric@k`` (+ n_users)."""
    if metrics.empty:
        return pd.DataFrame()
    frame = metrics if which is None else metrics[metrics["metric"].isin(which)]
    order_t = list(dict.fromkeys(frame["technique"]))
    names = [m for m in METRICS if m in set(frame["metric"])]
    ks = sorted(frame["k"].unique())
    frame = frame.assign(col=frame["metric"] + "@" + frame["k"].astype(str))
    wide = frame.pivot_table(index="technique", columns="col", values="value", sort=False)
    cols = [f"{m}@{k}" for m in names for k in ks if f"{m}@{k}" in wide.columns]
    wide = wide.reindex(index=order_t, columns=cols)
    n_users = frame.groupby("technique", sort=False)["n_users"].first()
    wide.insert(0, "n_users", n_users.reindex(order_t).astype(int))
    return wide


def protocol_audit(
    train: sp.csr_matrix, valid: sp.csr_matrix, test: sp.csr_matrix, relevant: sp.csr_matrix
) -> dict[str, int]:
    """Checks of a split against the evaluation protocol, from binary users x items matrices.

    Args:
        train, valid, test: the split's parts (``Dataset.csr``: a repeated pair counts once).
        relevant: the held-out pairs that count as relevant (``relevant_matrix``; a subset of
            ``test``); its users with at least one pair are the evaluated users.
    Returns:
        ``test_pairs`` (distinct held-out user-item pairs), ``test_pairs_in_train`` /
        ``test_pairs_in_valid`` (those the same user also has in train / validation: a repeated
        pair split apart, 0 when repeats are collapsed before splitting), ``relevant_pairs``,
        ``unreachable_relevant`` (relevant pairs in the user's train or validation: the evaluator
        masks them as already seen, so no technique can rank them and recall cannot reach 1),
        ``evaluated_users``.
    """
    seen = (train + valid).tocsr()
    seen.data[:] = 1.0
    return {
        "test_pairs": int(test.count_nonzero()),
        "test_pairs_in_train": int(test.multiply(train).count_nonzero()),
        "test_pairs_in_valid": int(test.multiply(valid).count_nonzero()),
        "relevant_pairs": int(relevant.count_nonzero()),
        "unreachable_relevant": int(relevant.multiply(seen).count_nonzero()),
        "evaluated_users": int((np.diff(relevant.indptr) > 0).sum()),
    }


def audit_event(audit: dict[str, Any]) -> ProgressEvent:
    """The audit as an ``audit`` event: one sentence, ``warning`` when a held-out pair is also in
    train or validation or a relevant pair is unreachable."""
    in_train, in_valid = audit.get("test_pairs_in_train", 0), audit.get("test_pairs_in_valid", 0)
    unreachable = audit.get("unreachable_relevant", 0)
    text = (f"protocol audit: {in_train} held-out test pairs also in the user's train, "
            f"{in_valid} in validation; {unreachable} of {audit.get('relevant_pairs', 0)} "
            f"relevant pairs unreachable (masked as already seen); "
            f"{audit.get('evaluated_users', 0)} users evaluated")
    if not (in_train or in_valid or unreachable):
        return ProgressEvent("audit", message=text)
    return ProgressEvent("audit", warning=True, message=(
        text + ". Repeated user-item pairs were split apart: collapse them before splitting (the "
        "loader's LoadOptions.repeats); until then recall and nDCG cannot reach 1 for the users "
        "concerned"))


def audit_note(audit: dict[str, Any]) -> str:
    """One line on the audit; it starts with ``warning:`` when a held-out pair is also in train
    or validation or a relevant pair is unreachable (``audit_event``'s line)."""
    return audit_event(audit).line()


def run_experiment(
    ds: Dataset,
    split: str | Split = "random",
    techniques: Iterable[str | TechniqueSpec] = DEFAULT_TECHNIQUES,
    ks: list[int] | tuple[int, ...] = DEFAULT_KS,
    seed: int = 42,
    cache_root: str | Path | None = None,
    encoders: dict[str, str] | None = None,
    options: dict[str, Any] | None = None,
    progress: bool | Progress | None = None,
    tune: bool = True,
) -> ExperimentResult:
    """Fit and evaluate the rows ``techniques`` on one split of ``ds``.

    Args:
        techniques: the rows: registry names or ``TechniqueSpec`` (technique, params, label); a
            name is a row without params. Everything is keyed by the row's label.
        split: a split kind (``random``, ``user``, ``temporal``, ``cold-item``) or a ``Split``.
        ks: cut-offs; every metric is computed at each from one top-``max(ks)`` pass.
        cache_root: cache directory for the embedding provider (only built if a row's technique
            uses an encoder).
        encoders: role (``text``/``image``/``clip``) -> encoder spec, passed to the techniques.
        options: run-wide switches passed in ``FitContext.options`` (``min_rating``, ``tune``,
            ``photo_filter``, ``review_filter``, ``threads``).
        progress: a ``core.progress.Progress`` called with ``ProgressEvent``s (phases ``audit``,
            ``fit``, ``tune``, ``embed``, ``evaluate``, ``done``, ``skipped``, ``note``; the
            event's ``technique`` is the row label), ``True`` for ``ConsoleProgress`` (tqdm bars
            and lines on stderr), ``None`` for silence.
        tune: pick hyperparameters on the validation part (else defaults).

    A row whose technique raises ``TechniqueUnavailable`` or ``EncoderUnavailable`` is listed in
    ``skipped`` with the reason; an unknown technique name raises ``TechniqueUnavailable`` at once,
    two rows with one label ``LabError``.
    """
    from core.recommenders import FitContext, get_technique

    encoders = dict(encoders or {})
    options = dict(options or {})
    options.setdefault("tune", bool(tune))
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise LabError(f"cut-offs must be positive integers, got {ks}")
    rows = as_specs(techniques)
    classes = {row.label: get_technique(row.technique) for row in rows}  # fail fast on typos
    sink = resolve_progress(progress)
    fitting: list[str | None] = [None]  # the row whose events these are
    emit = stamped(sink, lambda: fitting[0]) or (lambda event: None)
    if not isinstance(split, Split):
        split = make_split(ds, split, seed)
    min_rating = options.get("min_rating")
    train_csr = ds.csr(split.train)
    valid_csr = ds.csr(split.valid)
    relevant = relevant_matrix(split.test, ds.n_users, ds.n_items, min_rating)
    users = np.nonzero(np.diff(relevant.indptr) > 0)[0]
    if len(users) == 0:
        raise LabError(
            f"{ds.name}: no user has a relevant held-out interaction in the {split.kind} split"
            + (f" with --min-rating {min_rating}" if min_rating is not None else ""))
    audit: dict[str, Any] = protocol_audit(train_csr, valid_csr, ds.csr(split.test), relevant)
    emit(audit_event(audit))

    embeddings = None
    embed_error: str | None = None
    if any(cls.uses for cls in classes.values()):
        try:
            from core.config import cache_dir
            from core.store import EmbeddingProvider

            embeddings = EmbeddingProvider(ds, cache_dir(cache_root), progress=emit)
        except (ImportError, AttributeError) as exc:
            embed_error = f"the embedding layer is not available ({exc})"
    valid = split.valid if tune and len(split.valid) else None
    ctx = FitContext(
        dataset=ds, train=split.train, train_csr=train_csr, valid=valid, seed=seed,
        embeddings=embeddings, encoders=encoders, options=options, progress=emit,
        validator=None if valid is None else Validator.of(ds, train_csr, valid, seed, min_rating),
    )

    item_users = np.asarray(train_csr.getnnz(axis=0), dtype=np.int64)
    n_train_users = int((np.diff(train_csr.indptr) > 0).sum())
    user_ids = np.asarray(ds.user_ids, dtype=object)
    item_ids = np.asarray(ds.item_ids, dtype=object)

    metric_rows: list[dict[str, Any]] = []
    per_user_parts, rec_parts, skipped = [], [], []
    timings: dict[str, dict[str, float]] = {}
    params: dict[str, dict[str, Any]] = {}
    cold: dict[str, int] = {}
    models: dict[str, Any] = {}
    for row in rows:
        name, cls = row.label, classes[row.label]
        fitting[0] = name
        if cls.needs and embed_error:
            skipped.append({"technique": name, "reason": embed_error})
            emit(ProgressEvent("skipped", name, message=embed_error))
            continue
        try:
            model = cls(**dict(row.params))
            emit(ProgressEvent("fit", name, message="fitting"))
            t0 = time.perf_counter()
            model.fit(ctx)
            fit_s = time.perf_counter() - t0
            scored = [0]

            def users_done(n: int, name: str = name) -> None:
                scored[0] += n
                emit(ProgressEvent("evaluate", name, scored[0], len(users), "evaluating"))

            emit(ProgressEvent("evaluate", name, 0, len(users), "evaluating"))
            t0 = time.perf_counter()
            res = evaluate_model(model, train_csr, relevant, ks, exclude=valid_csr, users=users,
                                 progress=users_done)
            eval_s = time.perf_counter() - t0
        except (TechniqueUnavailable, EncoderUnavailable) as exc:
            skipped.append({"technique": name, "reason": str(exc)})
            emit(ProgressEvent("skipped", name, message=str(exc)))
            continue
        row_encoders = cls.row_encoders(row.params, encoders)
        encoder = "+".join(row_encoders[r] for r in sorted(row_encoders))
        timings[name] = {"fit_s": round(fit_s, 4), "eval_s": round(eval_s, 4)}
        params[name] = _jsonable(model.params)
        cold[name] = res.cold_users
        models[name] = model
        for (metric, k), value in res.metrics.values.items():
            metric_rows.append({"technique": name, "encoder": encoder, "metric": metric, "k": k,
                                "value": value, "n_users": res.n_users})
        per_user_parts.append(_per_user_frame(name, res, user_ids))
        rec_parts.append(_recs_frame(name, res, user_ids, item_ids))
        emit(ProgressEvent("done", name, message=f"fit {fit_s:.1f}s, evaluation {eval_s:.1f}s"))
    fitting[0] = None

    metrics = pd.DataFrame(metric_rows, columns=METRIC_COLUMNS)
    if not metrics.empty:
        order = {m: i for i, m in enumerate(METRICS)}
        metrics = metrics.assign(_o=metrics["metric"].map(order)).sort_values(
            ["_o", "k"], kind="stable").drop(columns="_o")
        row_order = {t: i for i, t in enumerate(classes)}
        metrics = metrics.sort_values("technique", key=lambda s: s.map(row_order),
                                      kind="stable").reset_index(drop=True)
    rel = relevant[users].tocoo()
    truth = pd.DataFrame({"user_id": user_ids[users[rel.row]], "item_id": item_ids[rel.col]})
    meta = {
        "dataset": ds.name,
        "split": split.describe(),
        "seed": int(seed),
        "ks": ks,
        "n_items": int(ds.n_items),
        "n_users": int(len(users)),
        "n_train_users": n_train_users,
        "encoders": encoders,
        "options": _jsonable(options),
        "tune": bool(tune),
        "fallbacks": {n: c.fallback for n, c in classes.items()},
        "labels": {r.label: str(params.get(r.label, {}).get("row_label")
                                or classes[r.label].row_title(r.params)) for r in rows},
        "techniques": list(classes),
        "rows": {r.label: _jsonable(r.identity()) for r in rows},
        "audit": {**audit, "cold_users": dict(cold)},
    }
    return ExperimentResult(
        metrics=metrics,
        per_user=pd.concat(per_user_parts, ignore_index=True) if per_user_parts
        else pd.DataFrame(columns=["technique", "user_id", "metric", "k", "value"]),
        recs=pd.concat(rec_parts, ignore_index=True) if rec_parts
        else pd.DataFrame(columns=["technique", "user_id", "rank", "item_id", "score"]),
        truth=truth,
        skipped=pd.DataFrame(skipped, columns=["technique", "reason"]),
        timings=timings, params=params, cold_users=cold,
        items=pd.DataFrame({"item_id": item_ids, "train_users": item_users}),
        meta=meta, models=models,
    )


def _per_user_frame(name: str, res: EvalResult, user_ids: np.ndarray) -> pd.DataFrame:
    parts = []
    raw = user_ids[res.users]
    for metric, by_k in res.metrics.per_user.items():
        for k, values in by_k.items():
            parts.append(pd.DataFrame({"user_id": raw, "metric": metric, "k": k, "value": values}))
    frame = pd.concat(parts, ignore_index=True)
    frame.insert(0, "technique", name)
    return frame


def _recs_frame(name: str, res: EvalResult, user_ids: np.ndarray, item_ids: np.ndarray):
    n, big_k = res.ranked.shape
    rows = np.repeat(np.arange(n), big_k)
    ranks = np.tile(np.arange(1, big_k + 1), n)
    ids = res.ranked.ravel()
    keep = ids >= 0
    return pd.DataFrame({
        "technique": name,
        "user_id": user_ids[res.users[rows[keep]]],
        "rank": ranks[keep].astype(np.int32),
        "item_id": item_ids[ids[keep]],
        "score": res.scores.ravel()[keep].astype(np.float32),
    })


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("mmrec-lab", "numpy", "scipy", "pandas", "implicit", "pyarrow", "torch",
                "open_clip_torch", "sentence-transformers"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def save_run(result: ExperimentResult, directory: str | Path) -> Path:
    """Write a run: ``recs.parquet``, ``truth.parquet``, ``metrics.parquet``, ``items.parquet``
    (item_id, train_users) and ``run.json`` (dataset, split, seed, ks, n_items, n_train_users,
    encoders, options, audit, params, timings, cold users, skipped, package versions)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    result.recs.to_parquet(out / "recs.parquet", index=False)
    result.truth.to_parquet(out / "truth.parquet", index=False)
    result.metrics.to_parquet(out / "metrics.parquet", index=False)
    if result.items is not None:
        result.items.to_parquet(out / "items.parquet", index=False)
    run = {
        **_jsonable(result.meta),
        "params": _jsonable(result.params),
        "timings": result.timings,
        "cold_users": result.cold_users,
        "skipped": result.skipped.to_dict(orient="records"),
        "versions": _versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "files": ["recs.parquet", "truth.parquet", "metrics.parquet", "items.parquet"],
    }
    (out / "run.json").write_text(json.dumps(run, indent=2))
    return out


def load_run(directory: str | Path) -> dict[str, Any]:
    """Read a saved run back: ``{"run": dict, "recs", "truth", "metrics", "items": DataFrame}``."""
    path = Path(directory)
    if not (path / "run.json").is_file():
        raise LabError(f"{path}: not a saved run (run.json is missing)")
    out: dict[str, Any] = {"run": json.loads((path / "run.json").read_text())}
    for name in ("recs", "truth", "metrics", "items"):
        f = path / f"{name}.parquet"
        out[name] = pd.read_parquet(f) if f.is_file() else None
    return out


def recompute_metrics(
    recs: pd.DataFrame,
    truth: pd.DataFrame,
    ks: list[int] | tuple[int, ...],
    n_items: int,
    items: pd.DataFrame | None = None,
    n_train_users: int | None = None,
) -> pd.DataFrame:
    """Every metric from the saved lists alone: tidy (technique, metric, k, value, n_users).

    Users evaluated are those in ``truth``; a user missing from a technique's ``recs`` counts as an
    empty list. Novelty needs ``items`` (item_id, train_users) and ``n_train_users``; coverage needs
    ``n_items``.
    """
    ks = sorted({int(k) for k in ks})
    big_k = ks[-1]
    user_list = pd.Index(pd.unique(truth["user_id"]))
    catalogue = pd.Index(items["item_id"]) if items is not None else pd.Index(
        pd.unique(pd.concat([truth["item_id"], recs["item_id"]])))
    n_cols = max(len(catalogue), 1)
    rows = user_list.get_indexer(truth["user_id"])
    cols = catalogue.get_indexer(truth["item_id"])
    relevant = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                             shape=(len(user_list), n_cols))
    relevant.sum_duplicates()
    popularity = None
    if items is not None and n_train_users is not None:
        popularity = items["train_users"].to_numpy(dtype=np.float64)
    out = []
    for tech, frame in recs.groupby("technique", sort=False):
        ranked = np.full((len(user_list), big_k), -1, dtype=np.int64)
        frame = frame[(frame["rank"] >= 1) & (frame["rank"] <= big_k)]
        r = user_list.get_indexer(frame["user_id"])
        c = catalogue.get_indexer(frame["item_id"])
        ok = r >= 0
        ranked[r[ok], frame["rank"].to_numpy()[ok] - 1] = c[ok]
        res = evaluate_topk(ranked, relevant, ks, popularity, n_items, n_train_users)
        for (metric, k), value in res.values.items():
            out.append({"technique": tech, "metric": metric, "k": k, "value": value,
                        "n_users": len(user_list)})
    return pd.DataFrame(out, columns=["technique", "metric", "k", "value", "n_users"])
