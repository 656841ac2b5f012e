"""UMAP maps: seeded and cached by content; sampling; placing an unmapped vector; the projection
store (sessions of one process at once, files without a schema version, another version)."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from core.projection import place_near, project, project_cached, sample_rows


def _clusters(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.eye(8, dtype=np.float32)[:3] * 5
    return np.concatenate([c + rng.normal(scale=0.1, size=(20, 8)) for c in centres]).astype(
        np.float32)


def test_umap_is_seeded_and_separates_clusters():
    x = _clusters()
    a, b = project(x, seed=3), project(x, seed=3)
    assert a.shape == (60, 2) and a.dtype == np.float32
    np.testing.assert_allclose(a, b)
    centres = np.stack([a[i * 20:(i + 1) * 20].mean(axis=0) for i in range(3)])
    spread = max(np.linalg.norm(a[i * 20:(i + 1) * 20] - centres[i], axis=1).max()
                 for i in range(3))
    gaps = [np.linalg.norm(centres[i] - centres[j]) for i in range(3) for j in range(i + 1, 3)]
    assert min(gaps) > spread  # every cluster stays apart from the others


def test_tiny_inputs_get_a_pca_layout():
    assert project(np.zeros((0, 4))).shape == (0, 2)
    out = project(np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]))
    assert out.shape == (3, 2) and np.isfinite(out).all()


def test_cache_hit_returns_the_same_coordinates_and_changed_vectors_miss(tmp_path):
    x = _clusters()
    key = {"dataset": "d", "encoder": "e", "what": "items"}
    first = project_cached(x, key, tmp_path, seed=1)
    assert not first.cached and (tmp_path / "projections.duckdb").is_file()
    again = project_cached(x, key, tmp_path, seed=1)
    assert again.cached
    np.testing.assert_allclose(first.coords, again.coords, rtol=1e-6)
    changed = x.copy()
    changed[0, 0] += 1
    assert not project_cached(changed, key, tmp_path, seed=1).cached


def test_sampling_is_seeded_and_sorted():
    rows = sample_rows(1000, 100, seed=7)
    assert len(rows) == 100 and len(set(rows)) == 100 and (np.diff(rows) > 0).all()
    np.testing.assert_array_equal(rows, sample_rows(1000, 100, seed=7))
    np.testing.assert_array_equal(sample_rows(5, None, 0), np.arange(5))


def test_place_near_is_the_similarity_weighted_mean_of_nearest_points():
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], dtype=np.float32)
    coords = np.array([[0.0, 0.0], [10.0, 0.0], [99.0, 99.0]], dtype=np.float32)
    q = np.array([[3.0, 1.0]])  # cosines 0.949 and 0.316 with the two nearest
    w = np.array([3, 1]) / np.sqrt(10) + 1e-6
    expected = (w[0] * coords[0] + w[1] * coords[1]) / w.sum()
    np.testing.assert_allclose(place_near(q, vectors, coords, k=2)[0], expected, rtol=1e-5)


def test_sessions_of_one_process_create_the_file_and_store_maps_at_once(tmp_path, concurrently):
    # Streamlit sessions are threads of one process sharing DuckDB's database instance: two
    # sessions creating the schema, or replacing the same map, at once must not collide
    from core.projection.store import ProjectionStore

    path = tmp_path / "projections.duckdb"
    coords = np.arange(4000, dtype=np.float32).reshape(2000, 2)
    n = 4

    def session(i: int) -> None:
        store = ProjectionStore(path)
        store.put(f"k{i}", coords + i, {"session": i})
        store.put("shared", coords, {"session": i})  # every session maps the same thing
        assert store.get("shared") is not None

    assert concurrently(n, session) == []
    store = ProjectionStore(path)
    for i in range(n):
        np.testing.assert_array_equal(store.get(f"k{i}"), coords + i)
    np.testing.assert_array_equal(store.get("shared"), coords)  # one copy, not one per session


def test_a_projection_file_without_a_schema_version_is_adopted(tmp_path):
    # files written before the store recorded a version: kept, and versioned on first open
    from core.projection.store import SCHEMA_VERSION, ProjectionStore

    path = tmp_path / "projections.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE projections (key VARCHAR PRIMARY KEY, info VARCHAR, "
                    "n INTEGER, created DOUBLE)")
        con.execute("CREATE TABLE coords (key VARCHAR, row INTEGER, x FLOAT, y FLOAT)")
        con.execute("INSERT INTO projections VALUES ('old', '{}', 2, 0)")
        con.execute("INSERT INTO coords VALUES ('old', 0, 1, 2), ('old', 1, 3, 4)")
    store = ProjectionStore(path)
    np.testing.assert_array_equal(store.get("old"), [[1, 2], [3, 4]])
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT value FROM meta").fetchall() == [(str(SCHEMA_VERSION),)]


def test_incompatible_projection_file_names_the_file(tmp_path):
    from core.errors import CacheError
    from core.projection.store import ProjectionStore

    path = tmp_path / "projections.duckdb"
    ProjectionStore(path)
    with duckdb.connect(str(path)) as con:
        con.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    with pytest.raises(CacheError, match=r"projections.duckdb: projection cache schema version "
                                         r"999, this code needs 1; delete the file"):
        ProjectionStore(path)


def test_nearest_cosine_is_exact_and_independent_of_the_block():
    from core.projection import nearest_cosine

    rng = np.random.default_rng(5)
    q, v = rng.normal(size=(23, 6)), rng.normal(size=(40, 6))
    rows, sims = nearest_cosine(q, v, k=4, block=7)
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    full = unit(q) @ unit(v).T
    np.testing.assert_array_equal(rows, np.argsort(-full, axis=1)[:, :4])
    np.testing.assert_allclose(sims, np.sort(full, axis=1)[:, ::-1][:, :4], atol=1e-6)
    np.testing.assert_array_equal(rows, nearest_cosine(q, v, k=4, block=1000)[0])


def test_exact_neighbours_handed_to_umap_keep_clusters_apart(monkeypatch):
    import core.projection as projection

    monkeypatch.setattr(projection, "EXACT_KNN_MIN", 10)  # the path of maps above 4,096 points
    x = _clusters()
    a = project(x, seed=3)
    np.testing.assert_allclose(a, project(x, seed=3))
    labels = np.repeat(np.arange(3), 20)
    assert _same_cluster_share(a, labels) > 0.95


def _same_cluster_share(coords: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    """Share of each point's ``k`` nearest points on the map that are of its own cluster."""
    d = ((coords[:, None, :] - coords[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    near = np.argsort(d, axis=1)[:, :k]
    return float((labels[near] == labels[:, None]).mean())


def test_a_landmark_map_lays_out_a_sample_and_places_the_rest_near_it(monkeypatch):
    import core.projection as projection

    rng = np.random.default_rng(1)
    centres = np.eye(16, dtype=np.float32)[:4] * 5
    labels = np.repeat(np.arange(4), 60)
    x = (centres[labels] + rng.normal(scale=0.3, size=(240, 16))).astype(np.float32)
    monkeypatch.setattr(projection, "REDUCED_DIMS", 8)  # 16-d vectors go through the PCA step
    a = project(x, seed=2, landmarks=80)
    assert a.shape == (240, 2) and np.isfinite(a).all()
    np.testing.assert_allclose(a, project(x, seed=2, landmarks=80))
    assert _same_cluster_share(a, labels) > 0.95
    # the other points sit exactly where place_near puts them among the landmarks
    chosen = sample_rows(240, 80, seed=2)
    rest = np.setdiff1d(np.arange(240), chosen)
    reduced = projection._reduce(x, chosen, 8, seed=2)
    np.testing.assert_allclose(
        a[rest], place_near(reduced[rest], reduced[chosen], a[chosen], k=projection.PLACE_K),
        rtol=1e-5, atol=1e-5)


def test_the_layout_is_part_of_the_cache_key(tmp_path, monkeypatch):
    import core.projection as projection

    assert projection.layout_params(100) == {}
    assert projection.layout_params(5000) == {"neighbours": "exact"}
    assert projection.layout_params(30_000)["landmarks"] == projection.LANDMARKS
    x = _clusters()
    key = {"dataset": "d", "encoder": "e", "what": "items"}
    assert not project_cached(x, key, tmp_path, seed=1).landmarks
    monkeypatch.setattr(projection, "LANDMARKS", 30)  # the same vectors as a landmark map
    third = project_cached(x, key, tmp_path, seed=1)
    assert not third.cached and third.landmarks == 30
    assert project_cached(x, key, tmp_path, seed=1).cached


def test_estimates_count_placed_points_at_a_fraction_of_umap_points():
    from core.projection import LANDMARKS, PLACE_COST, estimate_map, map_work

    assert map_work(500) == 500
    assert map_work(LANDMARKS + 1000) == LANDMARKS + PLACE_COST * 1000
    small, big = (estimate_map(n, first_in_process=False).seconds
                  for n in (LANDMARKS, 5 * LANDMARKS))
    assert small < big < 5 * small
