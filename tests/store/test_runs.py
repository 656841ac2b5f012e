"""The runs database: keys, a save/load round trip, replacement, the schema-version guard,
concurrent sessions of one process, and the per-run compute lock (threads, processes, a killed
holder)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import pandas as pd
import pytest

import core.store.runs as runs
from core.errors import CacheError
from core.store.runs import RunLock, RunStore, run_key, split_key

REPO = Path(__file__).resolve().parents[2]


def _frames(technique: str, value: float):
    metrics = pd.DataFrame({"technique": technique, "encoder": "", "metric": ["ndcg", "map"],
                            "k": [10, 10], "value": [value, value / 2], "n_users": [2, 2]})
    per_user = pd.DataFrame({"technique": technique, "user": ["u1", "u2"], "user_id": ["u1", "u2"],
                             "metric": "ndcg", "k": 10, "value": [value, 0.0]})
    recs = pd.DataFrame({"technique": technique, "user_id": ["u1", "u1", "u2"], "rank": [1, 2, 1],
                         "item_id": ["a", "b", "c"], "score": [0.9, 0.5, 0.1]})
    truth = pd.DataFrame({"user_id": ["u1", "u2"], "item_id": ["a", "x"]})
    return metrics, per_user, recs, truth


def test_keys_depend_on_every_setting_but_not_encoder_order():
    base = dict(dataset="d", split="random", seed=1, technique="text",
                encoders={"text": "text:minilm", "image": "cnn:x"}, options={"tune": True},
                ks=[10, 20])
    k = run_key(**base)
    assert k == run_key(**{**base, "encoders": {"image": "cnn:x", "text": "text:minilm"},
                           "ks": [20, 10]})
    for change in ({"seed": 2}, {"split": "user"}, {"technique": "image"},
                   {"encoders": {"text": "text:other"}}, {"options": {"tune": False}},
                   {"ks": [10]}, {"dataset": "e"}):
        assert run_key(**{**base, **change}) != k, change
    assert split_key("d", "random", 1, {"tune": True}) == split_key("d", "random", 1, {})
    assert split_key("d", "random", 1, {"min_rating": 4}) != split_key("d", "random", 1, {})


def test_save_load_round_trip_and_replace(tmp_path):
    store = RunStore.in_cache(tmp_path)
    assert (tmp_path / "runs.duckdb").is_file()
    sk = split_key("d", "random", 1)
    for tech, value in (("als", 0.5), ("popular", 0.25)):
        m, pu, r, t = _frames(tech, value)
        store.save(f"key-{tech}", split_key_=sk, info={"technique": tech, "seed": 1,
                                                        "params": {"factors": 64}},
                   metrics=m, per_user=pu, recs=r, truth=t)
    assert store.existing(["key-als", "key-popular", "nope"]) == {"key-als", "key-popular"}
    got = store.load(["key-als"], split=sk)
    assert got.metrics["value"].tolist() == [0.25, 0.5]  # ordered by technique, metric, k
    assert got.per_user[["user_id", "value"]].values.tolist() == [["u1", 0.5], ["u2", 0.0]]
    assert got.recs["item_id"].tolist() == ["a", "b", "c"]
    assert got.truth.values.tolist() == [["u1", "a"], ["u2", "x"]]  # stored once per split
    # saving again under the same key replaces, never duplicates
    m, pu, r, t = _frames("als", 0.75)
    store.save("key-als", split_key_=sk, info={"technique": "als"}, metrics=m, per_user=pu,
               recs=r, truth=t)
    got = RunStore.in_cache(tmp_path).load(["key-als", "key-popular"], split=sk)
    assert sorted(got.metrics["value"].tolist()) == [0.125, 0.25, 0.375, 0.75]
    assert len(got.truth) == 2 and len(got.recs) == 6
    assert list(store.list_runs()["technique"]) == ["popular", "als"]
    assert store.clear() == 2 and not store.existing(["key-als"])


def test_incompatible_schema_names_the_file(tmp_path):
    RunStore.in_cache(tmp_path)
    with duckdb.connect(str(tmp_path / "runs.duckdb")) as con:
        con.execute("UPDATE meta SET value = '999' WHERE key = 'schema'")
    with pytest.raises(CacheError, match="runs.duckdb.*schema version 999"):
        RunStore.in_cache(tmp_path)


def test_sessions_of_one_process_create_the_file_and_store_a_split_once(tmp_path):
    # Streamlit sessions are threads of one process: they share DuckDB's database instance, where
    # two unserialised writers raced (a catalog conflict creating the schema, the split's truth
    # inserted once per writer)
    users = [f"u{i}" for i in range(2000)]
    truth = pd.DataFrame({"user_id": users, "item_id": "i"})
    metrics, per_user, recs, _ = _frames("t", 0.5)
    n = 4
    start = threading.Barrier(n)
    errors: list[BaseException] = []

    def session(i: int) -> None:
        start.wait()
        try:
            store = RunStore.in_cache(tmp_path)
            store.save(f"k{i}", split_key_="s", info={"technique": f"t{i}"}, metrics=metrics,
                       per_user=per_user, recs=recs, truth=truth)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=session, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    store = RunStore.in_cache(tmp_path)
    assert store.existing([f"k{i}" for i in range(n)]) == {f"k{i}" for i in range(n)}
    got = store.load_metrics(["k0"], split="s").truth
    assert len(got) == len(users) and sorted(got["user_id"]) == sorted(users)


def test_compute_lock_excludes_other_threads_until_released(tmp_path):
    store = RunStore.in_cache(tmp_path)
    first, second = store.compute_lock("k"), store.compute_lock("k")
    assert first.path == tmp_path / "runs.locks" / "k.lock"
    assert first.acquire(timeout=0) and first.held
    assert not second.acquire(timeout=0) and not second.held
    assert store.compute_lock("other").acquire(timeout=0)  # one lock per run key
    waits: list[float] = []
    assert not second.acquire(timeout=0.2, on_wait=waits.append)
    assert waits  # told it is waiting
    got = threading.Event()

    def waiter() -> None:
        with second:
            got.set()

    t = threading.Thread(target=waiter)
    t.start()
    assert not got.wait(0.2)  # still held by `first`
    first.release()
    t.join(timeout=30)
    assert got.is_set() and not second.held
    with pytest.raises(RuntimeError, match="not held"):
        first.release()


HOLDER = ("import sys, time; sys.path.insert(0, sys.argv[1]); from core.store.runs import RunLock;"
          " RunLock(sys.argv[2]).acquire(); print('locked', flush=True); time.sleep(120)")


def test_compute_lock_holds_across_processes_and_dies_with_its_holder(tmp_path):
    path = RunStore.in_cache(tmp_path).compute_lock("k").path
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(REPO), str(path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert not RunLock(path).acquire(timeout=0.3)
        os.kill(holder.pid, signal.SIGKILL)  # no chance to release or clean up
        holder.wait()
    finally:
        holder.kill()
        holder.wait()
    assert path.exists()  # the lock file stays behind ...
    lock = RunLock(path)
    assert lock.acquire(timeout=0)  # ... and does not block: the kernel dropped the flock
    lock.release()


def test_without_fcntl_the_lock_still_holds_within_the_process(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "fcntl", None)
    a, b = RunLock(tmp_path / "k.lock"), RunLock(tmp_path / "k.lock")
    assert a.acquire(timeout=0) and not b.acquire(timeout=0)
    a.release()
    assert b.acquire(timeout=0)
    b.release()
    assert not (tmp_path / "k.lock").exists()  # no file needed
