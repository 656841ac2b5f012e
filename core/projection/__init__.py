"""2-D maps of embedding spaces: UMAP, cosine metric (lazy import, seeded), cached in DuckDB.

``project(vectors, ...)`` computes coordinates; ``project_cached(...)`` looks them up first in
``<cache>/projections.duckdb``, keyed by the caller's key (dataset, encoder, what) plus a hash of
the vectors themselves and the UMAP parameters, so changed embeddings never reuse stale coordinates.
Above ``SAMPLE_THRESHOLD`` points the caller passes ``sample`` (a seeded random subset is mapped).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import LabError

SAMPLE_THRESHOLD = 100_000
FILE_NAME = "projections.duckdb"
#: rough UMAP cost on a 2-core CPU, from the app benchmark (1,500 photos: 8.9 s; 300 items: 21.7 s
#: of which about 15 s is numba compiling UMAP once per process): seconds = BASE + n / RATE
UMAP_BASE_S, UMAP_POINTS_PER_S, UMAP_COMPILE_S = 3.0, 250.0, 15.0


def estimate_seconds(n_points: int, first_in_process: bool = False) -> float:
    """A rough time for a cold UMAP of ``n_points`` (``first_in_process``: numba compiles too)."""
    return UMAP_BASE_S + n_points / UMAP_POINTS_PER_S + (UMAP_COMPILE_S if first_in_process else 0)


@dataclass
class Projection:
    """2-D coordinates of the rows ``index`` of the projected matrix (all rows unless sampled)."""

    coords: np.ndarray  # (n, 2) float32
    index: np.ndarray  # (n,) int64 row numbers into the input vectors
    cached: bool = False


def project(
    vectors: np.ndarray, seed: int = 42, n_neighbors: int = 15, min_dist: float = 0.1
) -> np.ndarray:
    """UMAP (cosine) of the rows of ``vectors`` → ``(n, 2)`` float32, deterministic for a seed.

    Tiny inputs (fewer than 4 rows), where UMAP is undefined, get a PCA layout instead.
    """
    x = np.asarray(vectors, dtype=np.float32)
    n = len(x)
    if n == 0:
        return np.zeros((0, 2), dtype=np.float32)
    if n < 4:
        centred = x - x.mean(axis=0, keepdims=True)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        out = centred @ vt[:2].T if vt.shape[0] >= 2 else np.zeros((n, 2))
        return np.pad(out, ((0, 0), (0, max(0, 2 - out.shape[1])))).astype(np.float32)
    try:
        import umap
    except ImportError as exc:  # pragma: no cover - umap-learn is a dependency
        raise LabError("the embedding map needs umap-learn: pip install umap-learn") from exc
    reducer = umap.UMAP(
        n_components=2, metric="cosine", n_neighbors=max(2, min(n_neighbors, n - 1)),
        min_dist=min_dist, random_state=seed, n_jobs=1, init="spectral" if n > 10 else "random",
    )
    return np.asarray(reducer.fit_transform(x), dtype=np.float32)


def sample_rows(n: int, sample: int | None, seed: int) -> np.ndarray:
    """Row numbers to map: all of them, or a sorted seeded subset of ``sample`` rows."""
    if sample is None or sample >= n:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=int(sample), replace=False)).astype(np.int64)


def projection_key(key: Mapping[str, Any], vectors: np.ndarray, params: Mapping[str, Any]) -> str:
    """Cache key: the caller's identity fields, the vectors' content hash and UMAP parameters."""
    h = hashlib.sha256(np.ascontiguousarray(vectors, dtype=np.float32).tobytes()).hexdigest()
    text = json.dumps({"key": dict(key), "vectors": h, "params": dict(params)}, sort_keys=True,
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def project_cached(
    vectors: np.ndarray,
    key: Mapping[str, Any],
    cache_root: str | Path,
    seed: int = 42,
    sample: int | None = None,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
) -> Projection:
    """Coordinates of ``vectors`` from the cache, computing and storing them on a miss.

    Args:
        key: identity of what is mapped, e.g. ``{"dataset": ..., "encoder": ..., "what": "items"}``.
        sample: map only this many seeded random rows (offered above ``SAMPLE_THRESHOLD``).
    """
    from core.projection.store import ProjectionStore

    rows = sample_rows(len(vectors), sample, seed)
    sub = np.asarray(vectors, dtype=np.float32)[rows]
    params = {"seed": seed, "n_neighbors": n_neighbors, "min_dist": min_dist,
              "sample": None if len(rows) == len(vectors) else int(len(rows))}
    pkey = projection_key(key, sub, params)
    store = ProjectionStore(Path(cache_root) / FILE_NAME)
    hit = store.get(pkey)
    if hit is not None and len(hit) == len(rows):
        return Projection(coords=hit, index=rows, cached=True)
    coords = project(sub, seed=seed, n_neighbors=n_neighbors, min_dist=min_dist)
    store.put(pkey, coords, info={**dict(key), **params})
    return Projection(coords=coords, index=rows, cached=False)


def place_near(
    query: np.ndarray, vectors: np.ndarray, coords: np.ndarray, k: int = 10
) -> np.ndarray:
    """2-D position for vectors that were not mapped (a user's vector): the similarity-weighted
    mean of the coordinates of its ``k`` nearest mapped rows by cosine. ``query`` is ``(m, d)``."""
    q = np.atleast_2d(np.asarray(query, dtype=np.float32))
    v = np.asarray(vectors, dtype=np.float32)
    qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    vn = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    sims = qn @ vn.T
    k = max(1, min(k, v.shape[0]))
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    w = np.maximum(np.take_along_axis(sims, top, axis=1), 0) + 1e-6
    pts = coords[top]  # (m, k, 2)
    return (pts * w[..., None]).sum(axis=1) / w.sum(axis=1, keepdims=True)
