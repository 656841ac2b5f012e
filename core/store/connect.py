"""Open a DuckDB file another process may hold: create it atomically, retry on lock conflicts,
then fail clearly."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from core.errors import CacheError


def ensure_database(path: Path) -> None:
    """Create an empty DuckDB database at ``path`` unless a file is there, atomically.

    DuckDB writes a new file's header after creating it, so another process opening it in between
    fails with "not a valid DuckDB database file". Here the database is built under a temporary
    name and hard-linked into place (which fails if another process got there first), so every
    process opens either no file or a whole one. Where hard links are unsupported, DuckDB creates
    the file in place as before.
    """
    if path.exists():
        return
    import duckdb

    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        duckdb.connect(str(tmp)).close()
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process created it meanwhile: use theirs
        except OSError:
            pass  # no hard links on this filesystem
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            leftover.unlink(missing_ok=True)


def connect_with_retry(path: Path, timeout: float, what: str, hint: str = ""):
    """A read-write DuckDB connection to ``path`` (created atomically if missing), retrying lock
    conflicts for ``timeout`` s.

    Raises ``CacheError`` naming the file and ``what`` it holds (plus ``hint``) once the lock
    is still held after the deadline, or at once for any other I/O error.
    """
    import duckdb

    ensure_database(path)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return duckdb.connect(str(path))
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise CacheError(f"{path}: cannot open the {what} ({exc}){hint}") from exc
            time.sleep(0.2)
