"""Stored evaluation runs: one DuckDB file, ``<cache>/runs.duckdb``, the one home of every run the
CLI (``python -m core evaluate``) or the app computes; ``--save-run`` folders and
``python -m core runs export`` are exports of it.

A run is one experiment row (``core.recommenders.spec.TechniqueSpec``: technique + params)
evaluated on one (dataset, split, seed) with given encoders and options. Its key (``run_key``) is
a hash of what decides its results, computed by ``plan_runs`` for the CLI and the app alike:

- the dataset's identity (``dataset_key``: spec, load options, counts), the split kind and seed;
- the run options that change results (``run_options``: ``tune``, ``min_rating``,
  ``photo_filter``, ``review_filter``);
- the row's identity (technique + params; its label is only a name);
- the ``Encoder.id`` of each encoder role the technique uses (spec + weights identity, e.g. a
  checkpoint's sha256, + precision), so a changed checkpoint behind one spec is a new run, and a
  collaborative technique's run does not depend on the encoders at all.

The cut-offs are not part of the key: every run is evaluated at ``STANDARD_KS`` plus whatever the
caller asked for, and a stored run serves a request whose cut-offs it covers (``existing(keys,
ks)``). Stored per run: aggregated metrics, per-user metrics and the top-k lists (raw ids); once
per split key, the held-out truth and the items' train popularity (novelty's ``c_i``).

Concurrency (the store base, ``core.store.base``): every operation opens a short-lived connection
(read-only for queries), so the CLI and several app sessions can share the file; one that finds the
file locked by another process retries for ``lock_timeout`` seconds (default 10,
``$MMREC_CACHE_LOCK_TIMEOUT``) and then raises ``CacheError`` naming the file. The reads a page
repeats on every rerun (``existing``, ``load_metrics``, ``truth``) are kept per process while the
file's ``DuckStore.version`` is unchanged, so a run stored by anyone is seen on the next read.
Rows of one run are written in one transaction, so a reader never sees half a run. Within one
process (Streamlit runs each browser session as a thread) connections to the file are serialised,
so two sessions never both create the schema or both store a split's truth.

Computing a run once: ``compute_lock(key)`` is the right to compute run ``key`` — a thread lock
per key within the process plus ``fcntl.flock`` on ``<cache>/runs.locks/<key>.lock`` across
processes (thread lock only where ``fcntl`` is missing). ``compute_once`` takes those locks around
a caller's computation, so a run asked for by the CLI and app sessions at once is computed once.
The kernel drops a flock when its process dies, so a lock file left behind by a killed process
does not block anyone; the files are never deleted (deleting a lock file another process is
waiting on would let two processes hold "the" lock).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: locks hold within one process only
    fcntl = None

from core.errors import LabError
from core.store.base import DuckStore, shared_lock

SCHEMA_VERSION = 2
FILE_NAME = "runs.duckdb"
#: Cut-offs every stored run is evaluated at (plus any others a caller asks for), so that a run
#: made by the CLI serves the app's charts (k = 1 … 50) and the other way round.
STANDARD_KS: tuple[int, ...] = (1, 5, 10, 20, 30, 50)
#: Run options that change a run's results (with ``tune``), hence part of its key.
RESULT_OPTIONS = ("min_rating", "photo_filter", "review_filter")
#: how long a session waits for another one computing the same run before computing it itself
WAIT_TIMEOUT_ENV = "MMREC_RUN_WAIT_TIMEOUT"
DEFAULT_WAIT_TIMEOUT = 3600.0

# One lock per lock file (computes) in this process. Weak values: an entry lives as long as
# someone holds or waits on it.
_compute_locks: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_key VARCHAR PRIMARY KEY, split_key VARCHAR, dataset VARCHAR, dataset_name VARCHAR,
    split VARCHAR, seed INTEGER, technique VARCHAR, row_params VARCHAR, label VARCHAR,
    encoders VARCHAR, encoder_ids VARCHAR, options VARCHAR, ks VARCHAR, params VARCHAR,
    timings VARCHAR, info VARCHAR, created DOUBLE);
CREATE TABLE IF NOT EXISTS metrics (
    run_key VARCHAR, encoder VARCHAR, metric VARCHAR, k INTEGER, value DOUBLE, n_users INTEGER);
CREATE TABLE IF NOT EXISTS per_user (
    run_key VARCHAR, user_id VARCHAR, metric VARCHAR, k INTEGER, value DOUBLE);
CREATE TABLE IF NOT EXISTS recs (
    run_key VARCHAR, user_id VARCHAR, rank INTEGER, item_id VARCHAR, score FLOAT);
CREATE TABLE IF NOT EXISTS truth (split_key VARCHAR, user_id VARCHAR, item_id VARCHAR);
CREATE TABLE IF NOT EXISTS items (split_key VARCHAR, item_id VARCHAR, train_users INTEGER);
"""
#: Columns of the per-run tables as the loaders return them (``technique`` = the caller's label).
METRIC_COLUMNS = ["technique", "encoder", "metric", "k", "value", "n_users"]
PER_USER_COLUMNS = ["technique", "user_id", "metric", "k", "value"]
REC_COLUMNS = ["technique", "user_id", "rank", "item_id", "score"]
#: JSON columns of ``runs`` (decoded by ``RunStore.runs_info``).
_JSON_COLUMNS = ("row_params", "encoders", "encoder_ids", "options", "ks", "params", "timings",
                 "info")


