"""The canonical dataset every loader returns; nothing downstream knows the source format.

Indices are the engine's currency: users are ``0..n_users-1`` and items ``0..n_items-1``.
The ``Dataset`` owns the raw-id <-> index maps; pages and the CLI speak raw ids and convert here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from core.data.texts import MemoryTexts, ReviewTexts
from core.errors import DatasetError

#: Columns of ``Dataset.interactions`` (one row per user-item event, e.g. a review); the review
#: text of each row lives beside the frame, in ``Dataset.texts``.
INTERACTION_COLUMNS = ("user", "item", "rating", "timestamp", "review_id")
#: Columns every ``Dataset.items`` frame has (row ``i`` describes item ``i``); loaders may add more.
ITEM_COLUMNS = ("item_id", "name", "categories", "description", "attributes")
#: Columns of ``Dataset.photos`` (one row per image; ``path`` is absolute).
PHOTO_COLUMNS = ("photo_id", "item", "path", "caption", "label")
#: What ``build_dataset`` does with repeated user-item pairs (see ``collapse_repeats``).
REPEAT_MODES = ("collapse", "keep")
#: Optional column of ``Dataset.interactions``: the part a source file assigns each interaction
#: (MMRec's ``x_label``), used by the ``file`` split (``core.evaluation.splits``).
SPLIT_LABEL = "split_label"
#: Values of ``SPLIT_LABEL`` and the parts they name.
SPLIT_LABEL_NAMES = {0: "train", 1: "valid", 2: "test"}
#: Optional column of the frame given to ``build_dataset``: where a loader can find each
#: interaction's text later (Yelp: its line in the review file), instead of a ``text`` column.
TEXT_KEY = "text_key"
#: Modalities ``Dataset.item_features`` may hold (encoder specs ``features:image``,
#: ``features:text``).
FEATURE_MODALITIES = ("image", "text")


@dataclass
class LoadReport:
    """What a loader counted while reading: skips, unknown references, missing files, filters.

    ``counts`` maps a short snake_case key to a number (``malformed_lines``,
    ``unknown_item_interactions``, ``duplicate_review_ids``, ``repeated_user_item_pairs``,
    ``repeat_interactions_collapsed``, ``photos_missing_on_disk``, ``photos_zero_byte``,
    ``photos_undecodable``, ``items_without_photos``, ...);
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
            ``rating`` float32, ``timestamp`` int64 (seconds since the epoch), ``review_id``
            (string or None); no text (see ``texts``).
            Sorted by (timestamp, user, item) with a fresh RangeIndex: the index is the row
            number ``texts`` and the embedding provider answer by, and splits keep it. One row
            per user-item pair unless the dataset was loaded with ``repeats="keep"`` (see
            ``collapse_repeats``). Datasets whose files carry their own split (``mmrec:``) add
            ``SPLIT_LABEL`` (int8: 0 train, 1 valid, 2 test), read by the ``file`` split.
        items: one row per item index, columns ``ITEM_COLUMNS`` at least; ``categories`` is a
            comma-separated string, ``attributes`` a ``{name: value}`` dict (possibly empty).
        photos: columns ``PHOTO_COLUMNS``; ``item`` is the item index. The loaders keep only
            files present on disk, non-empty and with an image header (``core.data.photos``).
        user_ids: raw user id of each user index (object array of str).
        report: counts and warnings gathered while loading.
        domain: a word for an item in prompts and page labels ("restaurant", "movie", "product").
        item_features: modality (``FEATURE_MODALITIES``) -> ``(n_items, d)`` float32 matrix of
            item features that come with the data (MMRec's ``image_feat.npy``,
            ``text_feat.npy``), row ``i`` for item ``i``; stored read-only; empty for sources
            without any. Encoder specs ``features:image`` / ``features:text`` read them
            (``core.encoders``); their identity is ``item_features_digest``.
        texts: the review text of each interaction row (``core.data.texts``): a Parquet file
            for Yelp, a list for the small sources. A ``text`` column in ``interactions`` (as
            tests and small builders pass it) is moved here; none at all gives no texts.
    """

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame
    photos: pd.DataFrame
    user_ids: np.ndarray
    report: LoadReport = field(default_factory=LoadReport)
    domain: str = "item"
    item_features: dict[str, np.ndarray] = field(default_factory=dict)
    texts: ReviewTexts | None = None

    def __post_init__(self) -> None:
        if "text" in self.interactions.columns:
            if self.texts is not None:
                raise DatasetError(f"{self.name}: review text given twice (a text column and "
                                   "texts)")
            self.texts = MemoryTexts(self.interactions["text"].tolist())
            self.interactions = self.interactions.drop(columns="text")
        elif self.texts is None:
            self.texts = MemoryTexts([None] * len(self.interactions))
        if len(self.texts) != len(self.interactions):
            raise DatasetError(f"{self.name}: {len(self.texts)} review texts for "
                               f"{len(self.interactions)} interactions")
        missing = [c for c in INTERACTION_COLUMNS if c not in self.interactions.columns]
        missing += [c for c in ITEM_COLUMNS if c not in self.items.columns]
        missing += [c for c in PHOTO_COLUMNS if c not in self.photos.columns]
        if missing:
            raise DatasetError(f"{self.name}: internal dataset is missing columns {missing}")
        self._user_index = {u: i for i, u in enumerate(self.user_ids)}
        self._item_index = {it: i for i, it in enumerate(self.items["item_id"].tolist())}
        features: dict[str, np.ndarray] = {}
        for modality, matrix in dict(self.item_features).items():
            if modality not in FEATURE_MODALITIES:
                raise DatasetError(f"{self.name}: item features of unknown modality {modality!r} "
                                   f"(expected one of {', '.join(FEATURE_MODALITIES)})")
            arr = np.ascontiguousarray(matrix, dtype=np.float32)
            if arr.ndim != 2 or arr.shape[0] != len(self.items):
                raise DatasetError(f"{self.name}: {modality} item features have shape "
                                   f"{arr.shape}, expected ({len(self.items)}, d): one row per "
                                   "item")
            arr = arr.view()
            arr.flags.writeable = False
            features[modality] = arr
        self.item_features = features
        self._feature_digests: dict[str, tuple[np.ndarray, str]] = {}

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

    # --- what the source files carry -----------------------------------------------------------
    @property
    def has_split_labels(self) -> bool:
        """Whether the interactions carry the source's own split (``SPLIT_LABEL``)."""
        return SPLIT_LABEL in self.interactions.columns

    def item_features_digest(self, modality: str) -> str:
        """16 hex digits of the SHA-256 of the ``modality`` feature matrix (dtype, shape and
        bytes): the content identity of ``features:<modality>``, so stored runs never mix two
        feature files. ``KeyError`` when the dataset has no such features."""
        matrix = self.item_features[modality]
        known = self._feature_digests.get(modality)
        if known is not None and known[0] is matrix:
            return known[1]
        h = hashlib.sha256(f"{matrix.dtype.str}{matrix.shape}".encode())
        h.update(memoryview(np.ascontiguousarray(matrix)).cast("B"))
        digest = h.hexdigest()[:16]
        if not matrix.flags.writeable:  # a writable array may change under us: no memo
            self._feature_digests[modality] = (matrix, digest)
        return digest

    # --- matrices ------------------------------------------------------------------------------
    def csr(self, interactions: pd.DataFrame | None = None) -> sp.csr_matrix:
        """Binary user x item CSR (float32) of ``interactions`` (default: all of them)."""
        frame = self.interactions if interactions is None else interactions
        return interactions_to_csr(frame, self.n_users, self.n_items)

    @property
    def has_text(self) -> bool:
        """Whether interactions carry review text (Yelp, Amazon) rather than none (MovieLens)."""
        return bool(self.texts.nonblank().any())

    def item_text(self) -> list[str]:
        """One descriptive document per item (what content techniques embed for items without
        reviews, and for datasets without review text).

        The document is, in this order and skipping empty parts: the ``name``;
        ``"Categories: <categories>."``; the ``description``; ``"Attributes: <name>: <value>;
        ...."`` with the item's scalar ``attributes`` (str, int, float, bool) in their stored
        order; nested values (Yelp's ``Ambience`` dict), ``None``, NaN and empty strings are left
        out. Each loader fills these fields from its source: see its module docstring.
        """
        out = []
        for name, cats, desc, attrs in zip(
            self.items["name"].fillna(""), self.items["categories"].fillna(""),
            self.items["description"].fillna(""), self.items["attributes"],
        ):
            parts = [str(name).strip()]
            if str(cats).strip():
                parts.append(f"Categories: {str(cats).strip()}.")
            if str(desc).strip():
                parts.append(str(desc).strip())
            pairs = attribute_pairs(attrs)
            if pairs:
                parts.append(f"Attributes: {pairs}.")
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
            "interactions_with_text": int(self.texts.nonblank().sum()),
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


