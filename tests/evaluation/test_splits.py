"""Splits: sizes, determinism, disjointness and each kind's defining property."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import LabError
from core.evaluation.splits import SPLIT_KINDS, make_split

#: the kinds that cut any dataset (``file`` reads the dataset's own labels: tested below)
GENERATED_KINDS = tuple(k for k in SPLIT_KINDS if k != "file")


def _index_sets(s):
    return set(s.train.index), set(s.valid.index), set(s.test.index)


@pytest.mark.parametrize("kind", GENERATED_KINDS)
def test_parts_are_disjoint_and_cover_everything(taste, kind):
    s = make_split(taste, kind, seed=1)
    tr, va, te = _index_sets(s)
    assert not (tr & va) and not (tr & te) and not (va & te)
    assert tr | va | te == set(taste.interactions.index)
    assert s.describe()["kind"] == kind
    # sub-frames keep the original index and rows
    assert s.test.equals(taste.interactions.loc[s.test.index])


@pytest.mark.parametrize("kind", GENERATED_KINDS)
def test_same_seed_same_split_other_seed_other_split(taste, kind):
    a, b = make_split(taste, kind, seed=5), make_split(taste, kind, seed=5)
    assert _index_sets(a) == _index_sets(b)
    c = make_split(taste, kind, seed=6)
    if kind == "temporal":  # a time cut does not depend on the seed
        assert _index_sets(a) == _index_sets(c)
    else:
        assert _index_sets(a) != _index_sets(c)


def test_random_split_sizes(taste):
    n = len(taste.interactions)  # 3600
    s = make_split(taste, "random", seed=0)
    assert s.sizes() == {"train": round(0.8 * n), "valid": round(0.9 * n) - round(0.8 * n),
                         "test": n - round(0.9 * n)}


def test_user_split_is_80_10_10_within_each_user(taste):
    s = make_split(taste, "user", seed=0)
    # 12 interactions per user: positions (r+.5)/12 < .8 -> r <= 9 train (10), r = 10 valid, 11 test
    for part, expected in ((s.train, 10), (s.valid, 1), (s.test, 1)):
        counts = np.bincount(part["user"], minlength=taste.n_users)
        assert (counts == expected).all()


def test_temporal_split_orders_parts_in_time(taste):
    s = make_split(taste, "temporal", seed=0)
    assert s.train["timestamp"].max() < s.valid["timestamp"].min()
    assert s.valid["timestamp"].max() < s.test["timestamp"].min()
    assert abs(len(s.train) / len(taste.interactions) - 0.8) < 0.01


def test_cold_item_split_holds_out_whole_items(taste):
    s = make_split(taste, "cold-item", seed=0)
    train_items = set(s.train["item"])
    test_items, valid_items = set(s.test["item"]), set(s.valid["item"])
    assert not test_items & train_items and not valid_items & train_items
    assert not test_items & valid_items
    assert len(test_items) == 6 and len(valid_items) == 6  # 10% of 60 items each
    # all interactions of a held-out item are in its part
    inter = taste.interactions
    assert len(s.test) == inter["item"].isin(test_items).sum()


def test_bad_kind_and_ratios(taste):
    with pytest.raises(LabError, match="unknown split 'nope'"):
        make_split(taste, "nope", seed=0)
    with pytest.raises(LabError, match="sum"):
        make_split(taste, "random", seed=0, ratios=(0.5, 0.1, 0.1))


def _labelled(taste, labels):
    """``taste`` with a ``split_label`` column (what an ``mmrec:`` dataset carries)."""
    from dataclasses import replace

    from core.data.dataset import SPLIT_LABEL

    return replace(taste, interactions=taste.interactions.assign(
        **{SPLIT_LABEL: np.asarray(labels, dtype=np.int8)}))


def test_file_split_uses_the_labels_and_leaves_out_cold_start_users(taste):
    inter = taste.interactions
    labels = np.arange(len(inter)) % 3  # 0 train, 1 valid, 2 test
    cold = inter["user"].to_numpy() == 0
    labels[cold] = np.where(np.arange(cold.sum()) % 2 == 0, 1, 2)  # user 0: no train row
    ds = _labelled(taste, labels)
    s = make_split(ds, "file", seed=1)
    assert set(s.train.index) == set(inter.index[labels == 0])
    assert set(s.valid.index) == set(inter.index[(labels == 1) & ~cold])
    assert set(s.test.index) == set(inter.index[(labels == 2) & ~cold])
    assert s.describe()["kind"] == "file"
    assert s.info == {"cold_start_users": 1, "cold_start_interactions": int(cold.sum())}
    assert _index_sets(make_split(ds, "file", seed=9)) == _index_sets(s)  # no seed involved
    assert abs(sum(s.ratios) - 1.0) < 1e-3


def test_file_split_needs_labels(taste):
    with pytest.raises(LabError, match="split file: dataset taste carries no split labels"):
        make_split(taste, "file", seed=0)
