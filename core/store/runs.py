"""Stored evaluation runs: one DuckDB file, ``<cache>/runs.duckdb``, separate from the embeddings.

A run is one technique evaluated on one (dataset, split, seed) with given encoders and options; its
key is a hash of all of these (see ``run_key``). The app computes only the techniques whose key is
missing and reloads the others instantly. Stored per run: aggregated metrics, per-user metrics and
the top-k recommendations; the held-out truth is stored once per split key.

Concurrency (the store base, ``core.store.base``): every operation opens a short-lived connection
(read-only for queries), so the CLI and several app sessions can share the file; one that finds the
file locked by another process retries for ``lock_timeout`` seconds (default 10,
``$MMREC_CACHE_LOCK_TIMEOUT``) and then raises ``CacheError`` naming the file. Rows of one run are
written in one transaction, so a reader never sees half a run. Within one process (Streamlit runs
each browser session as a thread) connections to the file are serialised, so two sessions never
both create the schema or both store a split's truth.

Computing a run once: ``compute_lock(key)`` is the right to compute run ``key`` — a thread lock
per key within the process plus ``fcntl.flock`` on ``<cache>/runs.locks/<key>.lock`` across
processes (thread lock only where ``fcntl`` is missing). The kernel drops a flock when its process
dies, so a lock file left behind by a killed process does not block anyone; the files are never
deleted (deleting a lock file another process is waiting on would let two processes hold "the"
lock).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: locks hold within one process only
    fcntl = None

from core.store.base import DuckStore, shared_lock

SCHEMA_VERSION = 1
FILE_NAME = "runs.duckdb"
#: how long a session waits for another one computing the same run before computing it itself
WAIT_TIMEOUT_ENV = "MMREC_RUN_WAIT_TIMEOUT"
DEFAULT_WAIT_TIMEOUT = 3600.0

# One lock per lock file (computes) in this process. Weak values: an entry lives as long as
# someone holds or waits on it.
_compute_locks: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_key VARCHAR PRIMARY KEY, split_key VARCHAR, dataset VARCHAR, split VARCHAR, seed INTEGER,
    technique VARCHAR, encoders VARCHAR, options VARCHAR, ks VARCHAR, params VARCHAR,
    timings VARCHAR, created DOUBLE);
CREATE TABLE IF NOT EXISTS metrics (
    run_key VARCHAR, technique VARCHAR, encoder VARCHAR, metric VARCHAR, k INTEGER,
    value DOUBLE, n_users INTEGER);
CREATE TABLE IF NOT EXISTS per_user (
    run_key VARCHAR, technique VARCHAR, user_id VARCHAR, metric VARCHAR, k INTEGER, value DOUBLE);
CREATE TABLE IF NOT EXISTS recs (
    run_key VARCHAR, technique VARCHAR, user_id VARCHAR, rank INTEGER, item_id VARCHAR,
    score DOUBLE);
CREATE TABLE IF NOT EXISTS truth (split_key VARCHAR, user_id VARCHAR, item_id VARCHAR);
"""


def _digest(payload: Mapping[str, Any]) -> str:
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def split_key(dataset: str, split: str, seed: int, options: Mapping[str, Any] | None = None) -> str:
    """Identity of a (dataset, split, seed) held-out set; ``options`` such as ``min_rating``
    change which held-out items count as relevant, so they are part of it."""
    relevant = {k: v for k, v in (options or {}).items() if k == "min_rating"}
    return _digest({"dataset": dataset, "split": split, "seed": int(seed), "options": relevant})


def run_key(
    dataset: str,
    split: str,
    seed: int,
    technique: str,
    encoders: Mapping[str, str],
    options: Mapping[str, Any],
    ks: Sequence[int],
) -> str:
    """Identity of one stored run.

    Args:
        dataset: the dataset's identity (spec plus load options, see ``core.app_api``).
        encoders: only the encoder specs the technique uses (so changing the CLIP encoder does not
            invalidate ALS).
        options: run options (filters, ``min_rating``, ``tune``).
        ks: the cut-offs the metrics were computed at.
    """
    return _digest({
        "v": SCHEMA_VERSION, "dataset": dataset, "split": split, "seed": int(seed),
        "technique": technique, "encoders": dict(sorted(encoders.items())),
        "options": dict(sorted(options.items())), "ks": sorted(int(k) for k in ks),
    })


