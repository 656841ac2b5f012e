"""Filters shared by loaders: k-core and reproducible user sampling on raw-id frames."""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.data.dataset import LoadReport


def k_core(inter: pd.DataFrame, min_user: int, min_item: int, report: LoadReport,
           distinct_pairs: bool = True) -> pd.DataFrame:
    """Drop users/items with fewer than ``min_user``/``min_item`` interactions until stable.

    ``inter`` has raw-id columns ``user_id`` and ``item_id``; the dropped row count is reported
    as ``k_core_dropped_interactions``. With ``distinct_pairs`` (the default, for
    ``repeats="collapse"``) a user's or item's interactions are its distinct partners, so the
    k-core still holds once ``build_dataset`` collapses repeated pairs; otherwise rows count.
    """
    if min_user <= 1 and min_item <= 1:
        return inter
    before = len(inter)
    while True:
        n = len(inter)
        if min_item > 1:
            inter = inter[_counts(inter, "item_id", distinct_pairs) >= min_item]
        if min_user > 1:
            inter = inter[_counts(inter, "user_id", distinct_pairs) >= min_user]
        if len(inter) == n:
            break
    report.add("k_core_dropped_interactions", before - len(inter))
    return inter


def _counts(inter: pd.DataFrame, col: str, distinct_pairs: bool) -> pd.Series:
    """Per row, how many rows (or distinct user-item pairs) its ``col`` value has."""
    pairs = inter[["user_id", "item_id"]]
    if distinct_pairs:
        pairs = pairs.drop_duplicates()
    return inter[col].map(pairs[col].value_counts())


def sample_users(inter: pd.DataFrame, max_users: int | None, seed: int, report: LoadReport):
    """Keep at most ``max_users`` users chosen with a seeded RNG over the sorted user ids."""
    if not max_users:
        return inter
    users = np.sort(inter["user_id"].unique())
    if len(users) <= max_users:
        return inter
    rng = np.random.default_rng(seed)
    keep = set(rng.choice(users, size=max_users, replace=False).tolist())
    report.add("users_dropped_by_max_users", len(users) - max_users)
    return inter[inter["user_id"].isin(keep)]
