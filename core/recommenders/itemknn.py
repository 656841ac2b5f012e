"""Item-based k-nearest-neighbours with cosine similarity on the binary train matrix."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from core.recommenders import register
from core.recommenders.base import FitContext
from core.recommenders.baselines import PopularityFallback


def cosine_item_similarity(
    train_csr: sp.csr_matrix, neighbours: int | None = None
) -> sp.csr_matrix:
    """Item x item cosine similarity of the columns of ``train_csr`` with a zero diagonal.

    With ``neighbours``, each item's row keeps only its ``neighbours`` most similar items
    (ties: lower item index first).
    """
    x = sp.csc_matrix(train_csr, dtype=np.float32)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0).astype(np.float32)
    xn = x @ sp.diags(inv)
    sim = (xn.T @ xn).tocsr()
    sim.setdiag(0)
    sim.eliminate_zeros()
    if neighbours is not None and neighbours > 0:
        sim = _keep_top(sim, int(neighbours))
    sim.sort_indices()
    return sim.astype(np.float32)


def _keep_top(sim: sp.csr_matrix, n: int) -> sp.csr_matrix:
    counts = np.diff(sim.indptr)
    if counts.max(initial=0) <= n:
        return sim
    rows = np.repeat(np.arange(sim.shape[0]), counts)
    # order within each row by (-value, column); then keep the first n of each row
    order = np.lexsort((sim.indices, -sim.data, rows))
    rank = np.arange(len(order)) - np.repeat(sim.indptr[:-1], counts)
    keep = order[rank < n]
    keep.sort()
    kept_rows = rows[keep]
    return sp.csr_matrix(
        (sim.data[keep], sim.indices[keep],
         np.concatenate([[0], np.cumsum(np.bincount(kept_rows, minlength=sim.shape[0]))])),
        shape=sim.shape,
    )


@register
class ItemKNNRecommender(PopularityFallback):
    """Item-item cosine k-NN: a user's score for an item sums its similarity to the user's items."""

    name = "itemknn"
    label = "ItemKNN"

    def fit(self, ctx: FitContext) -> ItemKNNRecommender:
        self._remember(ctx)
        self._fit_fallback(ctx)
        self.params.setdefault("neighbours", 200)
        # row i of S keeps item i's nearest neighbours; user row x S spreads each of the user's
        # items onto its neighbours
        self._sim = cosine_item_similarity(ctx.train_csr, self.params["neighbours"])
        return self

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        users = np.atleast_1d(np.asarray(user_idx, dtype=np.int64))
        rows = self.train_csr[users]
        scores = np.asarray((rows @ self._sim).toarray(), dtype=np.float32)
        return self._apply_fallback(users, scores)
