"""Content techniques of the study: ``text`` (text–text) and ``image`` (image–image).

Both score a user-item pair by the cosine of a user vector and an item vector built from cached
embeddings (see ``core.recommenders.representations``). Scoring is one matrix product per user
batch over unit vectors, so memory is bounded by the batch the caller asks for.

Cold users (no usable train history) get item popularity (train counts scaled into ``[0, 1]``).
Items without a vector (e.g. no photos) score 0, a neutral cosine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from core.encoders import is_features_spec
from core.errors import TechniqueUnavailable
from core.recommenders import register
from core.recommenders.base import FitContext, Recommender
from core.recommenders.baselines import item_popularity
from core.recommenders.filters import check_options, filter_info
from core.recommenders.representations import (
    item_photo_vectors,
    item_text_vectors,
    user_photo_vectors,
    user_text_vectors,
)

COLD_USER_FALLBACK = "item popularity in train (users without usable content history)"


class EmbeddingRecommender(Recommender):
    """Cosine between a user vector and an item vector; subclasses build the two in ``vectors``.

    Param ``encoder`` overrides the run's encoder for the technique's role (``role``).
    """

    role: ClassVar[str] = "text"
    fallback: ClassVar[str] = COLD_USER_FALLBACK

    def encoder_spec(self, ctx: FitContext) -> str:
        """The encoder spec this technique uses: param ``encoder`` or the run's ``role`` encoder."""
        spec = self.params.get("encoder") or ctx.encoders.get(self.role)
        if not spec:
            raise TechniqueUnavailable(
                f"{self.name} needs a {self.role} encoder: pass --{self._flag()} SPEC "
                "(see `python -m core encoders`)")
        return spec

    @classmethod
    def row_encoders(cls, params: Mapping[str, Any], encoders: Mapping[str, str]) -> dict[str, str]:
        spec = params.get("encoder") or encoders.get(cls.role)
        return {cls.role: spec} if spec else {}

    @classmethod
    def row_title(cls, params: Mapping[str, Any]) -> str:  # the encoder column shows `encoder`
        return super().row_title({k: v for k, v in params.items() if k != "encoder"})

    def _flag(self) -> str:
        return {"text": "text-encoder", "image": "image-encoder", "clip": "encoder"}[self.role]

    def vectors(
        self, ctx: FitContext, spec: str
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(user_vecs, user_has, item_vecs, item_has)`` for this technique."""
        raise NotImplementedError

    def fit(self, ctx: FitContext) -> EmbeddingRecommender:
        self._remember(ctx)
        check_options(ctx.options)
        spec = self.encoder_spec(ctx)
        self.params["encoder"] = spec
        users, user_has, items, item_has = self.vectors(ctx, spec)
        self.user_vecs = np.ascontiguousarray(users, dtype=np.float32)
        self.user_has = np.asarray(user_has, bool)
        # float64 products, rounded to float32: items with identical vectors tie exactly whatever
        # the batch size (BLAS kernels differ between one row and many), so ties break the same
        self.item_vecs = np.ascontiguousarray(items, dtype=np.float64)
        self.item_has = np.asarray(item_has, bool)
        pop = item_popularity(ctx.train_csr)
        self.cold_scores = (pop / max(float(pop.max()), 1.0)).astype(np.float32)
        self.params.setdefault("items_with_vector", int(self.item_has.sum()))
        self.params.setdefault("users_with_vector", int(self.user_has.sum()))
        if ctx.options.get("photo_filter") or ctx.options.get("review_filter"):
            self.params["filters"] = filter_info(ctx)
        return self

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        users = np.atleast_1d(np.asarray(user_idx, dtype=np.int64))
        out = (self.user_vecs[users].astype(np.float64) @ self.item_vecs.T).astype(np.float32)
        cold = ~self.user_has[users]
        if cold.any():
            out[cold] = self.cold_scores
        return out


@register
class TextRecommender(EmbeddingRecommender):
    """Text–text: cosine of user and item text vectors (the study's BERT row; any text encoder)."""

    name = "text"
    label = "Text"
    needs = frozenset({"text"})
    role = "text"

    def vectors(self, ctx, spec):
        u, uh = user_text_vectors(ctx, spec)
        i, ih = item_text_vectors(ctx, spec)
        return u, uh, i, ih


@register
class ImageRecommender(EmbeddingRecommender):
    """Image–image: cosine of user and item photo vectors (the study's ResNet/VGG rows)."""

    name = "image"
    label = "Image"
    needs = frozenset({"image"})
    role = "image"

    def vectors(self, ctx, spec):
        if not is_features_spec(spec):  # features:image needs no photos
            _require_photos(ctx, self.name)
        u, uh = user_photo_vectors(ctx, spec)
        i, ih = item_photo_vectors(ctx, spec)
        return u, uh, i, ih


def _require_photos(ctx: Any, name: str) -> None:
    if len(ctx.dataset.photos) == 0:
        raise TechniqueUnavailable(f"{name} needs photos: dataset {ctx.dataset.name} has none")


CONTENT_TECHNIQUES = (TextRecommender, ImageRecommender)
