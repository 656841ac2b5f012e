"""The protocol audit recorded with every run: overlap of held-out pairs with train/validation,
unreachable relevant pairs, evaluated and cold users — counted exactly on a hand-made split."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from core.data.dataset import INTERACTION_COLUMNS, PHOTO_COLUMNS, Dataset
from core.evaluation.cli import format_table
from core.evaluation.experiment import run_experiment, save_run
from core.evaluation.splits import Split, make_split

# (user, item, rating, part): u0..u3, i0..i4; rows in timestamp order. Repeated pairs: u0-i0
# (train + test), u1-i3 (train + test), u2-i4 (valid + test), u1-i4 (twice in test).
ROWS = [
    (0, 0, 5, "train"), (0, 1, 5, "train"), (1, 1, 5, "train"), (1, 3, 5, "train"),
    (2, 2, 5, "train"),
    (0, 2, 5, "valid"), (2, 4, 5, "valid"),
    (0, 0, 1, "test"),  # in u0's train; rated 1
    (1, 3, 5, "test"),  # in u1's train
    (1, 4, 5, "test"), (1, 4, 4, "test"),  # the same pair twice in test: one pair
    (2, 4, 5, "test"),  # in u2's validation
    (0, 3, 5, "test"),  # clean
    (3, 1, 5, "test"),  # u3 has no train history: a cold user
]


def _dataset(rows) -> tuple[Dataset, Split]:
    inter = pd.DataFrame({
        "user": np.array([r[0] for r in rows], np.int32),
        "item": np.array([r[1] for r in rows], np.int32),
        "rating": np.array([r[2] for r in rows], np.float32),
        "timestamp": np.arange(len(rows), dtype=np.int64),
        "review_id": [f"r{i}" for i in range(len(rows))],
    })[list(INTERACTION_COLUMNS)]
    items = pd.DataFrame({"item_id": [f"i{j}" for j in range(5)],
                          "name": [f"Item {j}" for j in range(5)], "categories": "",
                          "description": "", "attributes": [{} for _ in range(5)]})
    photos = pd.DataFrame({c: pd.Series(dtype=object) for c in PHOTO_COLUMNS})
    ds = Dataset(name="repeats", interactions=inter, items=items, photos=photos,
                 user_ids=np.array([f"u{u}" for u in range(4)], dtype=object))
    part = np.array([r[3] for r in rows])
    split = Split(train=inter[part == "train"], valid=inter[part == "valid"],
                  test=inter[part == "test"], kind="fixed", seed=0)
    return ds, split


def test_audit_counts_overlap_unreachable_and_cold_users_exactly(tmp_path):
    ds, split = _dataset(ROWS)
    result = run_experiment(ds, split, ["popular", "random"], ks=[3])
    assert result.meta["audit"] == {
        "test_pairs": 6,  # u1-i4 twice counts once
        "test_pairs_in_train": 2,  # u0-i0, u1-i3
        "test_pairs_in_valid": 1,  # u2-i4
        "relevant_pairs": 6,
        "unreachable_relevant": 3,  # masked as seen: u0-i0, u1-i3 (train), u2-i4 (valid)
        "evaluated_users": 4,
        "cold_users": {"popular": 1, "random": 1},  # u3
    }
    # what "unreachable" means: the masked pairs never appear in any technique's lists
    recs = set(zip(result.recs["user_id"], result.recs["item_id"]))
    assert not recs & {("u0", "i0"), ("u1", "i3"), ("u2", "i4")}
    save_run(result, tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "run.json").read_text())
    assert saved["audit"] == result.meta["audit"]
    note = format_table(result).splitlines()
    loud = [line for line in note if line.startswith("warning: protocol audit")]
    assert len(loud) == 1 and "2 held-out test pairs also in the user's train" in loud[0]
    assert "3 of 6 relevant pairs unreachable" in loud[0]


def test_relevance_threshold_changes_unreachable_not_overlap():
    ds, split = _dataset(ROWS)
    audit = run_experiment(ds, split, ["popular"], ks=[3], options={"min_rating": 4})
    audit = audit.meta["audit"]
    # u0-i0 in test is rated 1: not relevant, so no longer unreachable, still an overlap
    assert audit["test_pairs_in_train"] == 2 and audit["test_pairs_in_valid"] == 1
    assert audit["relevant_pairs"] == 5 and audit["unreachable_relevant"] == 2


def test_clean_split_reports_zero():
    clean = [r for r in ROWS if r[3] != "test" or (r[0], r[1]) in {(1, 4), (0, 3), (3, 1)}]
    ds, split = _dataset(clean)
    audit = run_experiment(ds, split, ["popular"], ks=[3]).meta["audit"]
    assert audit["test_pairs_in_train"] == 0 and audit["test_pairs_in_valid"] == 0
    assert audit["unreachable_relevant"] == 0 and audit["evaluated_users"] == 3


@pytest.mark.parametrize("kind", ["random", "user", "temporal"])
def test_dataset_without_repeats_has_a_clean_audit_and_a_quiet_note(taste, kind):
    result = run_experiment(taste, make_split(taste, kind, 3), ["popular"], ks=[5])
    audit = result.meta["audit"]
    assert audit["test_pairs_in_train"] == audit["test_pairs_in_valid"] == 0
    assert audit["unreachable_relevant"] == 0
    assert audit["evaluated_users"] == result.meta["n_users"]
    lines = format_table(result).splitlines()
    assert any(line.startswith("protocol audit: 0 held-out test pairs") for line in lines)
    assert not any(line.startswith("warning") for line in lines)
