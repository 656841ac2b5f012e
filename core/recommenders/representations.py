"""User and item vectors built from cached embeddings (the content techniques' raw material).

Every vector is a mean of L2-normalised embeddings, re-normalised to unit length; a user or item
with nothing to average gets the zero vector and ``has[...] = False``.

* **Item photo vector**: mean of the item's photos (bad photos and photos removed by
  ``--photo-filter`` excluded). Items without photos: zero.
* **Item text vector**: mean of the *train* reviews the item received (``--review-filter``
  applied). Items without such reviews, and every item of a dataset without review text
  (MovieLens), use the embedding of their document ``Dataset.item_text()`` (name, categories,
  description).
* **User text vector**: mean of the user's own train reviews (filter applied). Users without such
  reviews (every user of a dataset without review text) use the mean of the item text vectors of
  the items they consumed in train.
* **User photo vector**: mean of the photo vectors of the items the user consumed in train.
* **The dataset's own item features** (encoder specs ``features:image`` for the image role and
  ``features:text`` for the text role; ``Dataset.item_features``, e.g. an ``mmrec:`` dataset's
  ``image_feat.npy``): the item vector is the item's L2-normalised feature row (``has`` = the row
  is not all zero), read without the embedding cache or any encoder; reviews and photos play no
  part, and user vectors are the mean of the consumed items' rows as above. A dataset without
  such features raises ``TechniqueUnavailable`` naming the spec and the dataset.

Results are memoised per ``FitContext`` (``FitContext.memoize``), so techniques of one run that
share an encoder share the vectors.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from core.encoders import dataset_features, is_features_spec
from core.encoders.base import l2_normalise
from core.errors import EncoderUnavailable, TechniqueUnavailable
from core.recommenders.filters import photo_keep_mask, review_keep_mask


def group_mean(
    vectors: np.ndarray, groups: np.ndarray, n_groups: int, keep: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Re-normalised mean of ``vectors`` rows per group: ``(means (n_groups, d), has (n_groups,))``.

    ``groups[r]`` is the group of row ``r``; rows with ``keep[r] == False`` are ignored. Computed
    as one sparse matrix product.
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    rows = np.arange(len(vectors)) if keep is None else np.flatnonzero(keep)
    agg = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (np.asarray(groups)[rows], rows)),
        shape=(n_groups, len(vectors)),
    )
    sums = np.asarray(agg @ vectors, dtype=np.float32)
    has = np.asarray(agg.sum(axis=1)).ravel() > 0
    return l2_normalise(sums), has


def _provider(ctx: Any) -> Any:
    if ctx.embeddings is None:
        raise TechniqueUnavailable(
            "content techniques need embeddings: the run was started without an embedding provider")
    return ctx.embeddings


def _filters(ctx: Any) -> tuple:
    return (ctx.options.get("photo_filter"), ctx.options.get("review_filter"),
            ctx.encoders.get("clip"))


def item_feature_vectors(ctx: Any, spec: str, role: str) -> tuple[np.ndarray, np.ndarray]:
    """The dataset's own item features of a ``features:`` spec for ``role`` (``image`` or
    ``text``): L2-normalised rows and ``has`` (row not all zero).

    Raises:
        TechniqueUnavailable: the dataset carries no such features, or the spec's modality is
            not ``role`` (``features:image`` read as text vectors, say).
    """

    def build():
        try:
            enc = dataset_features(spec, ctx.dataset)
        except EncoderUnavailable as exc:
            raise TechniqueUnavailable(str(exc)) from None
        if enc.modality != role:
            raise TechniqueUnavailable(
                f"{spec} holds {enc.modality} features: use it for the {enc.modality} role "
                f"(--{enc.modality}-encoder {spec}), not for {role}")
        matrix = np.asarray(enc.matrix, dtype=np.float32)
        return l2_normalise(matrix), matrix.any(axis=1)

    return ctx.memoize(("item_features", spec, role), build)


def item_photo_vectors(ctx: Any, spec: str) -> tuple[np.ndarray, np.ndarray]:
    """Item photo vectors ``(n_items, d)`` and ``has`` mask for encoder ``spec``."""
    if is_features_spec(spec):
        return item_feature_vectors(ctx, spec, "image")

    def build():
        ds = ctx.dataset
        vecs, ok = _provider(ctx).photos(spec)
        keep = np.asarray(ok, bool) & photo_keep_mask(ctx)
        items = ds.photos["item"].to_numpy(dtype=np.int64)
        return group_mean(vecs, items, ds.n_items, keep)

    return ctx.memoize(("item_photo", spec, *_filters(ctx)), build)


def item_document_vectors(ctx: Any, spec: str) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of ``Dataset.item_text()`` (one document per item) and their ``ok`` mask."""
    if is_features_spec(spec):  # the dataset's own text features stand for the documents
        return item_feature_vectors(ctx, spec, "text")

    def build():
        vecs, ok = _provider(ctx).item_texts(spec)
        ok = np.asarray(ok, bool)
        vecs = np.asarray(vecs, np.float32) * ok[:, None]
        return l2_normalise(vecs), ok

    return ctx.memoize(("item_doc", spec), build)