class RunLock:
    """The exclusive right to compute one run: a thread lock shared by every ``RunLock`` on the
    same file in this process, plus ``fcntl.flock`` on the file across processes.

    Use ``acquire(timeout)`` / ``release()`` (or ``with``, which waits without limit). Not
    re-entrant: one holder at a time, even in the same thread.
    """

    #: seconds between two attempts while waiting
    POLL = 0.05

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._thread_lock = shared_lock(_compute_locks, self.path.resolve(), threading.Lock)
        self._fd: int | None = None
        self._held = False

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._held

    def acquire(self, timeout: float | None = None,
                on_wait: Callable[[float], None] | None = None) -> bool:
        """Take the lock; ``timeout`` 0 tries once, ``None`` waits without limit. While waiting,
        ``on_wait(seconds_waited)`` is called about once a second. Returns whether it was taken.
        """
        if self._held:
            raise RuntimeError(f"{self.path}: lock already held by this RunLock")
        start = time.monotonic()
        next_call = start
        while not self._try():
            now = time.monotonic()
            if on_wait is not None and timeout != 0 and now >= next_call:
                on_wait(now - start)
                next_call = now + 1.0
            if timeout is not None and now - start >= timeout:
                return False
            pause = self.POLL if timeout is None else min(self.POLL, start + timeout - now)
            time.sleep(max(pause, 0.0))
        return True

    def _try(self) -> bool:
        if not self._thread_lock.acquire(blocking=False):
            return False
        if fcntl is not None:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError:  # e.g. a read-only folder: this process's lock still holds
                fd = None
            if fd is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:  # another process computes this run
                    os.close(fd)
                    self._thread_lock.release()
                    return False
                except OSError:  # a filesystem without flock: this process's lock still holds
                    os.close(fd)
                    fd = None
            self._fd = fd
        self._held = True
        return True

    def release(self) -> None:
        """Give the lock back (the lock file stays, unlocked)."""
        if not self._held:
            raise RuntimeError(f"{self.path}: lock not held")
        self._held = False
        fd, self._fd = self._fd, None
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
        finally:
            self._thread_lock.release()

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass
class StoredRuns:
    """Rows of several stored runs, concatenated (technique is a column in every frame)."""

    runs: pd.DataFrame
    metrics: pd.DataFrame
    per_user: pd.DataFrame
    recs: pd.DataFrame
    truth: pd.DataFrame


