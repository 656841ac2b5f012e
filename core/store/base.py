"""The base of every DuckDB store (embedding cache, runs, projections): one file, opened for one
short transaction at a time, shared by several processes and by the threads of one process.

A store declares its file's schema and version (``DuckStore.schema``, ``schema_version``); this
module does the rest, the same way for each:

- **Atomic creation.** DuckDB writes a new file's header after creating it, so another process
  opening it in between fails with "not a valid DuckDB database file". ``ensure_database`` builds
  the file under a temporary name and hard-links it into place, so a process opens either no file
  or a whole one.
- **Short-lived connections with a lock retry.** DuckDB lets one process open a file for writing,
  or several for reading, never both. ``DuckStore.connect(write=...)`` opens the file read-only
  (reads) or read-write (writes) and closes it afterwards; while another process holds a
  conflicting lock it retries with backoff for ``lock_timeout`` seconds
  (``$MMREC_CACHE_LOCK_TIMEOUT``, else the store's default), then raises ``CacheError`` naming the
  file and the variable.
- **One schema check.** Every connection checks the version recorded in the ``meta`` table; a file
  with no version yet gets the schema (and the version) on its first write, in one transaction.
- **In-process serialisation.** Streamlit runs each browser session as a thread of one process;
  those threads share DuckDB's database instance, where two writers race (a catalog conflict
  creating the schema, a row inserted once per writer) and a read-only and a read-write connection
  cannot be open at once. Every connection to one file is therefore taken under one re-entrant lock
  per file and process.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from os import PathLike
from pathlib import Path
from typing import Any, ClassVar

from core.errors import CacheError

#: seconds to retry opening a store's file while another process holds it (every store)
LOCK_TIMEOUT_ENV = "MMREC_CACHE_LOCK_TIMEOUT"

_guard = threading.Lock()
_file_locks: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()


def shared_lock(table: weakref.WeakValueDictionary, path: Path, factory: Callable[[], Any]):
    """The lock of ``path`` in ``table``, made by ``factory`` on first use: one object per path
    in this process, alive as long as someone holds a reference to it."""
    with _guard:
        lock = table.get(str(path))
        if lock is None:
            lock = table[str(path)] = factory()
        return lock


def ensure_database(path: Path) -> None:
    """Create an empty DuckDB database at ``path`` unless a file is there, atomically.

    The database is built under a temporary name and hard-linked into place (which fails if
    another process got there first, whose file is then kept). Where hard links are unsupported,
    DuckDB creates the file in place.
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


