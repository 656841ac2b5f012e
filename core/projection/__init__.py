"""2-D maps of embedding spaces: UMAP, cosine metric (lazy import, seeded), cached in DuckDB.

``project(vectors, ...)`` computes coordinates; ``project_cached(...)`` looks them up first in
``<cache>/projections.duckdb``, keyed by the caller's key (dataset, encoder, what) plus a hash of
the vectors themselves and the layout's parameters, so changed embeddings never reuse stale
coordinates. Above ``SAMPLE_THRESHOLD`` points the caller passes ``sample`` (a seeded random subset
is mapped). Each computed map records how long it took, and ``estimate_map`` turns those records
into the expected time of the next one.

How a map is laid out depends on its size (``layout_params`` names it, and it is part of the key):

* up to ``EXACT_KNN_MIN`` points: UMAP as it comes (it finds neighbours exactly at that size);
* up to ``LANDMARKS`` points: UMAP of every point, handed each point's exact cosine neighbours
  (``nearest_cosine``: blocked matrix products) instead of its approximate NN-descent, whose numba
  compilation alone took about 60 s on a 2-core machine;
* above: a *landmark map*: UMAP (PCA-initialised) of a seeded sample of ``LANDMARKS`` points, and
  every other point placed at the similarity-weighted mean of its ``PLACE_K`` nearest landmarks
  (``place_near``, the rule that also places a user's vector); vectors with more than
  ``REDUCED_DIMS`` dimensions are reduced to that many by PCA (fitted on the landmarks) for it.
  100,000 points take about a third of a minute after the one-time compilation on 2 cores,
  where UMAP of every point took over three minutes.
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
#: UMAP's own exact-neighbour limit: above it, neighbours are searched here (``nearest_cosine``)
EXACT_KNN_MIN = 4096
#: maps of more points are landmark maps of this many UMAP points (see the module docstring)
LANDMARKS = 20_000
#: landmark maps search neighbours among vectors reduced to this many PCA dimensions
REDUCED_DIMS = 128
#: a point that is not a landmark sits at the weighted mean of this many nearest landmarks
PLACE_K = 10
#: placing a point costs about this fraction of UMAP's time per point (measured: 20,000
#: landmarks in 11.7 s, 80,000 placed points in 5.5 s, once compiled)
PLACE_COST = 0.12
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
                rates.append(map_work(n) / work)
    rate = float(np.median(rates)) if rates else UMAP_POINTS_PER_S
    first = (not umap_loaded()) if first_in_process is None else bool(first_in_process)
    compile_s = UMAP_COMPILE_S if first else 0.0
    return MapEstimate(seconds=UMAP_BASE_S + map_work(n_points) / rate + compile_s,
                       points_per_s=rate, recorded=len(rates), compile_s=compile_s)


def map_work(n_points: int, landmarks: int | None = None) -> float:
    """A map's cost in UMAP points: every point up to ``landmarks``, and ``PLACE_COST`` of one
    for each point placed beyond them (so rates recorded on small and landmark maps compare)."""
    landmarks = LANDMARKS if landmarks is None else landmarks
    return min(n_points, landmarks) + PLACE_COST * max(0, n_points - landmarks)


@dataclass
class Projection:
    """2-D coordinates of the rows ``index`` of the projected matrix (all rows unless sampled);
    ``landmarks``: set for a landmark map (module docstring)."""

    coords: np.ndarray  # (n, 2) float32
    index: np.ndarray  # (n,) int64 row numbers into the input vectors
    cached: bool = False
    landmarks: int | None = None  # a landmark map: how many points UMAP laid out


def layout_params(n_points: int, landmarks: int | None = None) -> dict[str, Any]:
    """How ``project`` lays out ``n_points`` (see the module docstring), as cache-key fields:
    ``{}`` for UMAP as it comes, ``{"neighbours": "exact"}`` for UMAP handed exact neighbours,
    and the landmark map's settings above ``landmarks`` (default ``LANDMARKS``) points."""
    landmarks = LANDMARKS if landmarks is None else landmarks
    if n_points > landmarks:
        return {"neighbours": "exact", "landmarks": int(landmarks), "reduced_dims": REDUCED_DIMS,
                "place_k": PLACE_K, "landmark_init": "pca"}
    return {"neighbours": "exact"} if n_points > EXACT_KNN_MIN else {}


def project(
    vectors: np.ndarray, seed: int = 42, n_neighbors: int = 15, min_dist: float = 0.1,
    landmarks: int | None = None,
) -> np.ndarray:
    """UMAP (cosine) of the rows of ``vectors`` → ``(n, 2)`` float32, deterministic for a seed.

    Tiny inputs (fewer than 4 rows), where UMAP is undefined, get a PCA layout instead. More than
    ``landmarks`` rows (default ``LANDMARKS``) make a landmark map (module docstring): the
    landmarks' coordinates are UMAP's initialised by PCA, the other rows are placed among them.
    """
    landmarks = LANDMARKS if landmarks is None else landmarks
    x = np.asarray(vectors, dtype=np.float32)
    n = len(x)
    if n == 0:
        return np.zeros((0, 2), dtype=np.float32)
    if n < 4:
        centred = x - x.mean(axis=0, keepdims=True)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        out = centred @ vt[:2].T if vt.shape[0] >= 2 else np.zeros((n, 2))
        return np.pad(out, ((0, 0), (0, max(0, 2 - out.shape[1])))).astype(np.float32)
    if n <= landmarks:
        return _umap(x, seed, n_neighbors, min_dist, init="spectral" if n > 10 else "random")
    chosen = sample_rows(n, landmarks, seed)
    reduced = _reduce(x, chosen, REDUCED_DIMS, seed)
    coords = np.empty((n, 2), dtype=np.float32)
    coords[chosen] = _umap(reduced[chosen], seed, n_neighbors, min_dist, init="pca")
    rest = np.setdiff1d(np.arange(n), chosen, assume_unique=True)
    coords[rest] = place_near(reduced[rest], reduced[chosen], coords[chosen], k=PLACE_K)
    return coords


