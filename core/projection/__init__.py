"""2-D maps of embedding spaces: UMAP, cosine metric (lazy import, seeded), cached in DuckDB.

``project(vectors, ...)`` computes coordinates; ``project_cached(...)`` looks them up first in
``<cache>/projections.duckdb``, keyed by the caller's key (dataset, encoder, what) plus a hash of
the vectors themselves and the UMAP parameters, so changed embeddings never reuse stale coordinates.
Above ``SAMPLE_THRESHOLD`` points the caller passes ``sample`` (a seeded random subset is mapped).
Each computed map records how long its UMAP took, and ``estimate_map`` turns those records into
the expected time of the next one.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import LabError

SAMPLE_THRESHOLD = 100_000
FILE_NAME = "projections.duckdb"
#: UMAP's cost when no map was recorded yet (2-core CPU, the app's demo): seconds = BASE + n /
#: RATE, plus numba compiling UMAP's functions once per process (the first map took 12.9 s for
#: 300 points, a second one 0.5 s; 1,500 points 4.9 s, 4,000 points 19 s)
UMAP_BASE_S, UMAP_POINTS_PER_S, UMAP_COMPILE_S = 1.0, 250.0, 13.0
#: how many of the latest recorded maps set the rate
RECORDED_FITS = 20


@dataclass(frozen=True)
class MapEstimate:
    """How long a map that is not cached yet should take (``estimate_map``).

    ``seconds``: the whole of it; ``points_per_s``: the UMAP rate used; ``recorded``: how many
    earlier maps (timed and stored in ``projections.duckdb``) that rate comes from, 0 for the
    default ``UMAP_POINTS_PER_S``; ``compile_s``: numba's one-time compilation included (the
    first map of a process)."""

    seconds: float
    points_per_s: float
    recorded: int = 0
    compile_s: float = 0.0

    def short(self) -> str:
        """``"about 20 s"``."""
        return f"about {max(1, round(self.seconds))} s"

    def describe(self) -> str:
        """The time and what it rests on."""
        basis = (f"{self.points_per_s:,.0f} points/s, the median of the last {self.recorded} "
                 f"map{'s' if self.recorded != 1 else ''} computed with this cache"
                 if self.recorded else f"a default rate of {self.points_per_s:,.0f} points/s")
        extra = (f", including about {self.compile_s:.0f} s to compile UMAP once in this server "
                 "process" if self.compile_s else "")
        return f"{self.short()} ({basis}{extra})"


def umap_loaded() -> bool:
    """Whether this process has run UMAP already (its numba functions are compiled then)."""
    return "umap" in sys.modules


def estimate_map(n_points: int, cache_root: str | Path | None = None,
                 first_in_process: bool | None = None) -> MapEstimate:
    """How long ``project_cached`` should take to map ``n_points`` that are not cached:
    ``UMAP_BASE_S`` + ``n_points`` / rate, the rate being the median of the recorded rates of the
    last ``RECORDED_FITS`` maps computed with ``cache_root`` (each map stores how long its UMAP
    took; so a busy or slow machine gets its own rate), else ``UMAP_POINTS_PER_S``; plus
    ``UMAP_COMPILE_S`` when ``first_in_process`` (default: UMAP not imported yet here).
    Reads the projection store only; computes nothing."""
    rates: list[float] = []
    if cache_root is not None and (Path(cache_root) / FILE_NAME).is_file():
        from core.projection.store import ProjectionStore

        for n, seconds, cold in ProjectionStore(Path(cache_root) / FILE_NAME).timings(
                RECORDED_FITS):
            work = seconds - UMAP_BASE_S - (UMAP_COMPILE_S if cold else 0.0)
            if n >= 100 and work > 0:  # tiny maps say nothing about the rate
                rates.append(n / work)
    rate = float(np.median(rates)) if rates else UMAP_POINTS_PER_S
    first = (not umap_loaded()) if first_in_process is None else bool(first_in_process)
    compile_s = UMAP_COMPILE_S if first else 0.0
    return MapEstimate(seconds=UMAP_BASE_S + n_points / rate + compile_s, points_per_s=rate,
                       recorded=len(rates), compile_s=compile_s)


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
    cold, start = not umap_loaded(), time.perf_counter()
    coords = project(sub, seed=seed, n_neighbors=n_neighbors, min_dist=min_dist)
    timing = {"seconds": round(time.perf_counter() - start, 3), "cold": cold}
    store.put(pkey, coords, info={**dict(key), **params, "timing": timing})
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
