"""The runs database: keys (the one key function of the CLI and the app: dataset identity, split,
seed, options, row identity, encoder ids), a save/load round trip with labels, cut-off coverage,
replacement, key prefixes, the schema-version guard, concurrent sessions of one process, and the
per-run compute lock (threads, processes, a killed holder)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from store_helpers import FakeEncoder

import core.encoders as encoders
import core.store.runs as runs
from core.data import LoadOptions
from core.errors import CacheError, LabError
from core.recommenders.spec import TechniqueSpec
from core.store.runs import (
    RunIdentity,
    RunLock,
    RunStore,
    dataset_key,
    plan_runs,
    run_key,
    run_options,
    split_key,
)

REPO = Path(__file__).resolve().parents[2]


def _frames(technique: str, value: float):
    metrics = pd.DataFrame({"technique": technique, "encoder": "", "metric": ["ndcg", "map"],
                            "k": [10, 10], "value": [value, value / 2], "n_users": [2, 2]})
    per_user = pd.DataFrame({"technique": technique, "user_id": ["u1", "u2"],
                             "metric": "ndcg", "k": 10, "value": [value, 0.0]})
    recs = pd.DataFrame({"technique": technique, "user_id": ["u1", "u1", "u2"], "rank": [1, 2, 1],
                         "item_id": ["a", "b", "c"], "score": [0.9, 0.5, 0.1]})
    truth = pd.DataFrame({"user_id": ["u1", "u2"], "item_id": ["a", "x"]})
    return metrics, per_user, recs, truth


def _run(key: str, technique: str = "t") -> RunIdentity:
    return RunIdentity(key=key, label=technique, technique=technique, params={}, dataset="d",
                       dataset_name="demo", split="random", seed=1, options={"tune": True})


def _save(store: RunStore, key: str, technique: str, value: float, ks=(10,), split="s",
          truth: pd.DataFrame | None = None, **info) -> None:
    m, pu, r, t = _frames(technique, value)
    store.save(_run(key, technique), split_key_=split, ks=ks, metrics=m, per_user=pu, recs=r,
               truth=t if truth is None else truth, params={"factors": 64}, info=info,
               items=pd.DataFrame({"item_id": ["a", "b"], "train_users": [3, 1]}))


def test_keys_depend_on_every_setting_but_not_encoder_order():
    base = dict(dataset="d", split="random", seed=1,
                row={"technique": "text", "params": {"a": 1, "b": 2}},
                encoder_ids={"text": "text:minilm+fp32", "image": "cnn:x+fp32"},
                options={"tune": True})
    k = run_key(**base)
    assert k == run_key(**{**base, "encoder_ids": {"image": "cnn:x+fp32",
                                                   "text": "text:minilm+fp32"},
                           "row": {"technique": "text", "params": {"b": 2, "a": 1}}})
    for change in ({"seed": 2}, {"split": "user"}, {"row": {"technique": "image"}},
                   {"row": {"technique": "text", "params": {"a": 2, "b": 2}}},
                   {"encoder_ids": {"text": "text:minilm+bf16"}}, {"options": {"tune": False}},
                   {"dataset": "e"}):
        assert run_key(**{**base, **change}) != k, change
    assert run_key(**base, revision=1) == k  # techniques never revised keep their keys
    assert run_key(**base, revision=2) != k
    assert split_key("d", "random", 1, {"tune": True}) == split_key("d", "random", 1, {})
    assert split_key("d", "random", 1, {"min_rating": 4}) != split_key("d", "random", 1, {})
    assert split_key("d", "random", 1, {"min_rating": 4}) == split_key(
        "d", "random", 1, {"min_rating": 4.0})


def test_run_options_are_spelled_one_way_for_the_cli_and_the_app():
    app = {"tune": True, "photo_filter": "food"}  # the app keeps tune among its options
    cli = {"photo_filter": "food", "review_filter": None, "progress_bars": True}  # + tune=
    assert run_options(app) == run_options(cli, tune=True) == {"tune": True,
                                                               "photo_filter": "food"}
    assert run_options({"min_rating": 4}) == run_options({"min_rating": 4.0})
    assert run_options({"tune": True}, tune=False) == {"tune": False}


def test_dataset_key_is_spec_options_and_counts(tiny):
    cli = LoadOptions(categories=None, city=None, state=None, min_user_interactions=1,
                      min_item_interactions=1, max_users=None, seed=42, strict=False,
                      repeats="collapse")  # every field spelled out, as the CLI builds them
    key = dataset_key("demo", LoadOptions(seed=42), tiny)
    assert key == dataset_key("demo", cli, tiny) == dataset_key(" demo ", None, tiny)
    assert key != dataset_key("demo", LoadOptions(seed=42, min_user_interactions=2), tiny)
    assert key != dataset_key("yelp:x", None, tiny)
    fewer = type(tiny)(name=tiny.name, interactions=tiny.interactions.iloc[:-1],
                       items=tiny.items, photos=tiny.photos, user_ids=tiny.user_ids)
    assert key != dataset_key("demo", None, fewer)  # edited files behind one spec


def test_plan_keys_use_the_encoder_id_of_the_roles_a_row_uses(monkeypatch):
    first = FakeEncoder("fake:img")
    monkeypatch.setitem(encoders._cache, "fake:img", first)
    rows = [TechniqueSpec("als"), TechniqueSpec("image"), TechniqueSpec("hybrid"),
            TechniqueSpec("image", {"encoder": "fake:other"}, label="image-b")]
    chosen = {"image": "fake:img", "text": None, "clip": None}
    plan = plan_runs("d", "random", 1, rows, chosen, {"tune": True}, dataset_name="demo")
    assert list(plan) == ["als", "image", "hybrid", "image-b"]
    assert plan["als"].encoders == {} and plan["als"].encoder_ids == {}
    assert plan["image"].encoders == {"image": "fake:img"}
    assert plan["image"].encoder_ids == {"image": "fake:img"}  # the Encoder.id
    assert plan["hybrid"].encoders == {"image": "fake:img"}  # uses every role the run has
    # a row's own encoder param wins; one that cannot be built is named as such
    assert plan["image-b"].encoder_ids == {"image": "fake:other (unavailable)"}
    # the same spec with other weights behind it (a replaced checkpoint): another key, except
    # for the technique that uses no encoder
    other = FakeEncoder("fake:img")
    other.id = "fake:img/sha256=0123456789abcdef"
    monkeypatch.setitem(encoders._cache, "fake:img", other)
    again = plan_runs("d", "random", 1, rows, chosen, {"tune": True})
    assert again["als"].key == plan["als"].key
    assert again["image"].key != plan["image"].key and again["hybrid"].key != plan["hybrid"].key
    # the label is only a name; params and options are identity
    renamed = plan_runs("d", "random", 1, [TechniqueSpec("als", label="ALS!")], {}, {})
    assert renamed["ALS!"].key == plan["als"].key
    assert plan_runs("d", "random", 1, [TechniqueSpec("als", {"factors": 8})], {},
                     {})["als:factors=8"].key != plan["als"].key
    assert plan_runs("d", "random", 1, ["als"], {}, {"tune": False})["als"].key != \
        plan["als"].key
    # a technique whose code changed its results (Recommender.revision) gets a new key
    from core.recommenders import get_technique

    monkeypatch.setattr(get_technique("als"), "revision", 2)
    assert plan_runs("d", "random", 1, ["als"], {}, {"tune": True})["als"].key != plan["als"].key


def test_save_load_round_trip_labels_cut_offs_and_replace(tmp_path):
    store = RunStore.in_cache(tmp_path)
    assert (tmp_path / "runs.duckdb").is_file()
    sk = split_key("d", "random", 1)
    _save(store, "key-als", "als", 0.5, ks=(5, 10), split=sk, note="x")
    _save(store, "key-popular", "popular", 0.25, split=sk)
    assert store.existing(["key-als", "key-popular", "nope"]) == {"key-als", "key-popular"}
    assert store.existing(["key-als", "key-popular"], ks=[5]) == {"key-als"}  # covers k=5
    got = store.load(["key-als"], split=sk)
    assert got.metrics["value"].tolist() == [0.25, 0.5]  # ordered by technique, metric, k
    assert got.per_user[["user_id", "value"]].values.tolist() == [["u1", 0.5], ["u2", 0.0]]
    assert got.recs["item_id"].tolist() == ["a", "b", "c"]
    assert got.truth.values.tolist() == [["u1", "a"], ["u2", "x"]]  # stored once per split
    assert got.items.values.tolist() == [["a", 3], ["b", 1]]
    # rows come back under the caller's label (the label is not part of the run's identity)
    named = store.load({"ALS (64)": "key-als"})
    assert set(named.metrics["technique"]) == set(named.recs["technique"]) == {"ALS (64)"}
    assert named.truth.values.tolist() == [["u1", "a"], ["u2", "x"]]  # the runs' split
    assert store.query_per_user({"A": "key-als", "P": "key-popular"}, technique="P",
                                user_id="u1")["value"].tolist() == [0.25]
    info = store.runs_info(["key-als"])["key-als"]
    assert info["ks"] == [5, 10] and info["params"] == {"factors": 64}
    assert info["info"] == {"note": "x"} and info["dataset_name"] == "demo"
    # saving again under the same key replaces, never duplicates
    _save(store, "key-als", "als", 0.75, split=sk, truth=_frames("als", 0)[3].head(1))
    got = RunStore.in_cache(tmp_path).load(["key-als", "key-popular"], split=sk)
    assert sorted(got.metrics["value"].tolist()) == [0.125, 0.25, 0.375, 0.75]
    assert len(got.truth) == 2 and len(got.recs) == 6 and len(got.items) == 2
    assert list(store.list_runs()["label"]) == ["popular", "als"]
    assert store.clear() == 2 and not store.existing(["key-als"])


def test_a_key_prefix_names_one_run(tmp_path):
    store = RunStore.in_cache(tmp_path)
    for key in ("abc123", "abd456"):
        _save(store, key, "t", 0.5)
    assert store.resolve("abc") == "abc123"
    with pytest.raises(LabError, match="2 stored runs have keys starting with 'ab'"):
        store.resolve("ab")
    with pytest.raises(LabError, match="no stored run has a key starting with 'zz'"):
        store.resolve("zz")


def test_incompatible_schema_names_the_file_and_says_to_delete_it(tmp_path):
    RunStore.in_cache(tmp_path)
    with duckdb.connect(str(tmp_path / "runs.duckdb")) as con:
        con.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")  # a file of version 1
    with pytest.raises(CacheError, match="runs.duckdb.*schema version 1, this code needs 2; "
                                         "delete the file"):
        RunStore.in_cache(tmp_path)


def test_sessions_of_one_process_create_the_file_and_store_a_split_once(tmp_path, concurrently):
    # Streamlit sessions are threads of one process: they share DuckDB's database instance, where
    # two unserialised writers raced (a catalog conflict creating the schema, the split's truth
    # inserted once per writer)
    users = [f"u{i}" for i in range(2000)]
    truth = pd.DataFrame({"user_id": users, "item_id": "i"})
    metrics, per_user, recs, _ = _frames("t", 0.5)
    n = 4

    def session(i: int) -> None:
        store = RunStore.in_cache(tmp_path)
        store.save(_run(f"k{i}", f"t{i}"), split_key_="s", ks=[10], metrics=metrics,
                   per_user=per_user, recs=recs, truth=truth)

    assert concurrently(n, session) == []
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


def test_dataset_key_follows_the_files_own_split_labels(tiny):
    from core.data.dataset import SPLIT_LABEL

    def relabelled(labels):
        inter = tiny.interactions.assign(**{SPLIT_LABEL: labels})
        return type(tiny)(name=tiny.name, interactions=inter, items=tiny.items,
                          photos=tiny.photos, user_ids=tiny.user_ids)

    n = len(tiny.interactions)
    first = relabelled(np.zeros(n, dtype=np.int8))
    swapped = relabelled(np.r_[np.zeros(n - 1, dtype=np.int8), np.int8(2)])  # same counts
    assert dataset_key("mmrec:x", None, first) == dataset_key("mmrec:x", None, relabelled(
        np.zeros(n, dtype=np.int8)))
    assert dataset_key("mmrec:x", None, first) != dataset_key("mmrec:x", None, swapped)
    assert dataset_key("demo", None, tiny) == dataset_key("demo", None, tiny)  # no labels
