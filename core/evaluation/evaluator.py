"""Full-ranking evaluation of a fitted technique: score every item, mask, rank once, measure.

Protocol: for every user with at least one relevant held-out item, the technique scores all items;
items the user has in train (and in ``exclude``, e.g. validation when testing) are masked; one top-K
pass (``K = max(ks)``) gives the ranked lists from which every metric at every ``k`` is computed.
Users are processed in batches so that one dense score block stays under ``block_bytes``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from core.evaluation.metrics import TopKMetrics, evaluate_topk, merge_topk
from core.ranking import mask_rows, top_k
from core.recommenders.base import MAX_VALID_USERS, Recommender

#: Default cap on one dense score block (batch x n_items x 4 bytes).
BLOCK_BYTES = 256 * 1024 * 1024


@dataclass
class EvalResult:
    """What one technique's evaluation produced.

    Attributes:
        users: evaluated user indices (ascending), rows of ``ranked``/``scores``.
        ranked, scores: top-``K`` item indices (``-1`` = nothing left to rank) and their scores.
        metrics: per-user values and aggregates (``metrics.values[(metric, k)]``).
        n_users: evaluated users; cold_users: those among them without train history.
    """

    users: np.ndarray
    ranked: np.ndarray
    scores: np.ndarray
    metrics: TopKMetrics
    n_users: int
    cold_users: int
    ks: list[int] = field(default_factory=list)


def relevant_matrix(frame, n_users: int, n_items: int, min_rating: float | None = None):
    """Binary CSR of the held-out interactions that count as relevant (rating >= ``min_rating``)."""
    from core.data.dataset import interactions_to_csr

    if min_rating is not None:
        frame = frame[frame["rating"] >= float(min_rating)]
    return interactions_to_csr(frame, n_users, n_items)


def batch_size_for(n_items: int, block_bytes: int = BLOCK_BYTES) -> int:
    """Users per batch so that a float32 score block stays under ``block_bytes``."""
    return int(max(1, min(65536, block_bytes // max(1, 4 * n_items))))


def evaluate_model(
    model: Recommender,
    train_csr: sp.csr_matrix,
    relevant: sp.csr_matrix,
    ks: list[int] | tuple[int, ...],
    exclude: sp.csr_matrix | None = None,
    users: np.ndarray | None = None,
    block_bytes: int = BLOCK_BYTES,
    progress: Callable[[int], None] | None = None,
    with_novelty: bool = True,
) -> EvalResult:
    """Evaluate a fitted ``model`` by full ranking.

    Args:
        train_csr: the train matrix (masked; also gives popularity for novelty and cold users).
        relevant: users x items CSR of relevant held-out interactions.
        exclude: extra items to mask per user (validation items when testing).
        users: restrict to these users (default: every user with a relevant item).
        progress: called with the number of users done after each batch.
    """
    ks = sorted({int(k) for k in ks})
    big_k = ks[-1]
    n_items = train_csr.shape[1]
    relevant = sp.csr_matrix(relevant)
    if users is None:
        users = np.nonzero(np.diff(relevant.indptr) > 0)[0]
    users = np.asarray(users, dtype=np.int64)
    history = np.diff(train_csr.indptr)
    popularity = np.asarray(train_csr.getnnz(axis=0), dtype=np.float64) if with_novelty else None
    n_train_users = int((history > 0).sum())
    step = batch_size_for(n_items, block_bytes)
    ranked_parts, score_parts, metric_parts = [], [], []
    for start in range(0, len(users), step):
        batch = users[start:start + step]
        scores = np.asarray(model.score(batch), dtype=np.float32)
        if not scores.flags.writeable or not scores.flags.c_contiguous:
            scores = np.ascontiguousarray(scores).copy()
        mask_rows(scores, train_csr, batch)
        if exclude is not None:
            mask_rows(scores, exclude, batch)
        ids, vals = top_k(scores, big_k)
        del scores
        metric_parts.append(evaluate_topk(
            ids, relevant[batch], ks, popularity, n_items=None, n_train_users=n_train_users))
        ranked_parts.append(ids)
        score_parts.append(vals)
        if progress is not None:
            progress(len(batch))
    ranked = np.vstack(ranked_parts) if ranked_parts else np.zeros((0, big_k), dtype=np.int64)
    scores = np.vstack(score_parts) if score_parts else np.zeros((0, big_k), dtype=np.float32)
    metrics = merge_topk(metric_parts, ranked, n_items)
    if not metric_parts:
        metrics = evaluate_topk(ranked, relevant[users], ks, popularity, n_items, n_train_users)
    return EvalResult(
        users=users, ranked=ranked, scores=scores, metrics=metrics, n_users=len(users),
        cold_users=int((history[users] == 0).sum()), ks=ks,
    )


@dataclass(eq=False)
class Validator:
    """nDCG@``k`` on the validation part: what every tuner picks hyperparameters with.

    Implements ``core.recommenders.base.Validator`` (the contract techniques see as
    ``FitContext.validator``). Built once per context by whoever builds the context (``of``), so
    techniques never import the evaluation layer. Users are those with a relevant validation item,
    sampled with ``seed`` down to ``max_users``; their train items are masked, as in testing.

    Attributes:
        train_csr: the train matrix (masked).
        relevant: users x items CSR of the relevant validation interactions.
        seed: seed of the user sample.
        k: the cut-off of nDCG.
    """

    train_csr: sp.csr_matrix
    relevant: sp.csr_matrix
    seed: int = 42
    k: int = 10

    @classmethod
    def of(cls, dataset, train_csr: sp.csr_matrix, valid, seed: int = 42,
           min_rating: float | None = None, k: int = 10) -> Validator:
        """The validator of ``valid`` (validation interactions of ``dataset``); relevance follows
        ``min_rating`` (the run's ``options["min_rating"]``) when set."""
        relevant = relevant_matrix(valid, dataset.n_users, dataset.n_items, min_rating)
        return cls(train_csr=train_csr, relevant=relevant, seed=seed, k=k)

    def users(self, max_users: int = MAX_VALID_USERS) -> np.ndarray:
        """Users with a relevant validation item (int64, ascending), at most ``max_users`` of them
        (a sample seeded with ``seed``)."""
        users = np.nonzero(np.diff(self.relevant.indptr) > 0)[0]
        if len(users) > max_users:
            rng = np.random.default_rng(self.seed)
            users = np.sort(rng.choice(users, size=max_users, replace=False))
        return users

    def score(self, model: Recommender, max_users: int = MAX_VALID_USERS) -> float:
        """Mean nDCG@``k`` of the fitted ``model`` over ``users(max_users)`` (0.0 without users),
        evaluated like the test part (``evaluate_model``, in blocks)."""
        users = self.users(max_users)
        if len(users) == 0:
            return 0.0
        res = evaluate_model(model, self.train_csr, self.relevant, [self.k], users=users,
                             with_novelty=False)
        return float(res.metrics.values[("ndcg", self.k)])

    def per_user(self, scores: np.ndarray, users: np.ndarray) -> np.ndarray:
        """Per-user nDCG@``k`` (float64) of the dense ``scores`` whose rows are ``users``; train
        items masked (on a copy: ``scores`` is left as given)."""
        users = np.asarray(users, dtype=np.int64)
        scores = np.array(scores)
        mask_rows(scores, self.train_csr, users)
        ranked = top_k(scores, self.k)[0]
        per_user = evaluate_topk(ranked, self.relevant[users], [self.k]).per_user["ndcg"][self.k]
        return np.asarray(per_user, dtype=np.float64)
