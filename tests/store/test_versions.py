"""What a process keeps of a store between reads (the app's reruns): a file's version changes
with every write, this process's or another's; reads remembered under a version are served only
while it holds (a run stored or deleted since is seen on the next read); a schema checked once is
checked again after the file changed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import duckdb
import pandas as pd
import pytest

import core.store.base as base
from core.errors import CacheError
from core.store.runs import RunIdentity, RunStore

#: a short settling time, so the tests need not wait a second after each write
SETTLE = 0.05


@pytest.fixture(autouse=True)
def quick_settle(monkeypatch):
    monkeypatch.setattr(base, "SETTLED_S", SETTLE)


def _settle() -> None:
    time.sleep(2 * SETTLE)


def _other_process(path, sql: str) -> None:
    """Run ``sql`` on the file from another process (as the CLI would write it)."""
    code = textwrap.dedent(f"""
        import duckdb
        with duckdb.connect({str(path)!r}) as con:
            con.execute({sql!r})
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def _save(store: RunStore, key: str, label: str, value: float) -> None:
    run = RunIdentity(key=key, label=label, technique=label, params={}, dataset="d",
                      dataset_name="demo", split="random", seed=1, options={"tune": True})
    store.save(run, split_key_="s", ks=(10,),
               metrics=pd.DataFrame({"encoder": "", "metric": ["ndcg"], "k": [10],
                                     "value": [value], "n_users": [1]}),
               per_user=pd.DataFrame({"user_id": ["u1"], "metric": "ndcg", "k": 10,
                                      "value": [value]}),
               recs=pd.DataFrame({"user_id": ["u1"], "rank": [1], "item_id": ["a"],
                                  "score": [1.0]}),
               truth=pd.DataFrame({"user_id": ["u1", "u2"], "item_id": ["a", "b"]}))


def test_the_version_changes_with_every_write_and_waits_for_the_file_to_settle(tmp_path):
    store = RunStore.in_cache(tmp_path)
    assert store.version() is None  # just created: not settled yet
    _settle()
    first = store.version()
    assert first is not None and store.version() == first
    with store.connect() as con:  # reads change nothing
        con.execute("SELECT count(*) FROM runs").fetchall()
    assert store.version() == first
    _save(store, "k1", "als", 0.5)
    assert store.version() is None
    _settle()
    second = store.version()
    assert second not in (None, first)
    _other_process(store.path, "DELETE FROM runs")
    _settle()
    assert store.version() not in (None, first, second)


def test_a_remembered_read_is_served_until_the_file_changes(tmp_path):
    store = RunStore.in_cache(tmp_path)
    _save(store, "k1", "als", 0.5)
    _settle()
    reads = []

    def count_runs() -> int:
        reads.append(1)
        with store.connect() as con:
            return con.execute("SELECT count(*) FROM runs").fetchall()[0][0]

    assert store.remember("n", count_runs) == 1
    assert store.remember("n", count_runs) == 1 and len(reads) == 1  # kept
    _other_process(store.path, "DELETE FROM runs")
    _settle()
    assert store.remember("n", count_runs) == 0 and len(reads) == 2  # the file changed: read


def test_a_run_stored_or_deleted_later_is_seen_by_the_next_read(tmp_path):
    store = RunStore.in_cache(tmp_path)
    _save(store, "k1", "als", 0.5)
    _settle()
    assert store.existing(["k1", "k2"]) == {"k1"}
    loaded = store.load_metrics({"als": "k1", "popular": "k2"})
    assert loaded.metrics["technique"].tolist() == ["als"]
    again = RunStore.in_cache(tmp_path).load_metrics({"als": "k1", "popular": "k2"})
    assert again.metrics is loaded.metrics and again.truth is loaded.truth  # one read, shared
    # stored by this process, read at once (the file has not settled) and once settled
    _save(store, "k2", "popular", 0.25)
    assert store.existing(["k1", "k2"]) == {"k1", "k2"}
    _settle()
    assert store.existing(["k1", "k2"]) == {"k1", "k2"}
    assert store.load_metrics({"als": "k1", "popular": "k2"}).metrics["technique"].tolist() == [
        "als", "popular"]
    # deleted by another process (the CLI's `runs clear`): gone on the next read
    _other_process(store.path, "DELETE FROM runs WHERE run_key = 'k1'; "
                               "DELETE FROM metrics WHERE run_key = 'k1'")
    _settle()
    assert store.existing(["k1", "k2"]) == {"k2"}
    assert store.load_metrics({"als": "k1", "popular": "k2"}).metrics["technique"].tolist() == [
        "popular"]
    _other_process(store.path, "DELETE FROM truth")
    _settle()
    assert store.truth("s").empty


def test_a_schema_checked_once_is_checked_again_after_the_file_changed(tmp_path):
    store = RunStore.in_cache(tmp_path)
    _settle()
    for _ in range(2):  # the second read skips the check: nothing changed
        assert RunStore.in_cache(tmp_path).existing(["k1"]) == set()
    with duckdb.connect(str(store.path)) as con:
        con.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    _settle()
    with pytest.raises(CacheError, match="schema version 1, this code needs 2"):
        RunStore.in_cache(tmp_path)
    with pytest.raises(CacheError, match="schema version 1, this code needs 2"):
        store.existing(["k1"])
