"""Small generated datasets for the evaluation tests (no files from outside the test)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.data.dataset import Dataset, build_dataset


def make_taste_dataset(n_users: int = 300, n_items: int = 60, per_user: int = 12,
                       n_groups: int = 4, seed: int = 0) -> Dataset:
    """Users and items in taste groups with a popularity skew: users mostly pick items of their
    group, more often popular ones. Raw ids ``u0000``.., ``i000``.."""
    rng = np.random.default_rng(seed)
    group_u = rng.integers(0, n_groups, n_users)
    group_i = np.arange(n_items) % n_groups
    pop = 1.0 / (1.0 + np.arange(n_items)) ** 0.7
    rows = []
    for u in range(n_users):
        w = pop * np.where(group_i == group_u[u], 10.0, 1.0)
        chosen = rng.choice(n_items, size=per_user, replace=False, p=w / w.sum())
        for it in chosen:
            rows.append((f"u{u:04d}", f"i{it:03d}", float(rng.integers(1, 6)),
                         1_500_000_000 + int(rng.integers(0, 10**8))))
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    items = pd.DataFrame({"item_id": [f"i{i:03d}" for i in range(n_items)],
                          "name": [f"Item {i}" for i in range(n_items)],
                          "categories": [f"group{g}" for g in group_i]})
    return build_dataset("taste", inter, items, None)


@pytest.fixture(scope="session")
def taste() -> Dataset:
    return make_taste_dataset()