def _digest(payload: Mapping[str, Any], n: int = 24) -> str:
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:n]


# --- identity ------------------------------------------------------------------------------------
def dataset_key(spec: str, options: Any, ds: Any) -> str:
    """Identity of a loaded dataset: its spec, the load options (``core.data.LoadOptions``;
    ``None`` = the defaults) and its counts (users, items, interactions, photos), so edited files
    behind one spec give another identity; a dataset carrying its own split (``split_label``)
    adds a hash of each interaction's (user, item, label), so relabelling the split with the same
    counts never reuses runs of the old split. ``LabData.key`` (the app) and ``evaluate`` (the CLI)
    both come from here."""
    if options is None:
        from core.data import LoadOptions

        options = LoadOptions()
    opts = dataclasses.asdict(options) if dataclasses.is_dataclass(options) else dict(options)
    counts = {"users": int(ds.n_users), "items": int(ds.n_items),
              "interactions": int(len(ds.interactions)), "photos": int(len(ds.photos))}
    identity = {"spec": str(spec).strip(), "options": opts, "counts": counts}
    if getattr(ds, "has_split_labels", False):  # the file's own split (mmrec: x_label)
        from core.data.dataset import SPLIT_LABEL

        frame = ds.interactions[["user", "item", SPLIT_LABEL]].to_numpy(dtype="int64")
        identity["split_labels"] = hashlib.sha256(frame.tobytes()).hexdigest()[:16]
    return _digest(identity, 16)


def run_options(options: Mapping[str, Any] | None, tune: bool | None = None) -> dict[str, Any]:
    """The run options that change results, in one spelling: ``tune`` (from ``tune``, else
    ``options["tune"]``, else True) and those of ``RESULT_OPTIONS`` that are set."""
    options = dict(options or {})
    out: dict[str, Any] = {"tune": bool(options.get("tune", True) if tune is None else tune)}
    for name in RESULT_OPTIONS:
        value = options.get(name)
        if value is not None and value != "none":
            out[name] = float(value) if name == "min_rating" else value
    return out


def split_key(dataset: str, split: str, seed: int, options: Mapping[str, Any] | None = None) -> str:
    """Identity of a (dataset, split, seed) held-out set; ``options`` such as ``min_rating``
    change which held-out items count as relevant, so they are part of it."""
    relevant = {k: float(v) for k, v in (options or {}).items()
                if k == "min_rating" and v is not None}
    return _digest({"dataset": dataset, "split": split, "seed": int(seed), "options": relevant})


def run_key(dataset: str, split: str, seed: int, row: Mapping[str, Any],
            encoder_ids: Mapping[str, str], options: Mapping[str, Any], revision: int = 1) -> str:
    """Identity of one stored run.

    Args:
        dataset: the dataset's identity (``dataset_key``).
        row: the row's identity, ``TechniqueSpec.identity()`` (technique + params).
        encoder_ids: role -> ``Encoder.id`` of the roles the row uses only (so changing the CLIP
            encoder does not invalidate ALS).
        options: ``run_options``.
        revision: the technique's ``Recommender.revision``; from 2 on it is part of the key (so
            the keys of techniques never revised stay what they were).
    """
    identity = {
        "v": SCHEMA_VERSION, "dataset": dataset, "split": split, "seed": int(seed),
        "technique": str(row["technique"]),
        "params": dict(sorted(dict(row.get("params") or {}).items())),
        "encoders": dict(sorted(encoder_ids.items())), "options": dict(sorted(options.items())),
    }
    if revision != 1:
        identity["revision"] = int(revision)
    return _digest(identity)


