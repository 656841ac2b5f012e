"""The ranking primitives recommenders and evaluation share: top-k selection and row masking.

They live below both layers (``core.recommenders`` ranks in ``Recommender.recommend``,
``core.evaluation`` in the evaluator) so that neither imports the other for them. Import-light
(numpy, scipy); ``top_k`` imports torch lazily, and only for big blocks (see ``TORCH_MIN_ENTRIES``).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import scipy.sparse as sp

#: Blocks with at least this many entries use ``torch.topk`` when torch is importable (it selects
#: without materialising an int64 index per entry, and uses every core, about 10x faster than
#: ``argpartition`` on 1,000 x 50,000 blocks); smaller blocks use numpy unless torch is already
#: imported (so small datasets do not pay torch's import). ``MMREC_TOPK=numpy`` forces numpy.
TORCH_MIN_ENTRIES = 8_000_000


def _torch(entries: int):
    if os.environ.get("MMREC_TOPK", "").lower() == "numpy":
        return None
    if entries < TORCH_MIN_ENTRIES and "torch" not in sys.modules:
        return None
    try:
        import torch
    except Exception:  # pragma: no cover - torch is a dependency, but stay usable without it
        return None
    return torch


def _candidates(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Column indices of ``k`` largest entries per row (unordered; boundary ties arbitrary), and,
    when cheaply known, which rows may have a tie at the boundary (``None`` = not known)."""
    n_rows, n_cols = scores.shape
    torch = _torch(n_rows * n_cols)
    if torch is not None:
        # one extra candidate tells whether the k-th value is shared with an unselected entry
        m = min(k + 1, n_cols)
        res = torch.topk(torch.from_numpy(scores), m, dim=1, largest=True, sorted=True)
        idx, vals = res.indices.numpy(), res.values.numpy()
        tied = vals[:, k] == vals[:, k - 1] if m > k else np.zeros(n_rows, dtype=bool)
        return idx[:, :k], tied
    return np.argpartition(scores, n_cols - k, axis=1)[:, n_cols - k:], None


def _fix_boundary_ties(
    scores: np.ndarray, ids: np.ndarray, vals: np.ndarray, k: int, tied: np.ndarray | None
) -> None:
    """Where an unselected entry equals the k-th value, re-select that row exactly (lower index
    first among equal scores), in place."""
    kth = vals[:, -1]
    if tied is None:
        # every selected entry is >= kth, every other one <= kth: more than k entries >= kth
        # means an unselected entry ties with the k-th
        tied = np.count_nonzero(scores >= kth[:, None], axis=1) > k
    bad = np.nonzero(tied & np.isfinite(kth))[0]
    if bad.size == 0:
        return
    sub = scores[bad]
    r, c = np.nonzero(sub >= kth[bad, None])
    v = sub[r, c]
    order = np.lexsort((c, -v, r))
    r, c, v = r[order], c[order], v[order]
    starts = np.searchsorted(r, np.arange(len(bad)))
    pos = np.arange(len(r)) - starts[r]
    keep = pos < k
    ids[bad[r[keep]], pos[keep]] = c[keep]
    vals[bad[r[keep]], pos[keep]] = v[keep]


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``k`` largest entries of each row, best first.

    Entries equal to ``-inf`` are treated as masked: they come back as id ``-1``. Ties are broken
    by the lower item index, so results are deterministic and independent of the batch.
    """
    scores = np.ascontiguousarray(scores, dtype=np.float32)
    n_rows, n_cols = scores.shape
    k_eff = min(k, n_cols)
    if k_eff <= 0:
        part = np.zeros((n_rows, 0), dtype=np.int64)
    elif k_eff < n_cols:
        part, tied = _candidates(scores, k_eff)
        part = part.astype(np.int64, copy=False)
    else:
        part = np.broadcast_to(np.arange(n_cols, dtype=np.int64), (n_rows, n_cols)).copy()
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)
    ids = np.take_along_axis(part, order, axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    if 0 < k_eff < n_cols:
        _fix_boundary_ties(scores, ids, vals, k_eff, tied)
    ids[np.isneginf(vals)] = -1
    if k_eff < k:
        pad = k - k_eff
        ids = np.hstack([ids, np.full((n_rows, pad), -1, dtype=np.int64)])
        vals = np.hstack([vals, np.full((n_rows, pad), -np.inf, dtype=np.float32)])
    return ids, vals


def mask_rows(scores: np.ndarray, mask: sp.csr_matrix, users: np.ndarray) -> None:
    """Set ``scores[i, j] = -inf`` in place wherever ``mask[users[i], j]`` is stored."""
    sub = mask[users]
    rows = np.repeat(np.arange(len(users)), np.diff(sub.indptr))
    scores[rows, sub.indices] = -np.inf
