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
