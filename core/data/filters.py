"""Filters shared by loaders, run inside DuckDB: k-core and reproducible user sampling.

Both work on a DuckDB table (``table`` on connection ``con``) with raw-id columns ``user_id`` and
``item_id`` and delete the rows they drop, so a loader keeps its interactions in DuckDB through
the filters and fetches only the rows left (the Yelp loader: its reviews; the tabular loaders:
the row numbers of their frame).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.data.dataset import LoadReport


def k_core(con, table: str, min_user: int, min_item: int, report: LoadReport,
           distinct_pairs: bool = True) -> None:
    """Delete rows of ``table`` until every user has ``min_user`` and every item ``min_item``
    interactions.

    Each round drops the items below ``min_item``, then the users below ``min_user`` (counted
    on what is left), until a round drops nothing; a row stays iff its user and its item stay.
    With ``distinct_pairs`` (the default, for ``repeats="collapse"``) a user's or item's
    interactions are its distinct partners, so the k-core still holds once ``build_dataset``
    collapses repeated pairs; otherwise rows count. The deleted row count is reported as
    ``k_core_dropped_interactions``.
    """
    if min_user <= 1 and min_item <= 1:
        return
    pairs = f"{table}_kcore_pairs"
    weight = "1" if distinct_pairs else "count(*)"
    con.execute(f"CREATE OR REPLACE TEMP TABLE {pairs} AS SELECT user_id, item_id, "
                f"{weight} AS w FROM {table} GROUP BY user_id, item_id")
    try:
        while True:
            dropped = 0
            for col, least in (("item_id", min_item), ("user_id", min_user)):
                if least > 1:
                    dropped += con.execute(
                        f"DELETE FROM {pairs} WHERE {col} IN (SELECT {col} FROM {pairs} "
                        f"GROUP BY {col} HAVING sum(w) < {int(least)})").fetchone()[0]
            if not dropped:
                break
        n = con.execute(
            f"DELETE FROM {table} t WHERE NOT EXISTS (SELECT 1 FROM {pairs} p "
            "WHERE p.user_id = t.user_id AND p.item_id = t.item_id)").fetchone()[0]
    finally:
        con.execute(f"DROP TABLE IF EXISTS {pairs}")
    report.add("k_core_dropped_interactions", int(n))


def sample_users(con, table: str, max_users: int | None, seed: int,
                 report: LoadReport) -> None:
    """Keep the rows of at most ``max_users`` users of ``table``: ``numpy``'s
    ``default_rng(seed).choice`` over the sorted distinct user ids, without replacement (DuckDB
    sorts VARCHAR by code point, as Python does). Counted as ``users_dropped_by_max_users``."""
    if not max_users:
        return
    users = con.execute(f"SELECT DISTINCT user_id FROM {table} ORDER BY user_id").df()["user_id"]
    users = users.to_numpy()
    if len(users) <= max_users:
        return
    rng = np.random.default_rng(seed)
    keep = pd.DataFrame({"user_id": rng.choice(users, size=max_users, replace=False)})
    view = f"{table}_sampled_users"
    con.register(view, keep)
    try:
        con.execute(f"DELETE FROM {table} WHERE user_id NOT IN (SELECT user_id FROM {view})")
    finally:
        con.unregister(view)
    report.add("users_dropped_by_max_users", len(users) - max_users)
