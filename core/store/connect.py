"""Open a DuckDB file another process may hold: retry on lock conflicts, then fail clearly."""

from __future__ import annotations

import time
from pathlib import Path

from core.errors import CacheError


def connect_with_retry(path: Path, timeout: float, what: str, hint: str = ""):
    """A read-write DuckDB connection to ``path``, retrying lock conflicts for ``timeout`` s.

    Raises ``CacheError`` naming the file and ``what`` it holds (plus ``hint``) once the lock
    is still held after the deadline, or at once for any other I/O error.
    """
    import duckdb

    deadline = time.monotonic() + timeout
    while True:
        try:
            return duckdb.connect(str(path))
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise CacheError(f"{path}: cannot open the {what} ({exc}){hint}") from exc
            time.sleep(0.2)
