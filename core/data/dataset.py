"""The canonical dataset every loader returns; nothing downstream knows the source format.

Indices are the engine's currency: users are ``0..n_users-1`` and items ``0..n_items-1``.
The ``Dataset`` owns the raw-id <-> index maps; pages and the CLI speak raw ids and convert here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from core.errors import DatasetError

#: Columns of ``Dataset.interactions`` (one row per user-item event, e.g. a review).
INTERACTION_COLUMNS = ("user", "item", "rating", "timestamp", "review_id", "text")
#: Columns every ``Dataset.items`` frame has (row ``i`` describes item ``i``); loaders may add more.
ITEM_COLUMNS = ("item_id", "name", "categories", "description", "attributes")
#: Columns of ``Dataset.photos`` (one row per image; ``path`` is absolute).
PHOTO_COLUMNS = ("photo_id", "item", "path", "caption", "label")


@dataclass
class LoadReport:
    """What a loader counted while reading: skips, unknown references, missing files, filters.

    ``counts`` maps a short snake_case key to a number (``malformed_lines``,
    ``unknown_item_interactions``, ``photos_missing_on_disk``, ``items_without_photos``, ...);
    ``warnings`` holds human-readable lines naming the file (and line) concerned.
    Both are shown by ``datasets describe`` and the app.
    """

    counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + int(n)

    def warn(self, message: str) -> None:
        self.warnings.append(message)


@dataclass
class Dataset:
    """Interactions, items, photos and id maps of one loaded dataset.

    Attributes:
        name: the spec it was loaded from (``demo``, ``yelp:/path``, ...), used as its identity.
        interactions: columns ``INTERACTION_COLUMNS``: ``user``/``item`` int32 indices,
            ``rating`` float32, ``timestamp`` int64 (seconds since the epoch), ``review_id`` and
            ``text`` (string or None).
            Sorted by (timestamp, user, item) with a fresh RangeIndex.
        items: one row per item index, columns ``ITEM_COLUMNS`` at least; ``categories`` is a
            comma-separated string, ``attributes`` a ``{name: value}`` dict (possibly empty).
        photos: columns ``PHOTO_COLUMNS``; ``item`` is the item index. Only photos present on disk.
        user_ids: raw user id of each user index (object array of str).
        report: counts and warnings gathered while loading.
        domain: a word for an item in prompts and page labels ("restaurant", "movie", "product").
    """

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame
    photos: pd.DataFrame
    user_ids: np.ndarray
    report: LoadReport = field(default_factory=LoadReport)
    domain: str = "item"

    def __post_init__(self) -> None:
        missing = [c for c in INTERACTION_COLUMNS if c not in self.interactions.columns]
        missing += [c for c in ITEM_COLUMNS if c not in self.items.columns]
        missing += [c for c in PHOTO_COLUMNS if c not in self.photos.columns]
        if missing:
            raise DatasetError(f"{self.name}: internal dataset is missing columns {missing}")
        self._user_index = {u: i for i, u in enumerate(self.user_ids)}
        self._item_index = {it: i for i, it in enumerate(self.items["item_id"].tolist())}

    # --- sizes and id maps -------------------------------------------------------------------
    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def item_ids(self) -> np.ndarray:
        return self.items["item_id"].to_numpy()

    def user_index(self, raw_id: str) -> int:
        """Index of a raw user id; ``DatasetError`` naming the id if unknown."""
        try:
            return self._user_index[str(raw_id)]
        except KeyError:
            raise DatasetError(f"{self.name}: unknown user id {raw_id!r}") from None

    def item_index(self, raw_id: str) -> int:
        """Index of a raw item id; ``DatasetError`` naming the id if unknown."""
        try:
            return self._item_index[str(raw_id)]
        except KeyError:
            raise DatasetError(f"{self.name}: unknown item id {raw_id!r}") from None

    def has_user(self, raw_id: str) -> bool:
        return str(raw_id) in self._user_index

    # --- matrices ------------------------------------------------------------------------------
    def csr(self, interactions: pd.DataFrame | None = None) -> sp.csr_matrix:
        """Binary user x item CSR (float32) of ``interactions`` (default: all of them)."""
        frame = self.interactions if interactions is None else interactions
        return interactions_to_csr(frame, self.n_users, self.n_items)

    @property
    def has_text(self) -> bool:
        """Whether interactions carry review text (Yelp, Amazon) rather than none (MovieLens)."""
        text = self.interactions["text"]
        return bool(text.notna().any() and (text.fillna("").str.len() > 0).any())

    def item_text(self) -> list[str]:
        """One descriptive text per item: name, categories, then description (what content
        techniques use for items without reviews, and for datasets without review text)."""
        out = []
        for name, cats, desc in zip(
            self.items["name"].fillna(""), self.items["categories"].fillna(""),
            self.items["description"].fillna(""),
        ):
            parts = [str(name).strip()]
            if str(cats).strip():
                parts.append(f"Categories: {str(cats).strip()}.")
            if str(desc).strip():
                parts.append(str(desc).strip())
            out.append(" ".join(p for p in parts if p))
        return out

    def summary(self) -> dict[str, object]:
        """Counts for ``datasets describe`` and the app sidebar (loader counts included)."""
        inter = self.interactions
        per_user = np.bincount(inter["user"].to_numpy(), minlength=self.n_users)
        items_with_photos = self.photos["item"].nunique() if len(self.photos) else 0
        out: dict[str, object] = {
            "dataset": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": len(inter),
            "density": len(inter) / max(1, self.n_users * self.n_items),
            "users_with_one_interaction": int((per_user == 1).sum()),
            "interactions_with_text": int(inter["text"].fillna("").str.len().gt(0).sum()),
            "photos": len(self.photos),
            "items_with_photos": int(items_with_photos),
            "items_without_photos": int(self.n_items - items_with_photos),
        }
        if len(inter):
            ts = pd.to_datetime(inter["timestamp"], unit="s")
            out["first_date"] = str(ts.min().date())
            out["last_date"] = str(ts.max().date())
        for key, value in self.report.counts.items():
            out.setdefault(key, value)
        return out


def interactions_to_csr(frame: pd.DataFrame, n_users: int, n_items: int) -> sp.csr_matrix:
    """Binary user x item CSR (float32) of an interactions frame; repeated pairs count once."""
    rows = frame["user"].to_numpy(dtype=np.int64)
    cols = frame["item"].to_numpy(dtype=np.int64)
    mat = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n_users, n_items)
    )
    mat.sum_duplicates()
    mat.data[:] = 1.0
    return mat


def build_dataset(
    name: str,
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    photos: pd.DataFrame | None,
    report: LoadReport | None = None,
    domain: str = "item",
) -> Dataset:
    """Assemble a ``Dataset`` from frames keyed by raw ids; the one place ids become indices.

    Args:
        interactions: columns ``user_id``, ``item_id``, ``rating``, ``timestamp`` (seconds), and
            optionally ``review_id`` and ``text``. Rows whose item is not in ``items`` are
            dropped and counted as ``unknown_item_interactions``.
        items: column ``item_id`` plus any of ``name``, ``categories``, ``description``,
            ``attributes`` and extra columns. Items without interactions are dropped.
        photos: columns ``photo_id``, ``item_id``, ``path`` and optionally ``caption``, ``label``;
            photos of unknown/dropped items are dropped (counted as ``photos_of_unknown_items``).
    Raises:
        DatasetError: if nothing is left.
    """
    report = report or LoadReport()
    inter = interactions.copy()
    inter["user_id"] = inter["user_id"].astype(str)
    inter["item_id"] = inter["item_id"].astype(str)
    items = items.copy()
    items["item_id"] = items["item_id"].astype(str)
    items = items.drop_duplicates("item_id")
    known = inter["item_id"].isin(set(items["item_id"]))
    if (~known).any():
        report.add("unknown_item_interactions", int((~known).sum()))
        report.warn(f"{int((~known).sum())} interactions name items missing from the items file")
        inter = inter[known]
    if inter.empty:
        raise DatasetError(f"{name}: no interactions left after loading and filtering")
    for col, default in (("review_id", None), ("text", None)):
        if col not in inter.columns:
            inter[col] = default
    # keep only items that have interactions, in a stable order (sorted raw id)
    used = np.sort(inter["item_id"].unique())
    items = items[items["item_id"].isin(set(used))].sort_values("item_id").reset_index(drop=True)
    for col, default in (("name", ""), ("categories", ""), ("description", "")):
        if col not in items.columns:
            items[col] = default
        items[col] = items[col].fillna(default).astype(str)
    if "attributes" not in items.columns:
        items["attributes"] = [{} for _ in range(len(items))]
    else:
        items["attributes"] = [a if isinstance(a, dict) else {} for a in items["attributes"]]
    if not (items["name"].str.len() > 0).all():
        items.loc[items["name"].str.len() == 0, "name"] = items["item_id"]
    item_index = pd.Series(np.arange(len(items), dtype=np.int32), index=items["item_id"])
    user_ids = np.sort(inter["user_id"].unique()).astype(object)
    user_index = pd.Series(np.arange(len(user_ids), dtype=np.int32), index=user_ids)
    out = pd.DataFrame({
        "user": user_index.loc[inter["user_id"]].to_numpy(),
        "item": item_index.loc[inter["item_id"]].to_numpy(),
        "rating": inter["rating"].astype(np.float32).to_numpy(),
        "timestamp": inter["timestamp"].astype(np.int64).to_numpy(),
        "review_id": inter["review_id"].astype(object).where(inter["review_id"].notna(), None)
        .to_numpy(),
        "text": inter["text"].astype(object).where(inter["text"].notna(), None).to_numpy(),
    })
    out = out.sort_values(["timestamp", "user", "item"], kind="stable").reset_index(drop=True)

    if photos is None or len(photos) == 0:
        ph = pd.DataFrame({c: pd.Series(dtype=object) for c in PHOTO_COLUMNS})
        ph["item"] = ph["item"].astype(np.int32)
    else:
        ph = photos.copy()
        ph["item_id"] = ph["item_id"].astype(str)
        ok = ph["item_id"].isin(set(items["item_id"]))
        if (~ok).any():
            report.add("photos_of_unknown_items", int((~ok).sum()))
        ph = ph[ok]
        ph["item"] = item_index.loc[ph["item_id"]].to_numpy()
        for col in ("caption", "label"):
            if col not in ph.columns:
                ph[col] = ""
            ph[col] = ph[col].fillna("").astype(str)
        ph["photo_id"] = ph["photo_id"].astype(str)
        ph = ph[list(PHOTO_COLUMNS)].sort_values(["item", "photo_id"]).reset_index(drop=True)
    n_without = len(items) - (ph["item"].nunique() if len(ph) else 0)
    report.counts["items_without_photos"] = int(n_without)
    return Dataset(
        name=name, interactions=out, items=items, photos=ph, user_ids=user_ids,
        report=report, domain=domain,
    )