def train_review_vectors(ctx: Any, spec: str) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of the train reviews ``(len(ctx.train), d)`` and the mask of usable ones
    (non-empty text, passing ``--review-filter``). Empty mask on datasets without review text."""

    def build():
        train = ctx.train
        if not ctx.dataset.has_text:
            return np.zeros((len(train), 0), np.float32), np.zeros(len(train), bool)
        vecs, ok = _provider(ctx).reviews(spec)
        idx = train.index.to_numpy()
        keep = np.asarray(ok, bool)[idx] & review_keep_mask(ctx, train)
        return np.asarray(vecs, np.float32)[idx], keep

    return ctx.memoize(("train_reviews", spec, ctx.options.get("review_filter")), build)


def _review_mean_or(
    ctx: Any, spec: str, column: str, n: int, fallback: np.ndarray, fallback_has: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per ``column`` index (``"user"`` or ``"item"``), the mean of its kept train review vectors;
    rows without any take ``fallback``."""
    revs, keep = train_review_vectors(ctx, spec)
    if not keep.any():
        return fallback, fallback_has
    keys = ctx.train[column].to_numpy(dtype=np.int64)
    means, has = group_mean(revs, keys, n, keep)
    means[~has] = fallback[~has]
    return means, has | fallback_has


def item_text_vectors(ctx: Any, spec: str) -> tuple[np.ndarray, np.ndarray]:
    """Item text vectors: mean of train reviews received, else the item's document embedding."""
    if is_features_spec(spec):
        return item_feature_vectors(ctx, spec, "text")

    def build():
        ds = ctx.dataset
        docs, doc_ok = item_document_vectors(ctx, spec)
        return _review_mean_or(ctx, spec, "item", ds.n_items, docs, doc_ok)

    return ctx.memoize(("item_text", spec, ctx.options.get("review_filter")), build)


def user_text_vectors(ctx: Any, spec: str) -> tuple[np.ndarray, np.ndarray]:
    """User text vectors: mean of own train reviews, else mean of consumed items' text vectors."""

    def build():
        ds = ctx.dataset
        item_vecs, item_has = item_text_vectors(ctx, spec)
        from_items, has_items = consumed_mean(ctx.train_csr, item_vecs, item_has)
        if is_features_spec(spec):  # item features only: no review enters a features: space
            return from_items, has_items
        return _review_mean_or(ctx, spec, "user", ds.n_users, from_items, has_items)

    return ctx.memoize(("user_text", spec, ctx.options.get("review_filter")), build)


def consumed_mean(
    train_csr: sp.csr_matrix, item_vecs: np.ndarray, item_has: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per user, the re-normalised mean of the vectors of the items consumed in train (only items
    with ``item_has``), and the mask of users with at least one such item."""
    usable = train_csr @ sp.diags(np.asarray(item_has, np.float32))
    sums = np.asarray(usable @ np.asarray(item_vecs, np.float32), dtype=np.float32)
    has = np.asarray(usable.sum(axis=1)).ravel() > 0
    return l2_normalise(sums), has


def user_photo_vectors(ctx: Any, spec: str) -> tuple[np.ndarray, np.ndarray]:
    """User photo vectors: mean of the photo vectors of the items consumed in train."""

    def build():
        item_vecs, item_has = item_photo_vectors(ctx, spec)
        return consumed_mean(ctx.train_csr, item_vecs, item_has)

    return ctx.memoize(("user_photo", spec, *_filters(ctx)), build)


def mean_of(*pairs: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Re-normalised mean of several ``(vectors, has)`` of the same shape (missing ones skipped)."""
    total = np.zeros_like(pairs[0][0], dtype=np.float32)
    has = np.zeros(len(total), dtype=bool)
    for vecs, h in pairs:
        total += vecs * h[:, None]
        has |= h
    return l2_normalise(total), has