def attribute_pairs(attrs: object) -> str:
    """``"name: value; ..."`` of the scalar entries (str, int, float, bool) of an attributes
    dict; nested values, ``None``, NaN and blank strings are skipped; ``""`` when none is left."""
    if not isinstance(attrs, dict):
        return ""
    out = []
    for key, value in attrs.items():
        if isinstance(value, float) and np.isnan(value):
            continue
        if isinstance(value, (bool, np.bool_, int, float, np.integer, np.floating)):
            out.append(f"{key}: {value}")
        elif isinstance(value, str) and value.strip():
            out.append(f"{key}: {value.strip()}")
    return "; ".join(out)


def _join_texts(texts: pd.Series) -> str | None:
    """Distinct non-blank texts in order, separated by a blank line; None when there is none."""
    kept: list[str] = []
    for text in texts:
        if isinstance(text, str) and text.strip() and text not in kept:
            kept.append(text)
    return "\n\n".join(kept) if kept else None


def collapse_repeats(inter: pd.DataFrame, repeats: str, report: LoadReport,
                     where: str = "") -> pd.DataFrame:
    """One interaction per (``user_id``, ``item_id``) pair, or all copies with ``"keep"``.

    A user who reviews the same restaurant twice, or buys the same article twice, gives one
    interaction with ``repeats="collapse"``: the earliest copy (ties: the smaller review id, then
    file order) with its timestamp, rating and review id, so under a temporal split the pair sits
    where it first became known; the distinct non-blank texts of the later copies are appended
    to the kept text in time order, separated by a blank line, so no review text is lost. With
    ``repeats="keep"`` every copy stays, and copies of one pair can land on both sides of a
    split (a test copy is then masked as already seen, so it can never be recommended).

    Counts ``repeated_user_item_pairs`` (pairs with more than one copy, before collapsing) and
    ``repeat_interactions_collapsed`` (rows removed; 0 with ``"keep"``), both 0 when none, and
    warns naming ``where`` (the interactions file) when there are repeats.

    Raises:
        DatasetError: ``repeats`` is not one of ``REPEAT_MODES``.
    """
    if repeats not in REPEAT_MODES:
        raise DatasetError(f"repeats = {repeats!r} is not one of {', '.join(REPEAT_MODES)} "
                           "(LoadOptions.repeats, --repeats)")
    pair = ["user_id", "item_id"]
    repeated = inter.duplicated(pair, keep=False).to_numpy()
    rep = inter[repeated]
    n_pairs = int((~rep.duplicated(pair)).sum()) if len(rep) else 0
    report.counts["repeated_user_item_pairs"] = n_pairs
    report.counts["repeat_interactions_collapsed"] = 0
    if not n_pairs:
        return inter
    source = f"{where}: " if where else ""
    if repeats == "keep":
        report.warn(f"{source}{n_pairs} user-item pair(s) occur more than once ({len(rep)} rows); "
                    "kept every copy (repeats=keep): a pair can sit in both train and test")
        return inter
    # earliest first; same second: the smaller review id, then file order (stable sort)
    rid = rep["review_id"] if "review_id" in rep.columns else pd.Series(None, index=rep.index)
    key = pd.DataFrame({"t": rep["timestamp"].to_numpy(), "no_id": rid.isna().to_numpy(),
                        "id": rid.fillna("").astype(str).to_numpy()})
    rep = rep.iloc[key.sort_values(["t", "no_id", "id"], kind="stable").index.to_numpy()]
    first = rep[~rep.duplicated(pair).to_numpy()]
    if "text" in rep.columns:
        # groupby(sort=False) lists pairs in order of first appearance, i.e. in ``first``'s order
        texts = rep.groupby(pair, sort=False)["text"].agg(_join_texts)
        first = first.assign(text=texts.to_numpy())
    if TEXT_KEY in rep.columns:  # texts read later by key (Yelp): keep every copy's key, in order
        keys = rep.groupby(pair, sort=False)[TEXT_KEY].agg(list)
        first = first.assign(**{TEXT_KEY: keys.to_numpy()})
    removed = len(rep) - len(first)
    report.counts["repeat_interactions_collapsed"] = removed
    report.warn(f"{source}{n_pairs} user-item pair(s) occur more than once; collapsed to one "
                f"interaction each (earliest copy, texts appended; {removed} row(s) removed)")
    return pd.concat([inter[~repeated], first])


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
    repeats: str = "collapse",
    interactions_file: str = "",
    texts_from: Callable[[np.ndarray, np.ndarray, np.ndarray], ReviewTexts] | None = None,
) -> Dataset:
    """Assemble a ``Dataset`` from frames keyed by raw ids; the one place ids become indices.

    Args:
        interactions: columns ``user_id``, ``item_id``, ``rating``, ``timestamp`` (seconds), and
            optionally ``review_id``, ``text`` and ``SPLIT_LABEL`` (0/1/2, kept on its row).
            Rows whose item is not in ``items`` are dropped and counted as
            ``unknown_item_interactions``. Repeated user-item pairs are
            then collapsed or kept according to ``repeats`` (see ``collapse_repeats``; counted as
            ``repeated_user_item_pairs`` and ``repeat_interactions_collapsed``).
        items: column ``item_id`` plus any of ``name``, ``categories``, ``description``,
            ``attributes`` and extra columns. Items without interactions are dropped.
        photos: columns ``photo_id``, ``item_id``, ``path`` and optionally ``caption``, ``label``;
            photos of unknown/dropped items are dropped (counted as ``photos_of_unknown_items``).
        repeats: ``"collapse"`` (default) or ``"keep"``.
        interactions_file: named in the repeats warning (the loader's interactions file).
        texts_from: with a ``TEXT_KEY`` column instead of ``text`` (texts too big to hold),
            called once as ``texts_from(rows, keys, order)``: interaction row ``rows[j]`` has
            the text found under ``keys[j]``; a row with several keys (a collapsed repeat) has
            them numbered ``order`` in time order, and its text is their distinct non-blank
            texts joined by a blank line (as ``collapse_repeats`` does in memory). Returns the
            dataset's ``texts``.
    Raises:
        DatasetError: if nothing is left, or ``repeats`` is unknown.
    """
    if TEXT_KEY in interactions.columns and texts_from is None:
        raise DatasetError(f"{name}: interactions carry {TEXT_KEY} but no texts_from was given")
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
        if col == "text" and TEXT_KEY in inter.columns:
            continue
        if col not in inter.columns:
            inter[col] = default
    inter = collapse_repeats(inter, repeats, report, where=interactions_file)
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
    })
    if TEXT_KEY in inter.columns:
        out[TEXT_KEY] = inter[TEXT_KEY].to_numpy(dtype=object)
    else:
        out["text"] = inter["text"].astype(object).where(inter["text"].notna(), None).to_numpy()
    if SPLIT_LABEL in inter.columns:  # the source's own split travels with its interaction
        labels = pd.to_numeric(inter[SPLIT_LABEL], errors="coerce")
        if not labels.isin(list(SPLIT_LABEL_NAMES)).all():
            raise DatasetError(f"{name}: {SPLIT_LABEL} values must be one of "
                               f"{sorted(SPLIT_LABEL_NAMES)} (0 train, 1 valid, 2 test)")
        out[SPLIT_LABEL] = labels.astype(np.int8).to_numpy()
    out = out.sort_values(["timestamp", "user", "item"], kind="stable").reset_index(drop=True)
    texts = None
    if TEXT_KEY in out.columns:
        keys = out.pop(TEXT_KEY).explode()  # index: the row; one entry per key
        rows = keys.index.to_numpy(dtype=np.int64)
        order = pd.Series(rows).groupby(rows).cumcount().to_numpy(dtype=np.int64)
        texts = texts_from(rows, keys.to_numpy(dtype=np.int64), order)

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
        report=report, domain=domain, texts=texts,
    )
