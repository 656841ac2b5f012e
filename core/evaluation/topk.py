"""Top-k selection over dense score blocks (the one ranking primitive of the engine)."""

from __future__ import annotations

import numpy as np


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``k`` largest entries of each row, best first.

    Entries equal to ``-inf`` are treated as masked: they come back as id ``-1``. Ties are broken
    by the lower item index, so results are deterministic.
    """
    scores = np.asarray(scores, dtype=np.float32)
    n_rows, n_cols = scores.shape
    k_eff = min(k, n_cols)
    if k_eff < n_cols:
        part = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
    else:
        part = np.broadcast_to(np.arange(n_cols), (n_rows, n_cols)).copy()
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)
    ids = np.take_along_axis(part, order, axis=1).astype(np.int64)
    vals = np.take_along_axis(vals, order, axis=1)
    ids[~np.isfinite(vals) & (vals < 0)] = -1
    if k_eff < k:
        pad = k - k_eff
        ids = np.hstack([ids, np.full((n_rows, pad), -1, dtype=np.int64)])
        vals = np.hstack([vals, np.full((n_rows, pad), -np.inf, dtype=np.float32)])
    return ids, vals