def row_encoders(row: Any, encoders: Mapping[str, str | None]) -> dict[str, str]:
    """Role -> spec of the encoders ``row`` (a ``TechniqueSpec``) runs with: the run's encoders of
    the roles its technique uses (``Recommender.uses``: none for one learnt from interactions
    only), with the row's own choice (``Recommender.row_encoders``, e.g. an ``encoder`` param)
    winning. ``TechniqueUnavailable`` for an unknown technique."""
    from core.recommenders import get_technique

    cls = get_technique(row.technique)
    chosen = {r: str(s) for r, s in encoders.items() if s}
    out = {r: chosen[r] for r in sorted(cls.uses) if r in chosen}
    out.update(cls.row_encoders(row.params, chosen))
    return out


def encoder_id(spec: str, ds: Any = None, cache_root: str | Path | None = None) -> str:
    """``Encoder.id`` of ``spec`` (spec + weights identity + precision; no model is loaded, except
    to measure under ``MMREC_BF16=auto``), or ``"<spec> (unavailable)"`` when it cannot be built
    (a technique using it is then skipped, so no run is stored under that key). ``ds`` and
    ``cache_root``: the dataset and cache an ``align:`` encoder is trained on (its id holds the
    heads' key; nothing is trained to compute it). ``features:image`` / ``features:text`` (the
    dataset's own item features) need ``ds``: their id is the content hash of its matrix,
    ``features:image@sha256=<16 hex>``, so runs on two feature files never share a key; a
    dataset without them gives ``"features:image (unavailable)"`` (the techniques are then
    skipped with the reason naming the spec and the dataset)."""
    from core.encoders import create_encoder
    from core.errors import EncoderUnavailable

    try:
        return str(create_encoder(spec, dataset=ds, cache_root=cache_root).id)
    except (EncoderUnavailable, ImportError):
        return f"{spec} (unavailable)"


@dataclass(frozen=True)
class RunIdentity:
    """One planned run (``plan_runs``): its key and everything the key is made of.

    Attributes:
        label: the row's name in this request (not part of the key).
        dataset_name: the dataset's spec as people read it (the key uses ``dataset``).
        encoders / encoder_ids: role -> spec / ``Encoder.id`` of the roles the row uses.
        options: ``run_options``.
    """

    key: str
    label: str
    technique: str
    params: dict[str, Any]
    dataset: str
    dataset_name: str
    split: str
    seed: int
    options: dict[str, Any]
    encoders: dict[str, str] = field(default_factory=dict)
    encoder_ids: dict[str, str] = field(default_factory=dict)


def plan_runs(dataset: str, split: str, seed: int, rows: Iterable[Any],
              encoders: Mapping[str, str | None], options: Mapping[str, Any] | None,
              dataset_name: str = "", ds: Any = None,
              cache_root: str | Path | None = None) -> dict[str, RunIdentity]:
    """The stored-run identity of each row (label -> ``RunIdentity``): the one key function of
    the CLI and the app.

    Args:
        dataset: ``dataset_key`` of the loaded data.
        rows: ``TechniqueSpec`` rows or technique names.
        encoders: role -> spec chosen for the run (``None`` = no encoder of that role).
        options: run options (``tune`` and ``RESULT_OPTIONS`` count, see ``run_options``).
        ds, cache_root: the loaded dataset and the cache, for ``align:`` encoders' ids
            (``encoder_id``).
    """
    from core.recommenders import get_technique
    from core.recommenders.spec import as_specs

    opts = run_options(options)
    ids: dict[str, str] = {}
    out: dict[str, RunIdentity] = {}
    for row in as_specs(rows):
        used = row_encoders(row, encoders)
        for spec in used.values():
            if spec not in ids:
                ids[spec] = encoder_id(spec, ds, cache_root)
        used_ids = {r: ids[s] for r, s in used.items()}
        identity = row.identity()
        revision = get_technique(row.technique).revision
        out[row.label] = RunIdentity(
            key=run_key(dataset, split, seed, identity, used_ids, opts, revision), label=row.label,
            technique=row.technique, params=dict(identity["params"]), dataset=dataset,
            dataset_name=dataset_name, split=split, seed=int(seed), options=opts,
            encoders=used, encoder_ids=used_ids)
    return out
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
    """Rows of several stored runs; ``technique`` in every per-run frame is the label the caller
    asked for the run under (or the label it was stored under)."""

    runs: pd.DataFrame
    metrics: pd.DataFrame
    per_user: pd.DataFrame
    recs: pd.DataFrame
    truth: pd.DataFrame
    items: pd.DataFrame = field(default_factory=pd.DataFrame)


