"""Top-k ranking metrics: pure, vectorised functions of (ranked item ids, relevant item ids).

For a user with ranked list ``r_1..r_K`` (``-1`` = no item), relevant set ``R`` and hit indicator
``h_i = [r_i in R]`` (ranks are 1-based):

* ``precision@k = (sum_{i<=k} h_i) / k``
* ``recall@k = (sum_{i<=k} h_i) / |R|``
* ``hit_rate@k = 1 if any h_i, i <= k, else 0``
* ``map@k``: ``AP@k = sum_{i<=k} h_i * precision@i / min(|R|, k)``, averaged over users
* ``ndcg@k = DCG@k / IDCG@k`` with ``DCG@k = sum_{i<=k} h_i / log2(i + 1)`` and ``IDCG@k`` the
  DCG of ``min(|R|, k)`` hits at the top
* ``mrr@k = 1 / (rank of the first hit)`` if it is ``<= k``, else 0
* ``coverage@k`` = distinct items in the top-k lists of all evaluated users / ``n_items``
  (one number per run, no per-user value)
* ``novelty@k`` = mean over the user's top-k items of the self-information ``-log2(p_i)``, with
  ``p_i = (c_i + 1) / (U + 1)``, ``c_i`` the number of distinct train users of item ``i`` and ``U``
  the number of users with train history (add-one smoothing: never-seen items get ``log2(U + 1)``).

Aggregates are plain means over evaluated users (every user has ``|R| >= 1``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

#: Metric names in display order.
METRICS = ("map", "ndcg", "recall", "precision", "hit_rate", "mrr", "coverage", "novelty")
#: Metrics that have a per-user value (coverage is a property of the whole run).
PER_USER_METRICS = tuple(m for m in METRICS if m != "coverage")


@dataclass(frozen=True)
class MetricInfo:
    """How a metric reads: ``label`` in table columns (``nDCG@10``), its full ``name`` and a
    one-line ``definition`` in words (the formulas are in the module docstring and
    docs/protocol.md)."""

    label: str
    name: str
    definition: str


#: Every metric's label, full name and one-line definition: the one home the app's pickers,
#: tooltips and the CLI's column titles read.
METRIC_INFO: dict[str, MetricInfo] = {
    "map": MetricInfo("MAP", "mean average precision",
                      "precision at each hit in the top k, summed and divided by "
                      "min(held-out items, k), averaged over users"),
    "ndcg": MetricInfo("nDCG", "normalised discounted cumulative gain",
                       "hits weighted by 1 / log2(rank + 1), divided by the best score the "
                       "user's held-out items allow (1 = all at the top)"),
    "recall": MetricInfo("Recall", "recall",
                         "share of the user's held-out items that are in the top k"),
    "precision": MetricInfo("Prec", "precision",
                            "share of the top k that are held-out items (hits / k)"),
    "hit_rate": MetricInfo("HR", "hit rate",
                           "share of users with at least one held-out item in the top k"),
    "mrr": MetricInfo("MRR", "mean reciprocal rank",
                      "1 / rank of the first held-out item in the top k (0 if none), "
                      "averaged over users"),
    "coverage": MetricInfo("Cov", "catalogue coverage",
                           "distinct items in all users' top-k lists / number of items "
                           "(one value per run, no per-user value)"),
    "novelty": MetricInfo("Nov", "novelty",
                          "mean self-information -log2(p) of the top-k items, p = share of "
                          "train users who had the item: higher = less popular picks"),
}
#: Short labels for tables.
METRIC_LABELS = {m: info.label for m, info in METRIC_INFO.items()}


@dataclass
class TopKMetrics:
    """Per-user values ``per_user[metric][k]`` (arrays aligned with the ranked rows) and the
    aggregated ``values[(metric, k)]``."""

    per_user: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)
    values: dict[tuple[str, int], float] = field(default_factory=dict)
    n_users: int = 0


def self_information(item_users: np.ndarray, n_train_users: int) -> np.ndarray:
    """``-log2((c_i + 1) / (U + 1))`` per item (see the module docstring), float64."""
    c = np.asarray(item_users, dtype=np.float64)
    return -np.log2((c + 1.0) / (float(n_train_users) + 1.0))


def hit_matrix(ranked: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """Boolean ``(n_users, K)``: whether ``ranked[u, i]`` is in row ``u`` of ``relevant``."""
    ranked = np.asarray(ranked, dtype=np.int64)
    n, big_k = ranked.shape
    rel = sp.csr_matrix(relevant)
    rel.sort_indices()
    width = np.int64(max(rel.shape[1], int(ranked.max(initial=0)) + 1))
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(rel.indptr))
    keys = rows * width + rel.indices.astype(np.int64)  # sorted: rows then sorted indices
    if len(keys) == 0:
        return np.zeros((n, big_k), dtype=bool)
    probe = (np.arange(n, dtype=np.int64)[:, None] * width + ranked).ravel()
    pos = np.searchsorted(keys, probe)
    pos[pos >= len(keys)] = len(keys) - 1
    hits = (keys[pos] == probe).reshape(n, big_k)
    hits &= ranked >= 0
    return hits


def evaluate_topk(
    ranked: np.ndarray,
    relevant: sp.csr_matrix,
    ks: list[int] | tuple[int, ...],
    item_popularity: np.ndarray | None = None,
    n_items: int | None = None,
    n_train_users: int | None = None,
) -> TopKMetrics:
    """All metrics at every ``k`` from one ranked block.

    Args:
        ranked: ``(n_users, K)`` item indices best first, ``K >= max(ks)``; ``-1`` pads short lists.
        relevant: ``(n_users, n_items)`` CSR, row ``u`` = relevant held-out items of ranked row
            ``u`` (rows with no relevant item give recall/ndcg/map 0 and should not be passed).
        item_popularity: distinct train users per item (for novelty; skipped if ``None``).
        n_items: catalogue size (for coverage; skipped if ``None``).
        n_train_users: users with train history (novelty's ``U``; required with
            ``item_popularity``).
    """
    ranked = np.asarray(ranked, dtype=np.int64)
    ks = sorted({int(k) for k in ks})
    if ranked.shape[1] < ks[-1]:
        raise ValueError(f"ranked lists have {ranked.shape[1]} columns, need {ks[-1]}")
    n, big_k = ranked.shape[0], ks[-1]
    ranked = ranked[:, :big_k]
    hits = hit_matrix(ranked, relevant)
    n_rel = np.diff(sp.csr_matrix(relevant).indptr).astype(np.float64)
    n_rel_safe = np.maximum(n_rel, 1.0)
    ranks = np.arange(1, big_k + 1, dtype=np.float64)
    cum_hits = np.cumsum(hits, axis=1, dtype=np.float64)
    ap_terms = np.cumsum(np.where(hits, cum_hits / ranks, 0.0), axis=1)
    disc = 1.0 / np.log2(ranks + 1.0)
    dcg = np.cumsum(np.where(hits, disc, 0.0), axis=1)
    idcg_table = np.concatenate([[1.0], np.cumsum(disc)])  # idcg_table[m] = IDCG of m hits
    first = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, big_k + 1)
    valid = ranked >= 0
    info = None
    if item_popularity is not None:
        if n_train_users is None:
            raise ValueError("novelty needs n_train_users along with item_popularity")
        info_items = self_information(item_popularity, n_train_users)
        info = np.where(valid, info_items[np.maximum(ranked, 0)], 0.0)
        cum_info = np.cumsum(info, axis=1)
        cum_valid = np.cumsum(valid, axis=1)

    out = TopKMetrics(n_users=n)
    for m in PER_USER_METRICS:
        out.per_user[m] = {}
    for k in ks:
        h = cum_hits[:, k - 1]
        denom = np.minimum(n_rel_safe, k)
        vals = {
            "map": ap_terms[:, k - 1] / denom,
            "ndcg": dcg[:, k - 1] / idcg_table[denom.astype(np.int64)],
            "recall": h / n_rel_safe,
            "precision": h / k,
            "hit_rate": (h > 0).astype(np.float64),
            "mrr": np.where(first <= k, 1.0 / first, 0.0),
        }
        if info is not None:
            vals["novelty"] = cum_info[:, k - 1] / np.maximum(cum_valid[:, k - 1], 1)
        for m, v in vals.items():
            out.per_user[m][k] = v
            out.values[(m, k)] = float(v.mean()) if n else float("nan")
    if n_items:
        out.values.update(coverage(ranked, ks, n_items))
    if info is None:
        del out.per_user["novelty"]
    return out


def merge_topk(parts: list[TopKMetrics], ranked: np.ndarray, n_items: int | None) -> TopKMetrics:
    """Concatenate batch results (per-user arrays) and recompute the aggregates; coverage is
    recomputed from the full ``ranked`` block."""
    out = TopKMetrics(n_users=sum(p.n_users for p in parts))
    if not parts:
        return out
    for m, by_k in parts[0].per_user.items():
        out.per_user[m] = {}
        for k in by_k:
            arr = np.concatenate([p.per_user[m][k] for p in parts])
            out.per_user[m][k] = arr
            out.values[(m, k)] = float(arr.mean()) if len(arr) else float("nan")
    if n_items:
        out.values.update(coverage(ranked, list(parts[0].per_user["map"]), n_items))
    return out


def coverage(ranked: np.ndarray, ks: list[int], n_items: int) -> dict[tuple[str, int], float]:
    """``coverage@k`` for every ``k`` of ``ks`` from one pass over ``ranked`` (items are marked
    column range by column range: the top-20 lists are the top-10 lists and 10 more items)."""
    seen = np.zeros(n_items, dtype=bool)
    out, done = {}, 0
    for k in sorted(ks):
        cols = ranked[:, done:k]
        seen[cols[cols >= 0]] = True
        out[("coverage", k)] = np.count_nonzero(seen) / float(n_items)
        done = k
    return out