class RunStore(DuckStore):
    """The runs database at ``path`` (created on first use with the current schema)."""

    what = "runs database"
    schema = _SCHEMA
    schema_version = SCHEMA_VERSION
    version_key = "schema"  # as recorded by every runs database so far
    remedy = "delete the file to start afresh (runs are recomputed on demand)"
    default_lock_timeout = 10.0

    def __init__(self, path: str | Path, lock_timeout: float | None = None,
                 wait_timeout: float | None = None) -> None:
        """Open (or create) the database.

        Args:
            lock_timeout: seconds to retry opening the file while another process holds it
                (default ``$MMREC_CACHE_LOCK_TIMEOUT``, else 10).
            wait_timeout: how long a caller of ``compute_lock`` should wait for another session
                computing the same run (default ``$MMREC_RUN_WAIT_TIMEOUT``, else an hour).
        """
        if wait_timeout is None:
            wait_timeout = float(os.environ.get(WAIT_TIMEOUT_ENV) or DEFAULT_WAIT_TIMEOUT)
        self.wait_timeout = wait_timeout
        super().__init__(path, lock_timeout)

    @classmethod
    def in_cache(cls, cache_root: str | Path) -> RunStore:
        """The store in a cache directory: ``<cache_root>/runs.duckdb``."""
        return cls(Path(cache_root) / FILE_NAME)

    @property
    def lock_dir(self) -> Path:
        """Folder of the per-run compute lock files (``runs.locks`` beside ``runs.duckdb``)."""
        return self.path.with_suffix(".locks")

    def compute_lock(self, key: str) -> RunLock:
        """The lock to hold while computing and saving run ``key`` (see the module docstring)."""
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        return RunLock(self.lock_dir / f"{key}.lock")

    # --- queries -----------------------------------------------------------------------------
    def existing(self, keys: Iterable[str]) -> set[str]:
        """Which of ``keys`` are stored."""
        keys = list(keys)
        if not keys:
            return set()
        with self.connect() as con:
            rows = con.execute(
                "SELECT run_key FROM runs WHERE list_contains(?, run_key)", [keys]
            ).fetchall()
        return {r[0] for r in rows}

    def load(self, keys: Sequence[str], split: str | None = None) -> StoredRuns:
        """The rows of the runs ``keys`` (missing keys are ignored) and the truth of ``split``."""
        keys = list(keys)
        with self.connect() as con:
            def q(table: str, cols: str, order: str) -> pd.DataFrame:
                return con.execute(
                    f"SELECT {cols} FROM {table} WHERE list_contains(?, run_key) ORDER BY {order}",
                    [keys],
                ).df()

            runs = q("runs", "*", "technique")
            metrics = q("metrics", "technique, encoder, metric, k, value, n_users",
                        "technique, metric, k")
            per_user = q("per_user", "technique, user_id, metric, k, value",
                         "technique, metric, k, user_id")
            recs = q("recs", "technique, user_id, rank, item_id, score", "technique, user_id, rank")
            truth = con.execute(
                "SELECT user_id, item_id FROM truth WHERE split_key = ? ORDER BY user_id, item_id",
                [split or ""],
            ).df()
        return StoredRuns(runs, metrics, per_user, recs, truth)

    def load_metrics(self, keys: Sequence[str], split: str | None = None) -> StoredRuns:
        """Only the small parts of the runs ``keys``: metrics, run rows and the split's truth
        (``per_user`` and ``recs`` come back empty; query them with ``query_per_user`` /
        ``query_recs``)."""
        keys = list(keys)
        with self.connect() as con:
            runs = con.execute("SELECT * FROM runs WHERE list_contains(?, run_key) "
                               "ORDER BY technique", [keys]).df()
            metrics = con.execute(
                "SELECT technique, encoder, metric, k, value, n_users FROM metrics "
                "WHERE list_contains(?, run_key) ORDER BY technique, metric, k", [keys]).df()
            truth = con.execute(
                "SELECT user_id, item_id FROM truth WHERE split_key = ? ORDER BY user_id, item_id",
                [split or ""]).df()
        empty = pd.DataFrame()
        return StoredRuns(runs, metrics, empty, empty, truth)

    def query_per_user(self, keys: Sequence[str], metric: str | None = None,
                       k: int | None = None, user_id: str | None = None,
                       technique: str | None = None) -> pd.DataFrame:
        """Per-user rows (technique, user_id, metric, k, value) of runs ``keys``, filtered in
        DuckDB by whichever of ``metric``, ``k``, ``user_id``, ``technique`` is given."""
        return self._select(
            "per_user", "technique, user_id, metric, k, value", keys,
            {"metric": metric, "k": k, "user_id": user_id, "technique": technique},
            "technique, metric, k, user_id")

    def query_recs(self, keys: Sequence[str], user_id: str | None = None,
                   technique: str | None = None) -> pd.DataFrame:
        """Top-k rows (technique, user_id, rank, item_id, score) of runs ``keys``, optionally of
        one user and/or technique."""
        return self._select(
            "recs", "technique, user_id, rank, item_id, score", keys,
            {"user_id": user_id, "technique": technique}, "technique, user_id, rank")

    def _select(self, table: str, columns: str, keys: Sequence[str],
                equal: dict[str, Any], order: str) -> pd.DataFrame:
        """Rows of ``table`` for runs ``keys`` where each non-None ``equal`` column matches."""
        where, params = ["list_contains(?, run_key)"], [list(keys)]
        for col, value in equal.items():
            if value is not None:
                where.append(f"{col} = ?")
                params.append(value)
        with self.connect() as con:
            return con.execute(
                f"SELECT {columns} FROM {table} WHERE " + " AND ".join(where)
                + f" ORDER BY {order}", params).df()

    def list_runs(self) -> pd.DataFrame:
        """One row per stored run (key, dataset, split, seed, technique, encoders, created)."""
        with self.connect() as con:
            return con.execute(
                "SELECT run_key, dataset, split, seed, technique, encoders, created FROM runs "
                "ORDER BY created"
            ).df()

    # --- writes ------------------------------------------------------------------------------
    def save(
        self,
        key: str,
        *,
        split_key_: str,
        info: Mapping[str, Any],
        metrics: pd.DataFrame,
        per_user: pd.DataFrame,
        recs: pd.DataFrame,
        truth: pd.DataFrame | None = None,
    ) -> None:
        """Store one technique's run under ``key`` (replacing it), in one transaction.

        Args:
            info: ``dataset``, ``split``, ``seed``, ``technique``, ``encoders``, ``options``,
                ``ks``, ``params``, ``timings`` (JSON-serialisable).
            metrics: columns technique, encoder, metric, k, value, n_users.
            per_user: columns technique, user_id, metric, k, value.
            recs: columns technique, user_id, rank, item_id, score.
            truth: columns user_id, item_id; stored once per ``split_key_``.
        """
        frames = {
            "metrics": _frame(metrics, ["technique", "encoder", "metric", "k", "value", "n_users"],
                              key),
            "per_user": _frame(per_user, ["technique", "user_id", "metric", "k", "value"], key),
            "recs": _frame(recs, ["technique", "user_id", "rank", "item_id", "score"], key),
        }
        row = [
            key, split_key_, str(info.get("dataset", "")), str(info.get("split", "")),
            int(info.get("seed", 0)), str(info.get("technique", "")),
            json.dumps(info.get("encoders", {}), sort_keys=True, default=str),
            json.dumps(info.get("options", {}), sort_keys=True, default=str),
            json.dumps(list(info.get("ks", [])), default=str),
            json.dumps(info.get("params", {}), sort_keys=True, default=str),
            json.dumps(info.get("timings", {}), sort_keys=True, default=str),
            time.time(),
        ]
        with self.connect(write=True) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                for table in ("runs", "metrics", "per_user", "recs"):
                    con.execute(f"DELETE FROM {table} WHERE run_key = ?", [key])
                con.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
                for table, frame in frames.items():
                    con.register("_incoming", frame)
                    con.execute(f"INSERT INTO {table} SELECT * FROM _incoming")
                    con.unregister("_incoming")
                if truth is not None:
                    have = con.execute("SELECT count(*) FROM truth WHERE split_key = ?",
                                       [split_key_]).fetchall()[0][0]
                    if not have:
                        t = pd.DataFrame({
                            "split_key": split_key_,
                            "user_id": truth["user_id"].astype(str).to_numpy(),
                            "item_id": truth["item_id"].astype(str).to_numpy(),
                        })
                        con.register("_incoming", t)
                        con.execute("INSERT INTO truth SELECT * FROM _incoming")
                        con.unregister("_incoming")
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise

    def clear(self) -> int:
        """Delete every stored run; returns how many there were."""
        with self.connect(write=True) as con:
            n = con.execute("SELECT count(*) FROM runs").fetchall()[0][0]
            for table in ("runs", "metrics", "per_user", "recs", "truth"):
                con.execute(f"DELETE FROM {table}")
        return int(n)


def _frame(df: pd.DataFrame, columns: list[str], key: str) -> pd.DataFrame:
    """``df`` restricted to ``columns`` (missing ones filled with nulls), with ``run_key`` first
    and ids as strings, in the table's column order."""
    out = pd.DataFrame({"run_key": [key] * len(df)})
    for col in columns:
        if col in df.columns:
            values = df[col].to_numpy()
        else:
            values = [None] * len(df)
        out[col] = values
    for col in ("user_id", "item_id", "technique", "encoder", "metric"):
        if col in out.columns:
            out[col] = out[col].astype(object).where(out[col].notna(), None)
            out[col] = [None if v is None else str(v) for v in out[col]]
    return out
