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
- **One schema check.** A connection checks the version recorded in the ``meta`` table; a file
  with no version yet gets the schema (and the version) on its first write, in one transaction.
  A read of a file this process has checked since it last changed (``DuckStore.version``) skips the
  check, so the app's reruns do not repeat it on every read.
- **A version to cache by.** ``DuckStore.version()`` is a token of the file's state (its stat and
  its write-ahead log's), ``None`` while it has just changed: what was read under a token may be
  kept (per process) until the token differs.
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
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from os import PathLike
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from core.errors import CacheError

T = TypeVar("T")

#: seconds to retry opening a store's file while another process holds it (every store)
LOCK_TIMEOUT_ENV = "MMREC_CACHE_LOCK_TIMEOUT"

#: A file that changed less than this many seconds ago has no ``DuckStore.version`` yet: file
#: times can be as coarse as a clock tick, so two changes in one tick may leave the same stat (the
#: "racily clean" case of git's index). Older changes are told apart by the stat alone.
SETTLED_S = 1.0

_guard = threading.Lock()
_file_locks: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
#: file path -> the ``DuckStore.version`` at which this process last found its schema current
_schema_ok: dict[str, tuple] = {}
#: file path -> results read at its current version (``DuckStore.remember``), least recent first
_memos: dict[str, OrderedDict[Hashable, tuple[tuple, Any]]] = {}


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
        if self.create_on_open and not self._checked(self.version()):
            with self.connect():
                pass

    def version(self) -> tuple | None:
        """A token of the file's current state, or ``None`` when there is no file or it (or its
        write-ahead log) changed less than ``SETTLED_S`` seconds ago.

        Every committed write changes the token: DuckDB appends a commit to ``<file>.wal`` and
        later checkpoints it into the file (and drops the log). So whatever was read from the file
        after taking a token may be kept and reused while ``version()`` still returns that token;
        after any write, another process's included, it returns another one (or ``None``)."""
        now = time.time_ns()
        parts: list[tuple | None] = []
        for path in (self.path, self.path.with_name(self.path.name + ".wal")):
            try:
                st = path.stat()
            except FileNotFoundError:
                if path == self.path:
                    return None
                parts.append(None)
                continue
            if now - max(st.st_mtime_ns, st.st_ctime_ns) < SETTLED_S * 1e9:
                return None
            parts.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
        return (str(self.path.resolve()), *parts)

    def _checked(self, version: tuple | None) -> bool:
        """Whether this process found the schema current at ``version`` (not ``None``)."""
        return version is not None and _schema_ok.get(version[0]) == version

    def remember(self, key: Hashable, read: Callable[[], T], keep: int = 32) -> T:
        """``read()`` (a read of this file), kept in this process under ``key`` and returned
        again while ``version()`` is unchanged; read afresh when the file changed (or has no
        version yet). What comes back is shared by every caller: never modify it.

        Only results of the file's current version are kept, at most ``keep`` of them (the least
        recently used go first)."""
        version = self.version()  # taken before reading: a write meanwhile changes it
        if version is None:
            return read()
        with _guard:
            memo = _memos.get(version[0])
            hit = memo.get(key) if memo is not None else None
            if hit is not None and hit[0] == version:
                memo.move_to_end(key)
                return hit[1]
        value = read()
        with _guard:
            memo = _memos.setdefault(version[0], OrderedDict())
            for old in [k for k, (v, _) in memo.items() if v != version]:
                del memo[old]  # an older version of the file: never current again
            memo[key] = (version, value)
            memo.move_to_end(key)
            while len(memo) > keep:
                memo.popitem(last=False)
        return value

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
            version = None if write else self.version()  # taken before the file is read
            con = self._open(write)
            try:
                if self._checked(version):
                    pass  # checked since the file last changed
                elif not self._check_schema(con, write):
                    if not self.create_on_open:
                        yield None
                        return
                    con.close()
                    con = self._open(write=True)
                    self._check_schema(con, write=True)
                elif version is not None:
                    with _guard:
                        _schema_ok[version[0]] = version
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
