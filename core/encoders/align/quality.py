"""Held-out retrieval: how well a shared space finds a text's photos and a photo's texts.

Over the held-out pairs (items the heads never saw): the queries are the distinct texts (or
photos), the candidates the distinct photos (or texts), and a candidate is relevant when it is
paired with the query. ``recall@k`` is the share of queries with at least one relevant candidate
in their top ``k`` (CLIP's retrieval R@k); ``chance@k`` is its expectation under a random ranking,
``1 - C(n - r, k) / C(n, k)`` per query (``n`` candidates, ``r`` relevant), averaged. Reported for
all held-out pairs and per pair set.
"""

from __future__ import annotations

from math import comb
from typing import Any

import numpy as np

KS = (1, 5, 10)


def _chance(n: int, r: int, k: int) -> float:
    if r <= 0:
        return 0.0
    if k >= n:
        return 1.0
    return 1.0 - comb(n - r, k) / comb(n, k)


def _direction(q: np.ndarray, c: np.ndarray, relevant: np.ndarray, ks) -> dict[str, float]:
    sims = np.asarray(q, np.float32) @ np.asarray(c, np.float32).T
    order = np.argsort(-sims, axis=1, kind="stable")
    hit_rank = np.where(np.take_along_axis(relevant, order, axis=1), np.arange(c.shape[0]),
                        c.shape[0]).min(axis=1)  # 0-based rank of the first relevant candidate
    n = c.shape[0]
    r = relevant.sum(axis=1)
    out: dict[str, float] = {}
    for k in ks:
        out[f"recall@{k}"] = float((hit_rank < k).mean())
        out[f"chance@{k}"] = float(np.mean([_chance(n, int(x), k) for x in r]))
    return out


def retrieval(text_vecs: np.ndarray, photo_vecs: np.ndarray, text_idx: np.ndarray,
              photo_idx: np.ndarray, kinds: np.ndarray | None = None,
              ks=KS) -> dict[str, Any]:
    """Retrieval figures of the pairs ``(text_idx[i], photo_idx[i])``; ``text_vecs`` /
    ``photo_vecs`` are indexed by those numbers. Pairs whose vectors are zero (no input) are
    left out. With ``kinds``, ``by_kind`` holds the same figures per pair set."""
    text_vecs = np.asarray(text_vecs, np.float32)
    photo_vecs = np.asarray(photo_vecs, np.float32)
    t_idx = np.asarray(text_idx, np.int64)
    p_idx = np.asarray(photo_idx, np.int64)
    usable = (np.abs(text_vecs[t_idx]).sum(1) > 0) & (np.abs(photo_vecs[p_idx]).sum(1) > 0)
    t_idx, p_idx = t_idx[usable], p_idx[usable]
    if kinds is not None:
        kinds = np.asarray(kinds, dtype=object)[usable]

    def figures(t: np.ndarray, p: np.ndarray) -> dict[str, Any]:
        ts, t_local = np.unique(t, return_inverse=True)
        ps, p_local = np.unique(p, return_inverse=True)
        if len(ts) < 2 or len(ps) < 2:
            return {"texts": int(len(ts)), "photos": int(len(ps)), "pairs": int(len(t))}
        rel = np.zeros((len(ts), len(ps)), dtype=bool)
        rel[t_local, p_local] = True
        return {"texts": int(len(ts)), "photos": int(len(ps)), "pairs": int(len(t)),
                "text_to_image": _direction(text_vecs[ts], photo_vecs[ps], rel, ks),
                "image_to_text": _direction(photo_vecs[ps], text_vecs[ts], rel.T, ks)}

    out = figures(t_idx, p_idx)
    if kinds is not None:
        out["by_kind"] = {str(k): figures(t_idx[kinds == k], p_idx[kinds == k])
                          for k in dict.fromkeys(kinds.tolist())}
    return out


def summary_line(fig: dict[str, Any], k: int = 10) -> str:
    """``t→i R@10 0.62 (chance 0.07), i→t R@10 0.55 (chance 0.08)`` for labels and tables."""
    parts = []
    for d, name in (("text_to_image", "t→i"), ("image_to_text", "i→t")):
        if d in fig:
            parts.append(f"{name} R@{k} {fig[d][f'recall@{k}']:.2f} "
                         f"(chance {fig[d][f'chance@{k}']:.2f})")
    return ", ".join(parts) or "too few held-out pairs to measure"
