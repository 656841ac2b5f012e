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
from core.evaluation.topk import top_k
from core.recommenders.base import Recommender, mask_rows

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


def validation_score(
    model: Recommender, ctx, k: int = 10, metric: str = "ndcg", max_users: int = 5000
) -> float:
    """Mean ``metric@k`` of a model fitted on ``ctx.train`` over the validation users (train
    masked; at most ``max_users`` users, sampled with ``ctx.seed``). Used to pick hyperparameters.

    Relevance follows ``ctx.options["min_rating"]`` when set."""
    ds = ctx.dataset
    relevant = relevant_matrix(ctx.valid, ds.n_users, ds.n_items, ctx.options.get("min_rating"))
    users = np.nonzero(np.diff(relevant.indptr) > 0)[0]
    if len(users) == 0:
        return 0.0
    if len(users) > max_users:
        rng = np.random.default_rng(ctx.seed)
        users = np.sort(rng.choice(users, size=max_users, replace=False))
    res = evaluate_model(model, ctx.train_csr, relevant, [k], users=users, with_novelty=False)
    return res.metrics.values[(metric, k)]
