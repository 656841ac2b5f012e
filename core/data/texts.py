"""Review texts beside the interactions: ``Dataset.texts``, one text (or None) per interaction row.

Text is the biggest part of a review dataset (the real Yelp review file is about 5 GB, most of it
text), and almost nothing needs all of it at once: evaluation of collaborative techniques needs
none, the pages show a few reviews, the encoders read it once, in batches. So the interactions
frame carries no text; ``Dataset.texts`` answers by interaction row (the frame's index, which
splits keep):

* ``get(rows)`` -> the texts of those rows, in that order;
* ``batches(size)`` -> every text in row order, ``size`` at a time (for the encoders);
* ``nonblank()`` -> which rows have a non-blank text (a bool array, cheap to keep).

Two stores: ``MemoryTexts`` (a list, for sources without review text or built in memory) and
``ParquetTexts`` (a Parquet file of ``(row, text)`` sorted by row, written by DuckDB, for the Yelp
and ``csv:`` loaders). A ``ParquetTexts`` made by a loader owns its file: the file is deleted when
the object is collected or the process ends. ``get`` reads only the row groups holding the rows
asked for (a page shows a user's few reviews, scattered over a file in time order).

Loaders keep each interaction's text key (a line or row number of their source) instead of its
text through their filters, and ``write_keyed_texts`` reads the texts of the rows left at the end
(``build_dataset``'s ``texts_from``). The Yelp loader reads them from the review file itself; the
``csv:`` loader sets them aside while it reads its file, chunk by chunk, in ``SpilledTexts`` (a
Parquet file on disk), so its texts are never all in memory either.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import weakref
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

#: SQL test of a non-blank text in column ``{col}`` (a non-whitespace character, as Python's
#: ``str.strip`` sees it for ASCII whitespace).
NONBLANK_SQL = "({col} IS NOT NULL AND regexp_matches({col}, '[^\\s]'))"
#: Rows per Parquet row group: a lookup decompresses the whole text column of each group holding
#: a row asked for, so small groups keep a user's reviews (one group each, rows in time order)
#: cheap: ~0.5 ms a group here, ~4x less than 16,384-row groups; the file's footer grows with the
#: number of groups (read once per ``ParquetTexts``).
ROW_GROUP_SIZE = 2048


def _is_text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


class ReviewTexts(ABC):
    """The review text of each interaction row, ``None`` where a row has none."""

    #: Number of rows (= ``len(Dataset.interactions)``).
    n: int

    def __len__(self) -> int:
        return self.n

    @abstractmethod
    def get(self, rows: Sequence[int] | np.ndarray) -> list[str | None]:
        """Texts of ``rows`` (interaction row numbers), in the order given.

        Raises:
            IndexError: a row outside ``0..n-1``.
        """

    @abstractmethod
    def batches(self, size: int = 50_000) -> Iterator[tuple[int, list[str | None]]]:
        """``(first row, texts)`` pairs covering every row in order, ``size`` rows at a time."""

    @abstractmethod
    def nonblank(self) -> np.ndarray:
        """Read-only bool array: row ``i`` has a text that is not blank."""

    def to_list(self) -> list[str | None]:
        """Every text in row order, in memory (small datasets and tests; at scale, ``batches``
        reads them a batch at a time)."""
        return [t for _, batch in self.batches() for t in batch]

    def _check(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = np.asarray(rows, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n):
            bad = idx[(idx < 0) | (idx >= self.n)][0]
            raise IndexError(f"review text row {int(bad)} is outside 0..{self.n - 1}")
        return idx


class MemoryTexts(ReviewTexts):
    """Texts held in a list (datasets built in memory, and loaders without review text)."""

    def __init__(self, texts: Sequence[object]):
        self._texts: list[str | None] = [t if isinstance(t, str) else None for t in texts]
        self.n = len(self._texts)
        mask = np.fromiter((_is_text(t) for t in self._texts), dtype=bool, count=self.n)
        mask.flags.writeable = False
        self._mask = mask

    def get(self, rows: Sequence[int] | np.ndarray) -> list[str | None]:
        return [self._texts[i] for i in self._check(rows).tolist()]

    def batches(self, size: int = 50_000) -> Iterator[tuple[int, list[str | None]]]:
        for start in range(0, self.n, max(1, int(size))):
            yield start, self._texts[start:start + size]

    def nonblank(self) -> np.ndarray:
        return self._mask


class ParquetTexts(ReviewTexts):
    """Texts in a Parquet file of ``(row BIGINT, text VARCHAR)`` sorted by row, one row per
    interaction (row ``i`` is the file's ``i``-th), in row groups of ``ROW_GROUP_SIZE``. ``get``
    reads only the groups holding the rows asked for (the file's layout is read on first use and
    kept); ``batches`` streams the file through DuckDB. Use ``ParquetTexts.write`` to make one."""

    def __init__(self, path: str | Path, n: int, nonblank: np.ndarray):
        self.path = Path(path)
        self.n = int(n)
        mask = np.asarray(nonblank, dtype=bool).copy()
        if mask.shape != (self.n,):
            raise ValueError(f"{self.path}: nonblank mask of shape {mask.shape}, expected "
                             f"({self.n},)")
        mask.flags.writeable = False
        self._mask = mask
        self._file = None  # the open pyarrow ParquetFile and its groups' first rows (``_layout``)
        self._file_lock = threading.Lock()

    @classmethod
    def write(cls, con, select_sql: str, n: int, folder: str | Path | None = None
              ) -> ParquetTexts:
        """Run ``select_sql`` (columns ``row``, ``text``; one row per interaction row ``0..n-1``)
        on DuckDB connection ``con`` and write it, sorted by row, into a new Parquet file in a
        fresh temporary directory under ``folder`` (default: the system's temp dir) that the
        returned object owns (deleted with it, or at exit).

        Raises:
            ValueError: the query did not give exactly the rows ``0..n-1``.
        """
        tmp = Path(tempfile.mkdtemp(prefix="mmrec-texts-", dir=folder))
        path = tmp / "texts.parquet"
        try:
            # the sort spills here rather than growing without bound (real Yelp: ~5 GB of text)
            (tmp / "spill").mkdir()
            con.execute(f"SET temp_directory = '{_sql_path(tmp / 'spill')}'")
            con.execute(f"COPY (SELECT row, text FROM ({select_sql}) ORDER BY row) TO "
                        f"'{_sql_path(path)}' (FORMAT parquet, COMPRESSION zstd, "
                        f"ROW_GROUP_SIZE {ROW_GROUP_SIZE})")
            got = con.execute(
                f"SELECT count(*), count(DISTINCT row), min(row), max(row) "
                f"FROM read_parquet('{_sql_path(path)}')").fetchone()
            if n and tuple(got) != (n, n, 0, n - 1) or not n and got[0] != 0:
                raise ValueError(f"review texts: expected one text per row 0..{n - 1}, got "
                                 f"{got[0]} rows ({got[1]} distinct, {got[2]}..{got[3]})")
            blank = con.execute(
                f"SELECT row FROM read_parquet('{_sql_path(path)}') "
                f"WHERE {NONBLANK_SQL.format(col='text')}").fetchnumpy()["row"]
            shutil.rmtree(tmp / "spill", ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        mask = np.zeros(n, dtype=bool)
        mask[np.asarray(blank, dtype=np.int64)] = True
        out = cls(path, n, mask)
        weakref.finalize(out, shutil.rmtree, str(tmp), True)
        return out

    def __getstate__(self) -> dict:
        return {"path": str(self.path), "n": self.n, "mask": np.asarray(self._mask)}

    def __setstate__(self, state: dict) -> None:  # a copy reads the file but does not own it
        self.__init__(state["path"], state["n"], state["mask"])

    def _connect(self):
        import duckdb

        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: the review texts of this dataset are gone "
                                    "(the dataset that wrote them was closed); load it again")
        return duckdb.connect()

    def _layout(self):
        """The open Parquet file and the first row of each of its row groups (read once)."""
        if self._file is None:
            import pyarrow.parquet as pq

            if not self.path.is_file():
                raise FileNotFoundError(f"{self.path}: the review texts of this dataset are gone "
                                        "(the dataset that wrote them was closed); load it again")
            f = pq.ParquetFile(self.path)
            sizes = [f.metadata.row_group(g).num_rows for g in range(f.metadata.num_row_groups)]
            if sum(sizes) != self.n:
                raise ValueError(f"{self.path}: {sum(sizes)} review texts, expected {self.n}")
            self._file = (f, np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64))
        return self._file

    def get(self, rows: Sequence[int] | np.ndarray) -> list[str | None]:
        idx = self._check(rows)
        if idx.size == 0:
            return []
        want = np.unique(idx)
        with self._file_lock:  # one reader of the shared file object at a time
            f, starts = self._layout()
            groups = np.unique(np.searchsorted(starts, want, side="right") - 1)
            table = f.read_row_groups(groups.tolist(), columns=["row", "text"])
        got_rows = table.column("row").to_numpy()
        at = np.searchsorted(got_rows, want)
        if not np.array_equal(got_rows[np.minimum(at, len(got_rows) - 1)], want):
            raise ValueError(f"{self.path}: not one text per row in row order; load the "
                             "dataset again")
        found = table.column("text").take(at).to_pylist()
        by_row = dict(zip(want.tolist(), _strings(found)))
        return [by_row[i] for i in idx.tolist()]

    def batches(self, size: int = 50_000) -> Iterator[tuple[int, list[str | None]]]:
        size = max(1, int(size))
        con = self._connect()
        try:
            # one file, no ORDER BY: DuckDB keeps the file's (row) order
            cur = con.execute(f"SELECT text FROM read_parquet('{_sql_path(self.path)}')")
            start = 0
            while True:
                chunk = cur.fetchmany(size)
                if not chunk:
                    break
                yield start, [t if isinstance(t, str) else None for (t,) in chunk]
                start += len(chunk)
        finally:
            con.close()

    def nonblank(self) -> np.ndarray:
        return self._mask


def write_keyed_texts(con, rows: np.ndarray, keys: np.ndarray, order: np.ndarray,
                      source_sql: str, text_sql: str = "s.raw") -> ParquetTexts:
    """The texts of a dataset's rows from a keyed source (``build_dataset``'s ``texts_from``).

    Row ``rows[j]`` takes the text under key ``keys[j]`` of ``source_sql`` (a query with columns
    ``key`` and ``raw``; ``text_sql`` makes the text of ``s.raw``, evaluated only on the keys
    asked for); a collapsed repeat (several keys, numbered ``order`` in time order) takes their
    distinct non-blank texts in time order, joined by a blank line, as ``collapse_repeats`` does
    in memory. Written by DuckDB on a cursor of ``con`` into a ``ParquetTexts`` under
    ``texts_folder()`` while the source is scanned once.
    """
    con = con.cursor()  # a connection of its own (the caller's may hold a pending result)
    con.register("text_map", pd.DataFrame({"row": rows, "key": keys, "ord": order}))
    nonblank = NONBLANK_SQL.format(col="text")
    select = f"""
        WITH m AS (SELECT row, key, ord, count(*) OVER (PARTITION BY row) AS n FROM text_map),
        t AS (SELECT m.row, m.ord, m.n, {text_sql} AS text
              FROM m JOIN ({source_sql}) s ON s.key = m.key)
        SELECT row, text FROM t WHERE n = 1
        UNION ALL
        SELECT row, string_agg(text, E'\n\n' ORDER BY ord) FILTER (WHERE first_copy) AS text
        FROM (SELECT row, ord, text, {nonblank} AND row_number() OVER
                     (PARTITION BY row, text ORDER BY ord) = 1 AS first_copy
              FROM t WHERE n > 1)
        GROUP BY row
    """
    try:
        return ParquetTexts.write(con, select, n=int(rows.max()) + 1 if rows.size else 0,
                                  folder=texts_folder())
    finally:
        con.close()


class SpilledTexts:
    """Texts under integer keys, appended a chunk at a time to a Parquet file on disk while a
    loader reads its source, so they are never all in memory; ``texts_from`` then writes the
    texts of the rows kept (``build_dataset``'s ``texts_from``, see ``write_keyed_texts``).

    The file lives in a fresh temporary directory under ``folder`` (default ``texts_folder()``),
    deleted by ``close`` (or the ``with`` block's end, the object's collection, the exit).
    """

    def __init__(self, folder: str | Path | None = None):
        self._dir = Path(tempfile.mkdtemp(prefix="mmrec-spill-", dir=folder or texts_folder()))
        self.path = self._dir / "texts.parquet"
        self._writer = None
        self._remove = weakref.finalize(self, shutil.rmtree, str(self._dir), True)

    def __enter__(self) -> SpilledTexts:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def add(self, keys: Sequence[int] | np.ndarray, texts: Sequence[str | None]) -> None:
        """Append ``texts[j]`` under key ``keys[j]``."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({"key": pa.array(np.asarray(keys, dtype=np.int64)),
                          "text": pa.array(texts, type=pa.string())})
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, table.schema, compression="zstd")
        self._writer.write_table(table)

    def texts_from(self, rows: np.ndarray, keys: np.ndarray, order: np.ndarray) -> ParquetTexts:
        """The texts of ``rows`` from the keys set aside (see ``write_keyed_texts``)."""
        import duckdb

        self._flush()
        source = (f"SELECT key, text AS raw FROM read_parquet('{_sql_path(self.path)}')"
                  if self.path.is_file() else "SELECT 0::BIGINT AS key, NULL AS raw LIMIT 0")
        con = duckdb.connect()
        try:
            return write_keyed_texts(con, rows, keys, order, source)
        finally:
            con.close()

    def close(self) -> None:
        """Delete the file (texts already written by ``texts_from`` stay)."""
        self._flush()
        self._remove()

    def _flush(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _strings(column) -> list[str | None]:
    values = column.tolist() if hasattr(column, "tolist") else list(column)
    return [v if isinstance(v, str) else None for v in values]


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def texts_folder() -> str | None:
    """Where loaders put their Parquet texts: ``MMREC_TMP_DIR`` when set, else the system's
    temp dir (``TMPDIR``)."""
    return os.environ.get("MMREC_TMP_DIR") or None


__all__ = ["NONBLANK_SQL", "MemoryTexts", "ParquetTexts", "ReviewTexts", "SpilledTexts",
           "texts_folder", "write_keyed_texts"]
