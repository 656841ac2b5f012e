"""One item, as the Embedding page's item view shows it: photos, document text, reviews, who
consumed it, its nearest neighbours in the map's space, and which stored techniques recommend it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.errors import LabError
from core.lab.data import LabData, items_frame, snippet


@dataclass
class ItemView:
    """Everything the item view shows about one item.

    Attributes:
        item_id, name, city, categories, document: what the item is (``document`` is the text
            content techniques embed for it, ``Dataset.item_text``).
        photos: path, caption and label of each of its photos.
        reviews: up to ``n_reviews`` train reviews (user_id, stars, text), newest first.
        consumers: how many users interacted with it in train; ``consumer_ids`` a few of them.
        neighbours: its nearest other items by cosine in the map's space (item_id, name, category,
            city, photo, similarity), empty without a map.
        recommended_by: per stored technique, in how many users' top 10 it is and its best rank
            (technique, users, best_rank); empty without stored runs.
    """

    item_id: str
    name: str
    city: str
    categories: str
    document: str
    photos: pd.DataFrame
    reviews: pd.DataFrame
    consumers: int
    consumer_ids: list[str]
    neighbours: pd.DataFrame = field(default_factory=pd.DataFrame)
    recommended_by: pd.DataFrame = field(default_factory=pd.DataFrame)


def item_view(data: LabData, ctx: Any, item_id: str, emap: Any = None, comparison: Any = None,
              n_neighbours: int = 6, n_reviews: int = 5, top: int = 10) -> ItemView:
    """The item view of raw ``item_id``: ``emap`` (an ``EmbeddingMap``) gives the space of the
    neighbours, ``comparison`` (a ``Comparison``) the stored top-``top`` lists.

    Raises ``LabError`` for an unknown item id."""
    ds = data.ds
    if item_id not in set(ds.items["item_id"].astype(str)):
        raise LabError(f"unknown item id {item_id!r} in {data.spec}")
    idx = ds.item_index(item_id)
    row = ds.items.iloc[idx]
    photos = ds.photos[ds.photos["item"] == idx][["path", "caption", "label"]]
    train = ctx.train[ctx.train["item"] == idx]
    recent = train.sort_values("timestamp", ascending=False)
    has_text = ds.texts.nonblank()[recent.index.to_numpy()]
    reviews = recent[has_text].head(n_reviews)
    reviews = pd.DataFrame({
        "user_id": np.asarray(ds.user_ids, dtype=object)[reviews["user"].to_numpy()].astype(str),
        "stars": reviews["rating"].to_numpy(),
        "text": [snippet(t, 300) for t in ds.texts.get(reviews.index)],
    })
    users = np.asarray(ds.user_ids, dtype=object)[recent["user"].to_numpy()].astype(str)
    city = row.get("city") if "city" in row.index else None
    return ItemView(
        item_id=str(item_id), name=str(row["name"]),
        city="" if city is None or (isinstance(city, float) and np.isnan(city)) else str(city),
        categories=str(row["categories"] or ""), document=ds.item_text()[idx],
        photos=photos.reset_index(drop=True), reviews=reviews, consumers=len(np.unique(users)),
        consumer_ids=list(dict.fromkeys(users))[:10],
        neighbours=_neighbours(data, emap, idx, n_neighbours) if emap is not None
        else pd.DataFrame(),
        recommended_by=_recommended_by(comparison, str(item_id), top) if comparison is not None
        else pd.DataFrame(),
    )


def _neighbours(data: LabData, emap: Any, idx: int, n: int) -> pd.DataFrame:
    """The ``n`` items nearest to item ``idx`` by cosine over the map's vectors: the item's own
    vector is the mean of its mapped points (item, photo or review points), and so is each other
    item's; empty when the item has no mapped point."""
    from core.encoders.base import l2_normalise

    columns = ["item_id", "name", "category", "city", "photo", "similarity"]
    pts, vecs = emap.points, emap.vectors
    if vecs is None or not len(pts):
        return pd.DataFrame(columns=columns)
    items = pts["item"].to_numpy(dtype=np.int64)
    own = items == idx
    if not own.any():
        return pd.DataFrame(columns=columns)
    uniq, inv = np.unique(items, return_inverse=True)
    sums = np.zeros((len(uniq), vecs.shape[1]), dtype=np.float64)
    np.add.at(sums, inv, np.asarray(vecs, np.float64))
    means = l2_normalise(sums.astype(np.float32))
    me = means[np.searchsorted(uniq, idx)]
    sims = means.astype(np.float64) @ me.astype(np.float64)
    sims[uniq == idx] = -np.inf
    order = np.argsort(-sims, kind="stable")[:n]
    order = order[np.isfinite(sims[order])]
    frame = items_frame(data, uniq[order])
    frame["similarity"] = np.round(sims[order], 4)
    items_city = data.ds.items["city"] if "city" in data.ds.items else None
    frame["city"] = ("" if items_city is None
                     else items_city.fillna("").astype(str).to_numpy()[uniq[order]])
    return frame[columns]


def _recommended_by(comparison: Any, item_id: str, top: int) -> pd.DataFrame:
    """Per stored technique: users whose top ``top`` holds the item, and its best rank there."""
    columns = ["technique", "users", "best_rank"]
    rows = comparison.recs_rows(item_id=item_id)
    if rows is None or not len(rows):
        return pd.DataFrame(columns=columns)
    rows = rows[rows["rank"] <= top]
    out = [{"technique": t, "users": int(rows.loc[rows["technique"] == t, "user_id"].nunique()),
            "best_rank": int(rows.loc[rows["technique"] == t, "rank"].min())
            if (rows["technique"] == t).any() else None}
           for t in comparison.available]
    return pd.DataFrame(out, columns=columns)