class DuckStore:
    """One DuckDB file at ``path`` with a declared schema (see the module docstring).

    A subclass declares:

    - ``what``: what the file holds, for messages ("embedding cache");
    - ``schema``: SQL creating its tables, ``CREATE TABLE IF NOT EXISTS`` each (a file of this
      store written before it recorded a version is adopted, not rebuilt); the base adds
      ``meta(key, value)`` with the version under ``version_key``;
    - ``schema_version``; ``version_key`` where the store's files record it under another key;
    - ``remedy``: what the user should do about an unreadable or incompatible file;
    - ``default_lock_timeout`` (seconds, when neither the argument nor the variable is set);
    - ``create_on_open``: True to create the file and schema when the store is constructed (reads
      then always get a connection); False to leave a new file to the first write (reads of a
      store with nothing in it get ``None``).
    """

    what: ClassVar[str] = "database"
    schema: ClassVar[str] = ""
    schema_version: ClassVar[int] = 1
    version_key: ClassVar[str] = "schema_version"
    remedy: ClassVar[str] = "move or delete the file"
    default_lock_timeout: ClassVar[float] = 10.0
    create_on_open: ClassVar[bool] = True

    def __init__(self, path: str | PathLike, lock_timeout: float | None = None) -> None:
        """Args:
            path: the database file (its folder is created).
            lock_timeout: seconds to retry while another process holds the file (default
                ``$MMREC_CACHE_LOCK_TIMEOUT``, else ``default_lock_timeout``).
        """
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if lock_timeout is None:
            lock_timeout = float(os.environ.get(LOCK_TIMEOUT_ENV) or self.default_lock_timeout)
        self.lock_timeout = lock_timeout
        self._lock = shared_lock(_file_locks, self.path.resolve(), threading.RLock)
        if self.create_on_open:
            with self.connect():
                pass

    @contextmanager
    def connect(self, write: bool = False) -> Iterator:
        """A short-lived connection: read-only unless ``write``, closed on leaving the block.

        A write connection finds the schema in place (created here on the first write). A read
        of a file that does not exist yet, or holds no schema yet, gets ``None`` — or, for a store
        with ``create_on_open``, a connection to the file created now. Raises ``CacheError``
        (naming the file) for a file of another schema version or of something else, one DuckDB
        cannot open, or one another process still holds after ``lock_timeout`` seconds.
        """
        with self._lock:
            if not write and not self.path.exists():
                if not self.create_on_open:
                    yield None
                    return
                write = True
            con = self._open(write)
            try:
                if not self._check_schema(con, write):
                    if not self.create_on_open:
                        yield None
                        return
                    con.close()
                    con = self._open(write=True)
                    self._check_schema(con, write=True)
                yield con
            finally:
                con.close()

    def _open(self, write: bool):
        """Open the file, retrying lock conflicts with backoff until ``lock_timeout``."""
        import duckdb

        if write:
            ensure_database(self.path)  # never a half-created file for another process
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.01
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=not write)
            except duckdb.Error as exc:
                msg = str(exc)
                if "lock" not in msg.lower():
                    raise CacheError(f"{self.path}: cannot open the {self.what} "
                                     f"({msg.splitlines()[0]}); {self.remedy}") from None
                if time.monotonic() > deadline:
                    raise CacheError(
                        f"{self.path}: another process is writing the {self.what} (waited "
                        f"{self.lock_timeout:.0f} s); wait for it to finish and run again, or "
                        f"raise ${LOCK_TIMEOUT_ENV}"
                    ) from None
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.25)

    @classmethod
    def own_tables(cls) -> set[str]:
        """The tables ``schema`` creates, plus ``meta``."""
        names = re.findall(r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", cls.schema, re.I)
        return {n.lower() for n in names} | {"meta"}

    def _check_schema(self, con, write: bool) -> bool:
        """Whether the file holds this store's schema at the current version; created here on a
        write when no version is recorded yet.

        No version recorded means a new file (an empty database: also what a process killed
        between creating the file and committing the schema leaves), or one of this store written
        before it recorded a version; any other table means the file is not this store's.
        """
        tables = {r[0].lower() for r in con.execute(
            "SELECT table_name FROM information_schema.tables").fetchall()}
        found = None
        if "meta" in tables:
            rows = con.execute("SELECT value FROM meta WHERE key = ?",
                               [self.version_key]).fetchall()
            found = rows[0][0] if rows else None
        if found is None:
            foreign = tables - self.own_tables()
            if foreign:
                raise CacheError(
                    f"{self.path}: not a file of the {self.what} (no schema version; other "
                    f"tables: {', '.join(sorted(foreign)[:5])}); {self.remedy}")
            if not write:
                return False
            con.execute("BEGIN")
            try:
                con.execute(self.schema)
                con.execute("CREATE TABLE IF NOT EXISTS meta(key VARCHAR PRIMARY KEY, "
                            "value VARCHAR)")
                con.execute("INSERT INTO meta VALUES (?, ?)",
                            [self.version_key, str(self.schema_version)])
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            return True
        if found != str(self.schema_version):
            raise CacheError(
                f"{self.path}: {self.what} schema version {found}, this code needs "
                f"{self.schema_version}; {self.remedy}"
            )
        return True

    def size_bytes(self) -> int:
        """Size of the database file plus its write-ahead log."""
        total = 0
        for p in (self.path, self.path.with_name(self.path.name + ".wal")):
            if p.exists():
                total += p.stat().st_size
        return total
