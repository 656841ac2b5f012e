"""The runs database: keys, a save/load round trip, replacement, and the schema-version guard."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from core.errors import CacheError
from core.store.runs import RunStore, run_key, split_key


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