#: Run keys to load: ``{label: run_key}`` (rows come back under those labels) or a sequence of
#: keys (rows come back under the label each run was stored under).
Keys = Mapping[str, str] | Sequence[str]


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
            wait_timeout: how long ``compute_once`` waits for another session computing the same
                run (default ``$MMREC_RUN_WAIT_TIMEOUT``, else an hour).
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
    def existing(self, keys: Iterable[str], ks: Iterable[int] = ()) -> set[str]:
        """Which of ``keys`` are stored, evaluated at every cut-off in ``ks`` at least (read once
        per version of the file, ``DuckStore.remember``)."""
        keys = sorted({str(k) for k in keys})
        if not keys:
            return set()
        need = {int(k) for k in ks}

        def read() -> list[tuple[str, str]]:
            with self.connect() as con:
                return con.execute(
                    "SELECT run_key, ks FROM runs WHERE list_contains(?, run_key)", [keys]
                ).fetchall()

        rows = self.remember(("existing", tuple(keys)), read)
        return {key for key, stored in rows if need <= {int(k) for k in json.loads(stored)}}

    def _names(self, con, keys: Keys) -> pd.DataFrame:
        """``(run_key, technique)`` of the runs asked for: the caller's labels, or the stored
        ones for a plain sequence of keys."""
        if isinstance(keys, Mapping):
            pairs = [(str(k), str(label)) for label, k in keys.items()]
        else:
            pairs = [tuple(r) for r in con.execute(
                "SELECT run_key, label FROM runs WHERE list_contains(?, run_key)",
                [[str(k) for k in keys]]).fetchall()] if len(keys) else []
        return pd.DataFrame({"run_key": pd.Series([p[0] for p in pairs], dtype=object),
                             "technique": pd.Series([p[1] for p in pairs], dtype=object)})

    def _per_run(self, con, table: str, columns: list[str], keys: Keys,
                 equal: Mapping[str, Any], order: str, extra: str = "") -> pd.DataFrame:
        """Rows of per-run ``table`` for ``keys``, labelled, where each non-None ``equal``
        column matches (``technique`` matches the label) and the SQL condition ``extra`` on the
        table's columns (``t.k``, ``t.rank``, ...) holds."""
        names = self._names(con, keys)
        if names.empty:
            return pd.DataFrame(columns=columns)
        cols = ", ".join("n.technique" if c == "technique" else f"t.{c}" for c in columns)
        where, params = [], []
        for col, value in equal.items():
            if value is not None:
                where.append(f"{'n' if col == 'technique' else 't'}.{col} = ?")
                params.append(value)
        if extra:
            where.append(f"({extra})")
        con.register("_names", names)
        try:
            return con.execute(
                f"SELECT {cols} FROM {table} t JOIN _names n ON t.run_key = n.run_key"
                + (" WHERE " + " AND ".join(where) if where else "") + f" ORDER BY {order}",
                params).df()
        finally:
            con.unregister("_names")

    def _runs_rows(self, con, keys: Keys) -> pd.DataFrame:
        keys = list(keys.values()) if isinstance(keys, Mapping) else [str(k) for k in keys]
        return con.execute("SELECT * FROM runs WHERE list_contains(?, run_key) "
                           "ORDER BY technique, label", [keys]).df()

    @staticmethod
    def _split_of(runs: pd.DataFrame, split: str | None) -> str:
        if split is not None:
            return split
        found = set(runs["split_key"]) if len(runs) else set()
        return found.pop() if len(found) == 1 else ""

    def load(self, keys: Keys, split: str | None = None,
             ks: Sequence[int] | None = None) -> StoredRuns:
        """Every row of the runs ``keys`` (missing keys are ignored), with the truth and items of
        ``split`` (default: the split key the runs share); with ``ks``, only the metrics and
        per-user values at those cut-offs and the top ``max(ks)`` of each list (filtered in
        DuckDB: a big run's other cut-offs never reach memory)."""
        at_k = rank = ""
        if ks:
            at_k = f"t.k IN ({', '.join(str(int(k)) for k in ks)})"
            rank = f"t.rank <= {max(int(k) for k in ks)}"
        with self.connect() as con:
            runs = self._runs_rows(con, keys)
            skey = self._split_of(runs, split)
            return StoredRuns(
                runs=runs,
                metrics=self._per_run(con, "metrics", METRIC_COLUMNS, keys, {},
                                      "n.technique, t.metric, t.k", at_k),
                per_user=self._per_run(con, "per_user", PER_USER_COLUMNS, keys, {},
                                       "n.technique, t.metric, t.k, t.user_id", at_k),
                recs=self._per_run(con, "recs", REC_COLUMNS, keys, {},
                                   "n.technique, t.user_id, t.rank", rank),
                truth=self._truth(con, skey),
                items=con.execute("SELECT item_id, train_users FROM items WHERE split_key = ? "
                                  "ORDER BY rowid", [skey]).df())

    def load_metrics(self, keys: Keys, split: str | None = None) -> StoredRuns:
        """Only the small parts of the runs ``keys``: metrics, run rows and the split's truth
        (``per_user`` and ``recs`` come back empty; query them with ``query_per_user`` /
        ``query_recs`` / ``query_user``). Read once per version of the file
        (``DuckStore.remember``): the frames are shared, never modify them."""
        def read() -> tuple[pd.DataFrame, pd.DataFrame]:
            with self.connect() as con:
                return (self._runs_rows(con, keys),
                        self._per_run(con, "metrics", METRIC_COLUMNS, keys, {},
                                      "n.technique, t.metric, t.k"))

        runs, metrics = self.remember(("metrics", _hashable(keys)), read)
        empty = pd.DataFrame()
        return StoredRuns(runs, metrics, empty, empty, self.truth(self._split_of(runs, split)))

    def truth(self, split: str) -> pd.DataFrame:
        """The held-out (user_id, item_id) pairs of split key ``split``, sorted, read once per
        version of the file (shared: never modify it)."""
        def read() -> pd.DataFrame:
            with self.connect() as con:
                return self._truth(con, split)

        return self.remember(("truth", split), read, keep=32)

    @staticmethod
    def _truth(con, skey: str) -> pd.DataFrame:
        return con.execute("SELECT user_id, item_id FROM truth WHERE split_key = ? "
                           "ORDER BY user_id, item_id", [skey]).df()

    def query_per_user(self, keys: Keys, metric: str | None = None, k: int | None = None,
                       user_id: str | None = None, technique: str | None = None) -> pd.DataFrame:
        """Per-user rows (technique, user_id, metric, k, value) of runs ``keys``, filtered in
        DuckDB by whichever of ``metric``, ``k``, ``user_id``, ``technique`` (label) is given."""
        with self.connect() as con:
            return self._per_run(
                con, "per_user", PER_USER_COLUMNS, keys,
                {"metric": metric, "k": k, "user_id": user_id, "technique": technique},
                "n.technique, t.metric, t.k, t.user_id")

    def query_recs(self, keys: Keys, user_id: str | None = None,
                   technique: str | None = None, item_id: str | None = None) -> pd.DataFrame:
        """Top-k rows (technique, user_id, rank, item_id, score) of runs ``keys``, optionally of
        one user, technique (label) and/or item."""
        with self.connect() as con:
            return self._per_run(con, "recs", REC_COLUMNS, keys,
                                 {"user_id": user_id, "technique": technique,
                                  "item_id": item_id},
                                 "n.technique, t.user_id, t.rank")

    def query_user(self, keys: Keys, user_id: str, k: int | None = None
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """One user's rows of runs ``keys`` in one connection: the per-user rows (as
        ``query_per_user``, at cut-off ``k`` or every one) and the top-k rows (as
        ``query_recs``)."""
        with self.connect() as con:
            per_user = self._per_run(con, "per_user", PER_USER_COLUMNS, keys,
                                     {"user_id": user_id, "k": k},
                                     "n.technique, t.metric, t.k, t.user_id")
            recs = self._per_run(con, "recs", REC_COLUMNS, keys, {"user_id": user_id},
                                 "n.technique, t.user_id, t.rank")
        return per_user, recs

    def list_runs(self) -> pd.DataFrame:
        """One row per stored run, oldest first: run_key, dataset_name, dataset, split, seed,
        label, technique, encoder_ids (JSON), options (JSON), ks (JSON), created (epoch s)."""
        with self.connect() as con:
            return con.execute(
                "SELECT run_key, dataset_name, dataset, split, seed, label, technique, "
                "encoder_ids, options, ks, created FROM runs ORDER BY created, run_key"
            ).df()

    def resolve(self, prefix: str) -> str:
        """The full key of the one stored run whose key starts with ``prefix``; ``LabError``
        when none or several do."""
        prefix = str(prefix).strip()
        with self.connect() as con:
            found = [r[0] for r in con.execute(
                "SELECT run_key FROM runs WHERE starts_with(run_key, ?) ORDER BY run_key",
                [prefix]).fetchall()] if prefix else []
        if not found:
            raise LabError(f"{self.path}: no stored run has a key starting with {prefix!r} "
                           "(list them with `python -m core runs list`)")
        if len(found) > 1:
            raise LabError(f"{self.path}: {len(found)} stored runs have keys starting with "
                           f"{prefix!r} ({', '.join(k[:16] for k in found[:4])}, …); give more "
                           "of the key")
        return found[0]

    def runs_info(self, keys: Keys) -> dict[str, dict[str, Any]]:
        """Run key -> the run's row with its JSON columns decoded (missing keys are left out)."""
        with self.connect() as con:
            runs = self._runs_rows(con, keys)
        out = {}
        for row in runs.to_dict(orient="records"):
            for col in _JSON_COLUMNS:
                row[col] = json.loads(row[col]) if row.get(col) else {}
            out[row["run_key"]] = row
        return out

    # --- writes ------------------------------------------------------------------------------
    def save(
        self,
        run: RunIdentity,
        *,
        split_key_: str,
        ks: Sequence[int],
        metrics: pd.DataFrame,
        per_user: pd.DataFrame,
        recs: pd.DataFrame,
        params: Mapping[str, Any] | None = None,
        timings: Mapping[str, Any] | None = None,
        info: Mapping[str, Any] | None = None,
        truth: pd.DataFrame | None = None,
        items: pd.DataFrame | None = None,
    ) -> None:
        """Store one row's run under ``run.key`` (replacing it), in one transaction.

        Args:
            ks: the cut-offs ``metrics`` were computed at (``recs`` hold the top ``max(ks)``).
            metrics: columns encoder, metric, k, value, n_users.
            per_user: columns user_id, metric, k, value.
            recs: columns user_id, rank, item_id, score.
            params: the hyperparameters used (incl. validation's picks); timings: fit_s, eval_s.
            info: run details (JSON-serialisable): split sizes, counts, protocol audit, ...
            truth: columns user_id, item_id; items: columns item_id, train_users; each stored
                once per ``split_key_``.
        """
        frames = {
            "metrics": _frame(metrics, METRIC_COLUMNS[1:], run.key),
            "per_user": _frame(per_user, PER_USER_COLUMNS[1:], run.key),
            "recs": _frame(recs, REC_COLUMNS[1:], run.key),
        }
        row = [
            run.key, split_key_, run.dataset, run.dataset_name, run.split, int(run.seed),
            run.technique, _json(run.params), run.label, _json(run.encoders),
            _json(run.encoder_ids), _json(run.options), json.dumps(sorted(int(k) for k in ks)),
            _json(params or {}), _json(timings or {}), json.dumps(info or {}, default=str),
            time.time(),
        ]
        with self.connect(write=True) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                for table in ("runs", "metrics", "per_user", "recs"):
                    con.execute(f"DELETE FROM {table} WHERE run_key = ?", [run.key])
                con.execute(f"INSERT INTO runs VALUES ({', '.join('?' * len(row))})", row)
                for table, frame in frames.items():
                    _insert(con, table, frame)
                for table, frame, cols in (("truth", truth, ["user_id", "item_id"]),
                                           ("items", items, ["item_id", "train_users"])):
                    if frame is None:
                        continue
                    have = con.execute(f"SELECT count(*) FROM {table} WHERE split_key = ?",
                                       [split_key_]).fetchall()[0][0]
                    if not have:
                        part = pd.DataFrame({"split_key": split_key_, **{
                            c: (frame[c].astype(str) if c.endswith("_id") else frame[c])
                            .to_numpy() for c in cols}})
                        _insert(con, table, part)
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise

    def compute_once(
        self,
        keys: Mapping[str, str],
        compute: Callable[[list[str]], tuple[list[str], dict[str, str]]],
        ks: Iterable[int] = (),
        on_wait: Callable[[str, float], None] | None = None,
    ) -> tuple[list[str], dict[str, str], list[str]]:
        """Have the runs ``keys`` (label -> run key) computed and stored, each once however many
        sessions (threads or processes) ask for it at the same time.

        ``compute(labels)`` computes and stores the runs of ``labels`` and returns (computed
        labels, skipped label -> reason). Runs nobody else is computing are computed under their
        ``compute_lock``; for the others this waits (holding no lock, so no deadlock; calling
        ``on_wait(label, seconds)`` about once a second), then reloads what the other session
        stored, computing a run itself only if the other did not store it (it failed or skipped
        it) or after ``wait_timeout`` seconds. A run counts as stored when it covers ``ks``.
        Returns (computed, skipped, waited: the labels another session computed).
        """
        ks = list(ks)
        labels: list[str] = []  # one label per key (the first), in the caller's order
        for label, key in keys.items():
            if key not in {keys[t] for t in labels}:
                labels.append(label)
        computed: list[str] = []
        skipped: dict[str, str] = {}

        def run(todo: list[str]) -> None:
            done, skip = compute(todo)
            computed.extend(done)
            skipped.update(skip)

        def unstored(some: list[str]) -> list[str]:
            have = self.existing([keys[t] for t in some], ks) if some else set()
            return [t for t in some if keys[t] not in have]

        locks = {t: self.compute_lock(keys[t]) for t in labels}
        # 1. claim what nobody is computing; another session may have stored it meanwhile
        mine = [t for t in labels if locks[t].acquire(timeout=0)]
        try:
            todo = unstored(mine)
            if todo:
                run(todo)
        finally:
            for t in mine:
                locks[t].release()
        busy = [t for t in labels if t not in mine]
        if not busy:
            return computed, skipped, []

        # 2. wait for the other session (holding nothing), then reload what it stored
        held = []
        try:
            for t in sorted(busy, key=lambda t: keys[t]):  # one order for every session
                wait = None if on_wait is None else (lambda s, t=t: on_wait(t, s))
                if locks[t].acquire(timeout=self.wait_timeout, on_wait=wait):
                    held.append(t)
            todo = unstored(busy)  # what the other did not store (failed, skipped, too slow)
            if todo:
                run(todo)
        finally:
            for t in held:
                locks[t].release()
        return computed, skipped, [t for t in busy if t not in todo]

    def clear(self) -> int:
        """Delete every stored run; returns how many there were."""
        with self.connect(write=True) as con:
            n = con.execute("SELECT count(*) FROM runs").fetchall()[0][0]
            for table in ("runs", "metrics", "per_user", "recs", "truth", "items"):
                con.execute(f"DELETE FROM {table}")
        return int(n)


def _hashable(keys: Keys) -> tuple:
    """``keys`` as a memo key: label -> key pairs, or the keys in order."""
    if isinstance(keys, Mapping):
        return ("labels", *((str(label), str(key)) for label, key in keys.items()))
    return ("keys", *(str(k) for k in keys))


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _insert(con, table: str, frame: pd.DataFrame) -> None:
    con.register("_incoming", frame)
    try:
        con.execute(f"INSERT INTO {table} SELECT * FROM _incoming")
    finally:
        con.unregister("_incoming")


def _frame(df: pd.DataFrame, columns: list[str], key: str) -> pd.DataFrame:
    """``df`` restricted to ``columns`` (missing ones filled with nulls), with ``run_key`` first
    and ids as strings (nulls kept), in the table's column order. Vectorised: a run of a
    million-user dataset has millions of rows."""
    n = len(df)
    data: dict[str, Any] = {"run_key": pd.Series(key, index=range(n), dtype="string")}
    for col in columns:
        if col not in df.columns:
            data[col] = pd.Series(None, index=range(n), dtype=object)
        elif col in ("user_id", "item_id", "encoder", "metric"):
            data[col] = pd.Series(df[col].to_numpy(), index=range(n)).astype("string")
        else:
            data[col] = df[col].to_numpy()
    return pd.DataFrame(data)
