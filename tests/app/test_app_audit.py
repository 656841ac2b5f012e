"""The app stores each run's protocol audit with its details and shows the audit line while it
computes."""

from __future__ import annotations

import json

import pytest

from core import lab as api
from core.evaluation.evaluator import relevant_matrix
from core.evaluation.experiment import protocol_audit
from core.store.runs import RunStore


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> api.LabData:
    """A small demo-like dataset (the demo generator's Yelp layout: 20 restaurants, 60 users)."""
    from core.data.demo import generate_demo

    folder = generate_demo(tmp_path_factory.mktemp("lab") / "yelp", n_businesses=20, n_users=60,
                           n_photos=10)
    return api.load(f"yelp:{folder}")


def test_stored_run_details_carry_the_split_audit(lab, tmp_path):
    events: list = []
    cmp = api.run_comparison(lab, tmp_path, "random", 5, ["popular", "itemknn"], {},
                             {"tune": False}, progress=events.append)
    assert cmp.computed == ["popular", "itemknn"]
    ds = lab.ds
    split = api.split_of(lab, "random", 5)
    expected = protocol_audit(ds.csr(split.train), ds.csr(split.valid), ds.csr(split.test),
                              relevant_matrix(split.test, ds.n_users, ds.n_items))
    train_users = set(split.train["user"])
    cold = sum(u not in train_users for u in set(split.test["user"]))
    runs = RunStore.in_cache(tmp_path).load_metrics(list(cmp.keys.values())).runs
    for row in runs.itertuples():
        audit = json.loads(row.info)["audit"]  # the run's details, beside its params
        assert audit == {**expected, "cold_users": cold}, row.technique
    audits = [e for e in events if e.phase == "audit"]
    assert len(audits) == 1 and audits[0].message.startswith("protocol audit:")
    assert audits[0].warning == any(expected[k] for k in (
        "test_pairs_in_train", "test_pairs_in_valid", "unreachable_relevant"))
