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
from core.lab.runs import Comparison


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
    from core.evaluation.metrics import METRIC_LABELS

    ds = data.ds
    u = ds.user_index(user_id)
    train = split.train[split.train["user"] == u].sort_values("timestamp")
    history = items_frame(data, train["item"].to_numpy())
    history["rating"] = train["rating"].to_numpy()
    history["date"] = pd.to_datetime(train["timestamp"].to_numpy(), unit="s").date
    history["review"] = [snippet(t) for t in train["text"]]
    truth = cmp.truth[cmp.truth["user_id"] == str(user_id)]
    relevant = set(truth["item_id"].astype(str))
    test = split.test[split.test["user"] == u]
    held_items = test["item"].to_numpy()
    held = items_frame(data, held_items)
    held["rating"] = test["rating"].to_numpy()
    held["relevant"] = held["item_id"].isin(relevant)
    recs: dict[str, pd.DataFrame] = {}
    hist_idx = train["item"].to_numpy()
    user_recs = cmp.recs_rows(user_id=str(user_id))
    user_rows = cmp.per_user_rows(user_id=str(user_id), k=int(k))
    for technique in techniques:
        r = user_recs[user_recs["technique"] == technique].sort_values("rank").head(n)
        idx = np.asarray([ds.item_index(i) for i in r["item_id"].astype(str)], dtype=np.int64)
        frame = items_frame(data, idx)
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
