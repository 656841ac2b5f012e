"""The loaders' filters in DuckDB (``core.data.filters``): the k-core against hand-computed
cascades and a plain-Python reference, the user sampling against numpy's rule."""

from __future__ import annotations

import random
from collections import defaultdict

import duckdb
import numpy as np
import pandas as pd
import pytest

from core.data.dataset import LoadReport
from core.data.filters import k_core, sample_users

# u5 rated d twice (one pair, two rows); f -> u7 -> g -> u8 -> h -> u9 is a cascade: each
# round's drop leaves the next user or item below 2.
TOY = [("u1", "a"), ("u1", "b"), ("u1", "c"), ("u2", "a"), ("u2", "b"), ("u3", "a"),
       ("u3", "c"), ("u4", "c"), ("u4", "d"), ("u5", "d"), ("u5", "d"), ("u6", "e"),
       ("u7", "f"), ("u7", "g"), ("u8", "g"), ("u8", "h"), ("u9", "h"), ("u9", "a")]


def table(rows: list[tuple[str, str]]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    frame = pd.DataFrame(rows, columns=["user_id", "item_id"])
    con.register("frame", frame.assign(row=np.arange(len(frame))))
    con.execute("CREATE TEMP TABLE t AS SELECT * FROM frame")
    return con


def left(con) -> list[tuple[str, str]]:
    return [tuple(r) for r in con.execute("SELECT user_id, item_id FROM t ORDER BY row").fetchall()]


@pytest.mark.parametrize("distinct, kept", [
    # rounds: e, f, then u5 (one distinct item), u7 | d, g, then u4, u8 | h, then u9 | stable
    (True, TOY[:7]),
    # rows count, so u5's two rows of d keep u5 and d: e, f, u7 | g, u8 | h, u9 | stable
    (False, TOY[:11]),
])
def test_k_core_cascades_to_the_hand_computed_core(distinct: bool, kept: list):
    con = table(TOY)
    report = LoadReport()
    k_core(con, "t", 2, 2, report, distinct_pairs=distinct)
    assert left(con) == kept
    assert report.counts["k_core_dropped_interactions"] == len(TOY) - len(kept)
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name <> 't'"
                       ).fetchone()[0] == 0  # its work table is gone


def test_k_core_off_is_a_no_op_that_reports_nothing():
    con = table(TOY)
    report = LoadReport()
    k_core(con, "t", 1, 1, report)
    assert left(con) == TOY and "k_core_dropped_interactions" not in report.counts


def reference_core(rows, min_user, min_item, distinct):
    """The k-core by its definition, in plain Python."""
    rows = list(rows)
    while True:
        n = len(rows)
        for side, least in ((1, min_item), (0, min_user)):
            seen = defaultdict(set) if distinct else defaultdict(list)
            for r in rows:
                (seen[r[side]].add if distinct else seen[r[side]].append)(r[1 - side])
            rows = [r for r in rows if len(seen[r[side]]) >= least]
        if len(rows) == n:
            return rows


@pytest.mark.parametrize("seed", range(6))
def test_k_core_matches_the_definition_on_random_graphs(seed: int):
    rnd = random.Random(seed)
    rows = [(f"u{rnd.randint(0, 30)}", f"i{rnd.randint(0, 20)}") for _ in range(150)]
    for min_user, min_item in ((3, 1), (1, 4), (3, 3), (2, 5)):
        for distinct in (True, False):
            con = table(rows)
            k_core(con, "t", min_user, min_item, LoadReport(), distinct_pairs=distinct)
            assert left(con) == reference_core(rows, min_user, min_item, distinct)


def test_sampling_keeps_the_users_numpy_picks_from_the_sorted_ids():
    rnd = random.Random(1)
    users = ["b", "B", "a10", "a9", "Ü", "u", "z", "A", "é", "m"]
    rows = [(rnd.choice(users), f"i{rnd.randint(0, 5)}") for _ in range(200)]
    present = sorted({u for u, _ in rows})
    for seed in (0, 7, 42):
        con = table(rows)
        report = LoadReport()
        sample_users(con, "t", 4, seed, report)
        chosen = set(np.random.default_rng(seed).choice(np.array(present, dtype=object), size=4,
                                                        replace=False))
        assert left(con) == [r for r in rows if r[0] in chosen]
        assert report.counts["users_dropped_by_max_users"] == len(present) - 4
    con = table(rows)
    report = LoadReport()
    sample_users(con, "t", len(present), 0, report)  # as many as there are: nothing to do
    assert left(con) == rows and not report.counts
