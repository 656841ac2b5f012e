"""The store base every DuckDB store is built on: schema creation and version in one place, reads
before the first write, files of something else, and the lock-timeout error of every store."""

from __future__ import annotations

import duckdb
import pytest

from core.errors import CacheError
from core.projection.store import ProjectionStore
from core.store import EmbeddingStore
from core.store.base import LOCK_TIMEOUT_ENV, DuckStore
from core.store.runs import RunStore


class Notes(DuckStore):
    """A minimal store: a file that appears with its first write."""

    what = "notes file"
    schema = "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, text VARCHAR);"
    schema_version = 3
    remedy = "delete it"
    create_on_open = False


def test_a_store_declares_its_schema_and_the_base_creates_and_checks_it(tmp_path):
    path = tmp_path / "sub" / "notes.duckdb"
    store = Notes(path)
    assert Notes.own_tables() == {"notes", "meta"}
    with store.connect() as con:
        assert con is None  # nothing written yet: no file either
    assert not path.exists()
    with store.connect(write=True) as con:
        con.execute("INSERT INTO notes VALUES (1, 'hello')")
    with store.connect() as con:
        assert con.execute("SELECT text FROM notes").fetchall() == [("hello",)]
        assert con.execute("SELECT * FROM meta").fetchall() == [("schema_version", "3")]
        with pytest.raises(duckdb.Error):  # reads are read-only
            con.execute("INSERT INTO notes VALUES (2, 'no')")
    with duckdb.connect(str(path)) as con:
        con.execute("UPDATE meta SET value = '4'")
    with pytest.raises(CacheError, match=r"notes.duckdb: notes file schema version 4, this code "
                                         r"needs 3; delete it"):
        with store.connect():
            pass


@pytest.mark.parametrize("make", [
    lambda p: EmbeddingStore(p.parent).stats(),
    lambda p: RunStore(p),
    lambda p: ProjectionStore(p),
], ids=["cache", "runs", "projections"])
def test_a_database_of_something_else_is_refused_and_left_alone(tmp_path, make):
    path = tmp_path / "embeddings.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(CacheError, match=r"embeddings.duckdb: not a file of the .*invoices"):
        make(path)
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT table_name FROM information_schema.tables").fetchall() == [
            ("invoices",)]


def test_every_store_names_the_file_and_the_variable_when_another_process_holds_it(
        tmp_path, monkeypatch, duckdb_held):
    monkeypatch.setenv(LOCK_TIMEOUT_ENV, "0.3")
    stores = [RunStore(tmp_path / "runs.duckdb"), ProjectionStore(tmp_path / "maps.duckdb")]
    assert [s.lock_timeout for s in stores] == [0.3, 0.3]
    for store in stores:
        # the holder keeps the file 20 s: a store that ignored its timeout would open it after
        # that and raise nothing
        with duckdb_held(store.path):
            with pytest.raises(CacheError, match=rf"{store.path.name}: another process is writing"
                                                 rf" the {store.what} .*\${LOCK_TIMEOUT_ENV}"):
                with store.connect():
                    pass