def _umap(x: np.ndarray, seed: int, n_neighbors: int, min_dist: float, init: str) -> np.ndarray:
    """UMAP (cosine) of ``x``'s rows, with exact neighbours searched here above
    ``EXACT_KNN_MIN`` rows."""
    import warnings

    try:
        import umap
    except ImportError as exc:  # pragma: no cover - umap-learn is a dependency
        raise LabError("the embedding map needs umap-learn: pip install umap-learn") from exc
    n = len(x)
    k = max(2, min(n_neighbors, n - 1))
    knn = None
    if n > EXACT_KNN_MIN:
        idx, sims = nearest_cosine(x, x, k)
        knn = (idx, np.maximum(1.0 - sims, 0.0).astype(np.float32), None)
    reducer = umap.UMAP(
        n_components=2, metric="cosine", n_neighbors=k, min_dist=min_dist, random_state=seed,
        n_jobs=1, init=init, precomputed_knn=knn if knn is not None else (None, None, None),
    )
    with warnings.catch_warnings():
        # with neighbours given and no search index, UMAP warns that ``transform`` is off
        warnings.filterwarnings("ignore", message=".*knn_search_index.*")
        return np.asarray(reducer.fit_transform(x), dtype=np.float32)


def _reduce(x: np.ndarray, fit_rows: np.ndarray, dims: int, seed: int) -> np.ndarray:
    """Unit rows of ``x``, reduced to ``dims`` PCA dimensions fitted on ``fit_rows`` (seeded
    randomized SVD) when they have more, and made unit length again."""
    from sklearn.utils.extmath import randomized_svd

    unit = _unit(x)
    if unit.shape[1] <= dims:
        return unit
    fit = unit[fit_rows]
    mean = fit.mean(axis=0, keepdims=True)
    _, _, vt = randomized_svd(fit - mean, n_components=dims, n_iter=4, random_state=seed)
    return _unit((unit - mean) @ vt.T.astype(np.float32))


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def nearest_cosine(query: np.ndarray, vectors: np.ndarray, k: int,
                   block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows of ``vectors`` nearest to each row of ``query`` by cosine: ``(rows (m, k)
    int64, cosines (m, k) float32)``, nearest first, ties to the lower row (``core.ranking.top_k``);
    exact, ``block`` query rows per matrix product so memory stays ``block × len(vectors)``."""
    from core.ranking import top_k

    q, v = _unit(np.atleast_2d(query)), _unit(vectors)
    k = max(1, min(int(k), len(v)))
    rows = np.empty((len(q), k), dtype=np.int64)
    sims = np.empty((len(q), k), dtype=np.float32)
    for start in range(0, len(q), block):
        rows[start:start + block], sims[start:start + block] = top_k(
            q[start:start + block] @ v.T, k)
    return rows, sims


def sample_rows(n: int, sample: int | None, seed: int) -> np.ndarray:
    """Row numbers to map: all of them, or a sorted seeded subset of ``sample`` rows."""
    if sample is None or sample >= n:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=int(sample), replace=False)).astype(np.int64)


def projection_key(key: Mapping[str, Any], vectors: np.ndarray, params: Mapping[str, Any]) -> str:
    """Cache key: the caller's identity fields, the vectors' content hash and UMAP parameters."""
    # hashed in place (a contiguous array's buffer; tobytes would copy it first)
    h = hashlib.sha256(memoryview(np.ascontiguousarray(vectors, dtype=np.float32)).cast("B")
                       ).hexdigest()
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
    x = np.asarray(vectors, dtype=np.float32)
    sub = x if len(rows) == len(x) else x[rows]
    params = {"seed": seed, "n_neighbors": n_neighbors, "min_dist": min_dist,
              "sample": None if len(rows) == len(vectors) else int(len(rows)),
              **layout_params(len(rows))}
    pkey = projection_key(key, sub, params)
    store = ProjectionStore(Path(cache_root) / FILE_NAME)
    hit = store.get(pkey)
    if hit is not None and len(hit) == len(rows):
        return Projection(coords=hit, index=rows, cached=True,
                          landmarks=params.get("landmarks"))
    cold, start = not umap_loaded(), time.perf_counter()
    coords = project(sub, seed=seed, n_neighbors=n_neighbors, min_dist=min_dist)
    timing = {"seconds": round(time.perf_counter() - start, 3), "cold": cold}
    store.put(pkey, coords, info={**dict(key), **params, "timing": timing})
    return Projection(coords=coords, index=rows, cached=False, landmarks=params.get("landmarks"))


def place_near(
    query: np.ndarray, vectors: np.ndarray, coords: np.ndarray, k: int = 10
) -> np.ndarray:
    """2-D position for vectors that were not mapped (a user's vector, a landmark map's other
    points): the similarity-weighted mean of the coordinates of its ``k`` nearest mapped rows by
    cosine (weights: cosine clipped at 0, plus 1e-6). ``query`` is ``(m, d)``."""
    rows, sims = nearest_cosine(query, vectors, k)
    w = np.maximum(sims, 0) + 1e-6
    pts = np.asarray(coords, dtype=np.float32)[rows]  # (m, k, 2)
    return ((pts * w[..., None]).sum(axis=1) / w.sum(axis=1, keepdims=True)).astype(np.float32)
