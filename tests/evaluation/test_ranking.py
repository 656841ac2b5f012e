"""top_k's two ways of selecting (whole-row partition, chunk maxima) against a full sort."""

from __future__ import annotations

import numpy as np
import pytest

import core.ranking
from core.ranking import _chunk_size, _method, top_k


def full_sort(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The contract spelled out: sort each row by (score desc, index asc), -inf -> id -1, pad."""
    n_rows, n_cols = scores.shape
    order = np.lexsort((np.broadcast_to(np.arange(n_cols), scores.shape), -scores), axis=1)
    ids = order[:, :k].astype(np.int64)
    vals = np.take_along_axis(scores, ids, axis=1)
    ids[np.isneginf(vals)] = -1
    pad = k - ids.shape[1]
    ids = np.hstack([ids, np.full((n_rows, pad), -1, dtype=np.int64)])
    vals = np.hstack([vals, np.full((n_rows, pad), -np.inf, dtype=np.float32)])
    return ids, vals


def blocks(seed: int):
    """Random blocks of every kind of trouble: heavy ties, masks, rows of equal scores, rows with
    fewer unmasked entries than k, +inf, widths that do not divide into chunks."""
    rng = np.random.default_rng(seed)
    for trial in range(60):
        n_rows, n_cols = int(rng.integers(1, 12)), int(rng.integers(1, 4000))
        k = int(rng.integers(1, 45))
        kind = trial % 5
        if kind == 0:
            s = rng.standard_normal((n_rows, n_cols))
        elif kind == 1:
            s = rng.integers(0, 4, (n_rows, n_cols))
        elif kind == 2:
            s = rng.integers(0, 1000, (n_rows, n_cols))
        elif kind == 3:
            s = np.round(rng.standard_normal((n_rows, n_cols)), 1)
        else:
            s = np.zeros((n_rows, n_cols))
        s = s.astype(np.float32)
        s[rng.random((n_rows, n_cols)) < rng.random()] = -np.inf
        if trial % 3 == 0:
            s[0] = 0.5  # a user without history: every score equal
        if trial % 7 == 0:
            s[-1] = -np.inf  # everything masked
            s[-1, rng.integers(0, n_cols, 3)] = np.inf
        yield s, k


@pytest.mark.parametrize("method", ["chunked", "partition"])
@pytest.mark.parametrize("seed", [0, 1])
def test_each_method_equals_a_full_sort(method, seed, monkeypatch):
    monkeypatch.setenv("MMREC_TOPK", method)
    for scores, k in blocks(seed):
        ids, vals = top_k(scores, k)
        want_ids, want_vals = full_sort(scores, k)
        assert ids.dtype == np.int64 and vals.dtype == np.float32
        np.testing.assert_array_equal(ids, want_ids)
        np.testing.assert_array_equal(vals, want_vals)


def test_chunked_is_taken_on_long_rows_and_equals_partition(monkeypatch):
    """Realistic blocks (factor-model scores, train items masked, a cold user) over a catalogue
    whose width is no multiple of the chunk size: both methods agree id for id."""
    rng = np.random.default_rng(3)
    n_items, k = 20_011, 30
    assert _method(n_items, k) == "chunked" and n_items % _chunk_size(n_items, k)
    scores = rng.standard_normal((64, 16)).astype(np.float32) @ \
        rng.standard_normal((16, n_items)).astype(np.float32)
    scores[rng.integers(0, 64, 2000), rng.integers(0, n_items, 2000)] = -np.inf
    scores[5] = 0.0
    scores[6, :] = np.round(scores[6], 0)  # heavy ties at the boundary
    calls = []
    real = core.ranking._chunked
    monkeypatch.setattr(core.ranking, "_chunked", lambda s, kk: calls.append(1) or real(s, kk))
    got = top_k(scores, k)
    assert calls, "the chunked selection was not used"
    monkeypatch.setenv("MMREC_TOPK", "partition")
    ref = top_k(scores, k)
    assert len(calls) == 1
    for a, b, c in zip(got, ref, full_sort(scores, k)):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_short_rows_partition_and_rows_too_short_for_chunks():
    assert _method(1_000, 30) == "partition"
    assert _chunk_size(60, 30) == 0  # no room for k + 1 chunks: never chunked
    scores = np.arange(60, dtype=np.float32)[None, ::-1].copy()
    ids, _ = top_k(scores, 30)
    assert ids.tolist() == [list(range(30))]
