"""One user at a time, as the Inspect page shows them: which users to look at (the worst for a
technique, where one technique beats another most), a user's history, held-out items and stored
top-N per technique, and the explanations of content techniques ("because you liked …": the
history item closest to each recommendation in the technique's item space).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.errors import LabError
from core.lab.data import LabData, items_frame, snippet
from core.lab.runs import Comparison, metric_column


def user_metric(cmp: Comparison, technique: str, metric: str, k: int) -> pd.Series:
    """Per-user ``metric@k`` of one technique, indexed by user_id."""
    sel = cmp.per_user_rows(metric=metric, k=int(k), technique=technique)
    return sel.set_index("user_id")["value"]


def worst_users(cmp: Comparison, technique: str, metric: str, k: int, n: int = 20,
                data: LabData | None = None, split: Any = None, *,
                named: bool = False) -> pd.DataFrame:
    """The ``n`` users with the lowest ``metric@k`` for ``technique`` (ties: more held-out items
    first, then the longer train history — the most surprising misses). Columns user_id, value,
    held_out, train; with ``named``, ``value`` is titled after the metric (``"nDCG@10"``)."""
    values = user_metric(cmp, technique, metric, k)
    frame = pd.DataFrame({"user_id": values.index.astype(str), "value": values.to_numpy()})
    frame = _with_user_counts(frame, cmp, data, split)
    frame = frame.sort_values(["value", "held_out", "train", "user_id"],
                              ascending=[True, False, False, True])
    frame = frame.head(n).reset_index(drop=True)
    return frame.rename(columns={"value": metric_column(metric, k)}) if named else frame


def beats(cmp: Comparison, a: str, b: str, metric: str, k: int, n: int = 20,
          data: LabData | None = None, split: Any = None, *, wins_only: bool = False,
          named: bool = False) -> pd.DataFrame:
    """The ``n`` users where ``a`` beats ``b`` most on ``metric@k``. Columns user_id, value (the
    margin ``a - b``), <a>, <b>, held_out, train; ties: user id.

    With ``wins_only``, only users where ``a`` scores higher, and equal margins go to users with
    more held-out items, then the longer train history (a win on one held-out item is often a
    single lucky hit; one on several says more). With ``named``, the columns are titled after the
    metric: ``"Δ nDCG@10 (a − b)"``, ``"a nDCG@10"``, ``"b nDCG@10"``."""
    va, vb = user_metric(cmp, a, metric, k), user_metric(cmp, b, metric, k)
    both = pd.concat([va.rename(a), vb.rename(b)], axis=1, join="inner")
    frame = pd.DataFrame({"user_id": both.index.astype(str),
                          "value": (both[a] - both[b]).to_numpy(),
                          a: both[a].to_numpy(), b: both[b].to_numpy()})
    frame = _with_user_counts(frame, cmp, data, split)
    if wins_only:
        frame = frame[frame["value"] > 0].sort_values(
            ["value", "held_out", "train", "user_id"], ascending=[False, False, False, True])
    else:
        frame = frame.sort_values(["value", "user_id"], ascending=[False, True])
    frame = frame.head(n).reset_index(drop=True)
    if not named:
        return frame
    col = metric_column(metric, k)
    return frame.rename(columns={"value": f"Δ {col} ({a} − {b})", a: f"{a} {col}",
                                 b: f"{b} {col}"})


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
    return cmp.evaluated_users()


@dataclass
class UserView:
    """Everything the Inspect page shows for one user (raw ids, display-ready frames).

    ``history``: item_id, name, category, city, photo, rating, date, review. ``held_out``:
    item_id, name, category, city, photo, rating, relevant. ``recs[technique]``: rank, item_id,
    name, category, city, photo, score (the technique's raw score), score_scaled, hit, because,
    because_photo, because_sim. ``city`` is ``""`` when the data has none. ``metrics``:
    technique × metric@k per-user values at ``k``, the cards' cut-off.

    ``score_scaled`` puts scores of different techniques on one scale: the raw score min-max
    scaled over the technique's stored list for this user (``SCORE_NOTE``).
    """

    user_id: str
    history: pd.DataFrame
    held_out: pd.DataFrame
    recs: dict[str, pd.DataFrame]
    metrics: pd.DataFrame
    evaluated: bool
    k: int = 10


#: What the cards' comparable score is (the page's caption says it).
SCORE_NOTE = ("score: the technique's raw score scaled to [0, 1] over its stored list for this "
              "user (the top 50: 1 = its first pick, 0 = its last), so techniques with different "
              "score ranges compare; the raw score is in the card's tooltip")


def _items(data: LabData, idx: np.ndarray) -> pd.DataFrame:
    """``items_frame`` of the item indices ``idx`` with a ``city`` column after ``category``, to
    tell apart items of the same name (``""`` when the data has no city)."""
    idx = np.asarray(idx, dtype=np.int64)
    frame = items_frame(data, idx)
    items = data.ds.items
    city = (items["city"].take(idx).fillna("").astype(str).to_numpy()
            if "city" in items.columns else np.full(len(frame), "", dtype=object))
    frame.insert(frame.columns.get_loc("category") + 1, "city", city)
    return frame


def _split_rows(frame: pd.DataFrame, sizes: Sequence[int]) -> list[pd.DataFrame]:
    """``frame`` cut into consecutive parts of ``sizes`` rows, each indexed from 0."""
    ends = np.cumsum(sizes)
    return [frame.iloc[end - size:end].reset_index(drop=True) for size, end in zip(sizes, ends)]


def _scaled(scores: np.ndarray) -> np.ndarray:
    """Min-max scaling of the finite scores to [0, 1] (all 1 when they are equal; others NaN)."""
    s = np.asarray(scores, dtype=np.float64)
    finite = np.isfinite(s)
    out = np.full(s.shape, np.nan)
    if finite.any():
        lo, hi = s[finite].min(), s[finite].max()
        out[finite] = 1.0 if hi <= lo else (s[finite] - lo) / (hi - lo)
    return out


def user_view(
    data: LabData,
    split: Any,
    cmp: Comparison,
    user_id: str,
    techniques: Sequence[str],
    n: int = 10,
    explainers: dict[str, Any] | None = None,
    metrics: Sequence[str] = ("ndcg", "map", "recall", "hit_rate"),
    k: int | None = None,
    reviews: int | None = None,
) -> UserView:
    """The user's train history, held-out items and each technique's stored top-``n``, with the
    per-user ``metrics`` at ``k`` (default ``n``: one cut-off for the cards and the numbers; a
    run stores per-user values at ``KS``).

    Args:
        explainers: technique -> fitted content recommender (with ``item_vecs``) to say which
            history item is closest to each recommendation; see ``content_model``.
        reviews: read the review texts of the first ``reviews`` history rows only (the ones a
            page shows; the others' ``review`` is ``""``); default every row.
    Raises:
        LabError: unknown user id.
    """
    k = int(n if k is None else k)
    ds = data.ds
    u = ds.user_index(user_id)
    train = split.train[split.train["user"] == u].sort_values("timestamp")
    test = split.test[split.test["user"] == u]
    hist_idx = train["item"].to_numpy()
    held_items = test["item"].to_numpy()
    user_rows, user_recs = cmp.user_rows(str(user_id), k=k)
    stored = {t: user_recs[user_recs["technique"] == t].sort_values("rank") for t in techniques}
    rec_idx = {t: np.asarray([ds.item_index(i) for i in r.head(n)["item_id"].astype(str)],
                             dtype=np.int64) for t, r in stored.items()}
    # one items frame for every item shown (history, held out, each technique's list)
    parts = [hist_idx, held_items, *rec_idx.values()]
    history, held, *rec_frames = _split_rows(
        _items(data, np.concatenate(parts).astype(np.int64)), [len(p) for p in parts])

    history["rating"] = train["rating"].to_numpy()
    history["date"] = pd.to_datetime(train["timestamp"].to_numpy(), unit="s").date
    shown = train.index if reviews is None else train.index[: max(0, int(reviews))]
    texts = [snippet(t) for t in ds.texts.get(shown)]
    history["review"] = texts + [""] * (len(history) - len(texts))
    truth = cmp.truth[cmp.truth["user_id"] == str(user_id)]
    relevant = set(truth["item_id"].astype(str))
    held["rating"] = test["rating"].to_numpy()
    held["relevant"] = held["item_id"].isin(relevant)
    recs: dict[str, pd.DataFrame] = {}
    for technique, frame in zip(rec_idx, rec_frames):
        r = stored[technique]
        idx = rec_idx[technique]
        scaled = _scaled(r["score"].to_numpy())[: int(n)]
        r = r.head(n)
        frame.insert(0, "rank", r["rank"].to_numpy())
        frame["score"] = r["score"].to_numpy()
        frame["score_scaled"] = scaled
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
        for rec in sel.itertuples():
            row[metric_column(rec.metric, k)] = rec.value
        rows.append(row)
    table = pd.DataFrame(rows).set_index("technique") if rows else pd.DataFrame()
    table = table[[c for c in (metric_column(m, k) for m in metrics) if c in table.columns]]
    return UserView(user_id=str(user_id), history=history, held_out=held, recs=recs,
                    metrics=table,
                    evaluated=bool(relevant), k=k)


def closest_history(item_vecs: np.ndarray, rec_idx: np.ndarray,
                    hist_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each recommended item, the history item (index) with the highest cosine in the
    technique's item space, and that cosine ("because you liked …")."""
    v = np.asarray(item_vecs, dtype=np.float32)
    sims = v[rec_idx] @ v[hist_idx].T
    best = sims.argmax(axis=1)
    return hist_idx[best], sims[np.arange(len(rec_idx)), best]


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
