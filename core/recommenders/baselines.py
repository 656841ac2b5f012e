"""Non-personalised baselines (``random``, ``popular``) and the popularity fallback shared by
collaborative techniques for users without train history."""

from __future__ import annotations

import numpy as np

from core.recommenders import register
from core.recommenders.base import FitContext, Recommender

POPULARITY_FALLBACK = "most popular train items (distinct train users per item)"


def item_popularity(train_csr) -> np.ndarray:
    """Distinct train users per item (column counts of the binary train CSR), float32."""
    return np.asarray(train_csr.getnnz(axis=0), dtype=np.float32)


class PopularityFallback(Recommender):
    """Mixin for techniques whose scores say nothing for users without train history: those users'
    rows are replaced by popularity scores (call ``_fit_fallback`` in ``fit`` and
    ``_apply_fallback`` at the end of ``score``)."""

    fallback = POPULARITY_FALLBACK

    def _fit_fallback(self, ctx: FitContext) -> None:
        self._popularity = item_popularity(ctx.train_csr)
        self._history = np.asarray(ctx.train_csr.getnnz(axis=1))

    def cold_mask(self, user_idx: np.ndarray) -> np.ndarray:
        """True for users without train history (they receive the fallback)."""
        return self._history[np.asarray(user_idx, dtype=np.int64)] == 0

    def _apply_fallback(self, user_idx: np.ndarray, scores: np.ndarray) -> np.ndarray:
        cold = self.cold_mask(user_idx)
        if cold.any():
            scores[cold] = self._popularity
        return scores


@register
class RandomRecommender(Recommender):
    """Uniformly random ranking (seeded): the floor every technique must beat."""

    name = "random"
    label = "Random"
    fallback = "the same random ranking as every user"

    def fit(self, ctx: FitContext) -> RandomRecommender:
        self._remember(ctx)
        self.params.setdefault("seed", int(ctx.seed))
        return self

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        # A counter-based hash of (seed, user, item): the same user gets the same scores in any
        # batch, without storing a users x items matrix.
        users = np.asarray(user_idx, dtype=np.uint64)[:, None]
        items = np.arange(self.n_items, dtype=np.uint64)[None, :]
        with np.errstate(over="ignore"):
            x = users * np.uint64(0x9E3779B97F4A7C15) + items * np.uint64(0xD1B54A32D192ED03)
            x += np.uint64(self.params["seed"]) * np.uint64(0x8CB92BA72F3D8DD7)
            x ^= x >> np.uint64(31)
            x *= np.uint64(0xBF58476D1CE4E5B9)
            x ^= x >> np.uint64(29)
            x *= np.uint64(0x94D049BB133111EB)
            x ^= x >> np.uint64(32)
        return (x >> np.uint64(40)).astype(np.float32) / np.float32(1 << 24)


@register
class PopularRecommender(PopularityFallback):
    """Most popular items in train (distinct users per item), the same list for everyone."""

    name = "popular"
    label = "Popular"
    fallback = "the same popularity ranking as every user"

    def fit(self, ctx: FitContext) -> PopularRecommender:
        self._remember(ctx)
        self._fit_fallback(ctx)
        return self

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        n = len(np.atleast_1d(user_idx))
        return np.broadcast_to(self._popularity, (n, self.n_items)).copy()
