"""``ParquetTexts.get`` reads only the row groups holding the rows asked for: rows scattered over
many groups come back right, in the order asked, with repeats, missing texts and a pickled copy."""

from __future__ import annotations

import pickle

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from core.data import texts
from core.data.texts import ParquetTexts

#: rows enough for several row groups (DuckDB writes groups of a multiple of 2048 rows)
N = 6 * 2048 + 77


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> ParquetTexts:
    """Row ``i`` reads ``"text i"``, except every 7th row (no text) and every 11th (blank)."""
    con = duckdb.connect()
    select = ("SELECT range AS row, CASE WHEN range % 7 = 0 THEN NULL "
              f"WHEN range % 11 = 0 THEN '  ' ELSE 'text ' || range END AS text FROM range({N})")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(texts, "ROW_GROUP_SIZE", 2048)
        out = ParquetTexts.write(con, select, n=N, folder=tmp_path_factory.mktemp("texts"))
    con.close()
    return out


def _expected(i: int) -> str | None:
    return None if i % 7 == 0 else "  " if i % 11 == 0 else f"text {i}"


def test_rows_from_many_row_groups_come_back_in_the_order_asked(stored):
    assert pq.ParquetFile(stored.path).metadata.num_row_groups > 5
    rng = np.random.default_rng(0)
    for rows in ([N - 1, 0, 7, 7, 3, 2048, 2047, 4097], rng.integers(0, N, 50), range(N)):
        assert stored.get(rows) == [_expected(int(i)) for i in rows]
    assert stored.get([]) == []
    assert stored.nonblank()[[1, 7, 11, 12]].tolist() == [True, False, False, True]
    with pytest.raises(IndexError, match=str(N)):
        stored.get([N])


def test_a_pickled_copy_reads_the_same_file(stored):
    copy = pickle.loads(pickle.dumps(stored))
    rows = [5, 4321, N - 1, 5]
    assert copy.get(rows) == stored.get(rows) == [_expected(i) for i in rows]
