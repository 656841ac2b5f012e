"""Encoding the embedding cache's misses on a Ray cluster (``python -m core embed --engine ray``).

``RayEngine`` is a ``core.store.cache.ComputeEngine``: ``get_or_compute`` finds the misses as
always (content hashes the cache lacks) and commits what the engine yields, one transaction per
shard, through the cache's own insert path. What the engine adds:

- **Shards.** The misses (texts longest first, as in process) are cut into shards of
  ``rows_per_shard`` inputs. A Ray Data pipeline (``from_items`` → ``map_batches`` over a fixed
  pool of actors, one shard per call) encodes them on the workers; each actor builds the encoder
  from its spec once, with the driver's precision, and checks that its ``Encoder.id`` is the
  driver's (same weights on every node). Encoding runs ``local_batches``, the in-process engine.
- **Files, then the cache.** The driver writes each shard it receives to
  ``<cache>/shards/<encoder>/<modality>/<digest>.parquet`` (``hash``, ``vec``, ``ok``, ``error``
  per row; written under a temporary name, then renamed), yields it to the store and deletes it
  once committed. Only the driver touches DuckDB.
- **Resume.** A shard left on disk (written, not imported: the job was killed in between) is
  imported first on the next run; its inputs are not sent to the cluster again.
- **Progress.** Counted ``embed`` events "SPEC images: shards written" and "…: shards imported"
  beside the store's own bar; one uncounted event naming the cluster and the pool.

Ray is imported only here, inside ``RayEngine``; without it ``RayUnavailable`` says to
``pip install -e '.[distributed]'``. Pool sizes come from the cluster (``plan_pool``) unless given.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.errors import CacheError, EncoderUnavailable, LabError
from core.progress import Progress, ProgressEvent
from core.store.cache import EmbeddingStore, EncodedBatch, local_batches

__all__ = ["INSTALL_HINT", "SHARDS_DIR", "PoolPlan", "RayEngine", "RayUnavailable", "plan_pool",
           "shard_folder"]

#: what to run when ray is missing
INSTALL_HINT = "pip install -e '.[distributed]'"
#: folder of the cache directory holding shards not imported yet
SHARDS_DIR = "shards"
#: CPUs per actor on a cluster without GPUs (torch threads of one model)
CPUS_PER_ACTOR = 4
#: shards per actor a default shard size aims at (load balance), and its bounds
SHARDS_PER_ACTOR = 4
MIN_ROWS_PER_SHARD, MAX_ROWS_PER_SHARD = 32, 1024


class RayUnavailable(LabError):
    """``--engine ray`` cannot run: the ray package is missing, or the pool does not fit."""


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401 - the ray[data] extra, not only ray core
    except ImportError as exc:
        raise RayUnavailable(
            f"--engine ray needs the ray package with Ray Data (ray[data] >= 2.9), which is not "
            f"installed here ({exc}): {INSTALL_HINT}, on this machine and every worker node"
        ) from None
    return ray


# --- the pool -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PoolPlan:
    """How many actors encode, what each reserves, and how many inputs go into one shard."""

    actors: int
    rows_per_shard: int
    num_cpus: float | None  # per actor (None: Ray's default, used with GPUs)
    num_gpus: float  # per actor: 1 on GPU clusters, else 0

    def describe(self) -> str:
        each = "1 GPU" if self.num_gpus else f"{self.num_cpus:g} CPU"
        plural = "s" if self.actors != 1 else ""
        return f"{self.actors} actor{plural} ({each} each), shards of ≤ {self.rows_per_shard}"


def plan_pool(nodes: Sequence[dict], n_rows: int, actors: int | None = None,
              rows_per_shard: int | None = None) -> PoolPlan:
    """The actor pool for ``n_rows`` inputs on a cluster whose alive nodes have the resources
    ``nodes`` (``{"CPU": 16, "GPU": 2, ...}`` each).

    With GPUs: one actor per GPU (``num_gpus=1``). Without: actors of ``CPUS_PER_ACTOR`` CPUs
    (fewer on smaller nodes), as many as fit on the nodes; ``actors`` given: the most CPUs each
    that still lets them all fit. Shards: enough for ``SHARDS_PER_ACTOR`` per actor, between
    ``MIN_ROWS_PER_SHARD`` and ``MAX_ROWS_PER_SHARD`` inputs, unless ``rows_per_shard`` is given.
    Raises ``RayUnavailable`` when the actors asked for cannot all be placed.
    """
    if actors is not None and actors < 1 or rows_per_shard is not None and rows_per_shard < 1:
        raise RayUnavailable("--ray-actors and --ray-batch must be at least 1")
    gpus = sum(int(n.get("GPU", 0)) for n in nodes)
    cpus = [int(n.get("CPU", 0)) for n in nodes]
    if gpus:
        if actors is not None and actors > gpus:
            raise RayUnavailable(f"--ray-actors {actors}: the cluster has {gpus} GPUs, one per "
                                 "actor")
        count, num_cpus, num_gpus = actors or gpus, None, 1.0
    else:
        def fit(each: int) -> int:
            return sum(c // each for c in cpus)

        each = max(1, min(CPUS_PER_ACTOR, max(cpus, default=0)))
        if actors is not None:
            each = max(1, min(each, sum(cpus) // actors))
            while each > 1 and fit(each) < actors:
                each -= 1
            if fit(each) < actors:
                raise RayUnavailable(f"--ray-actors {actors}: the cluster has {sum(cpus)} CPUs, "
                                     "at least one per actor")
        count, num_cpus, num_gpus = actors or max(1, fit(each)), float(each), 0.0
    if rows_per_shard is None:
        rows_per_shard = min(MAX_ROWS_PER_SHARD, max(
            MIN_ROWS_PER_SHARD, math.ceil(n_rows / (SHARDS_PER_ACTOR * count))))
    return PoolPlan(count, rows_per_shard, num_cpus, num_gpus)


# --- shard files ----------------------------------------------------------------------------------
def shard_folder(cache_root: str | os.PathLike, encoder_id: str, modality: str) -> Path:
    """``<cache>/shards/<readable id>-<8 hex of the id>/<modality>``."""
    digest = hashlib.blake2b(encoder_id.encode(), digest_size=4).hexdigest()
    readable = re.sub(r"[^A-Za-z0-9.+-]+", "_", encoder_id).strip("_")[:60]
    return Path(cache_root) / SHARDS_DIR / f"{readable}-{digest}" / modality


def _write_shard(folder: Path, meta: dict[str, str], hashes: list[str], vecs: np.ndarray,
                 bad: list[tuple[str, str]]) -> Path:
    """One shard file (rows: vectors, then bad inputs), written under a temporary name and
    renamed, so a reader sees a whole file or none."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    dim = int(vecs.shape[1])
    all_hashes = list(hashes) + [h for h, _ in bad]
    flat = np.concatenate([np.ascontiguousarray(vecs, np.float32).ravel(),
                           np.zeros(len(bad) * dim, np.float32)])
    table = pa.table({
        "hash": pa.array(all_hashes, pa.string()),
        "vec": pa.FixedSizeListArray.from_arrays(pa.array(flat), dim),
        "ok": pa.array([True] * len(hashes) + [False] * len(bad)),
        "error": pa.array([None] * len(hashes) + [r for _, r in bad], pa.string()),
    }).replace_schema_metadata({**meta, "dim": str(dim)})
    name = hashlib.blake2b("\n".join(sorted(all_hashes)).encode(), digest_size=12).hexdigest()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.parquet"
    tmp = folder / f".{name}.{socket.gethostname()}-{os.getpid()}.tmp"
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def _read_shard(path: Path, encoder_id: str, modality: str) -> EncodedBatch:
    """A shard file as the batch to commit; ``CacheError`` when it is not this encoder's."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    if (meta.get("encoder"), meta.get("modality")) != (encoder_id, modality):
        raise CacheError(
            f"{path}: a shard of {meta.get('encoder')} ({meta.get('modality')}s) in the folder "
            f"of {encoder_id} ({modality}s); move it away and run again")
    dim = int(meta["dim"])
    ok = np.asarray(table.column("ok").to_pylist(), dtype=bool)
    hashes = table.column("hash").to_pylist()
    flat = table.column("vec").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    vecs = np.asarray(flat, np.float32).reshape(len(hashes), dim)
    errors = table.column("error").to_pylist()
    return ([h for h, good in zip(hashes, ok) if good], vecs[ok],
            [(h, e or "not encoded") for h, e, good in zip(hashes, errors, ok) if not good])


def _shard_files(folder: Path) -> list[Path]:
    """Shards written and not imported yet (temporary files of dead writers are removed)."""
    if not folder.is_dir():
        return []
    host = socket.gethostname()
    for tmp in folder.glob(".*.tmp"):
        writer = tmp.name.rsplit(".", 2)[-2]
        name, _, pid = writer.rpartition("-")
        if name == host and pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)
    return sorted(folder.glob("*.parquet"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- what runs on the workers ---------------------------------------------------------------------
class EncodeShard:
    """The Ray Data actor: builds the encoder once (from ``spec``, checked against the driver's
    ``encoder_id``), then encodes one shard per call with ``local_batches``.

    Input rows: ``shard``, ``hashes``, ``payloads``. Output, one row per shard: ``shard``,
    ``good`` (hashes with vectors), ``vecs`` (their float32 rows as bytes), ``dim``, ``bad_hash``
    / ``bad_reason``, ``worker`` (host), and ``fatal`` / ``fatal_kind``: a ``LabError`` raised
    here (missing weights, another encoder id), which the driver raises again.
    """

    def __init__(self, spec: str, encoder_id: str, modality: str,
                 batch_size: int | None) -> None:
        self.spec, self.encoder_id, self.modality = spec, encoder_id, modality
        self.batch_size = batch_size
        self.host = socket.gethostname()
        self._encoder = None

    def _load(self):
        if self._encoder is None:
            from core.encoders import create_encoder

            enc = create_encoder(self.spec)
            enc.load()
            if enc.id != self.encoder_id:
                raise EncoderUnavailable(
                    f"{self.spec} is {enc.id} on Ray worker {self.host} but {self.encoder_id} on "
                    "the driver: every node needs the same weights (hub cache or checkpoint file "
                    "at the same path) and the same MMREC_BF16")
            self._encoder = enc
        return self._encoder

    def __call__(self, batch):
        import pyarrow as pa

        rows = []
        for shard, hashes, payloads in zip(batch.column("shard").to_pylist(),
                                           batch.column("hashes").to_pylist(),
                                           batch.column("payloads").to_pylist()):
            row = {"shard": shard, "good": [], "vecs": b"", "dim": 0, "bad_hash": [],
                   "bad_reason": [], "worker": self.host, "fatal": None, "fatal_kind": None}
            try:
                enc = self._load()
                good, parts, bad = [], [], []
                for hs, vecs, bad_rows in local_batches(enc, self.modality, hashes, payloads,
                                                        self.batch_size):
                    if hs:
                        good.extend(hs)
                        parts.append(np.asarray(vecs, np.float32))
                    bad.extend(bad_rows)
                dim = int(enc.dim or (parts[0].shape[1] if parts else 0))
                vecs = np.concatenate(parts) if good else np.zeros((0, dim), np.float32)
                row.update(good=good, vecs=vecs.tobytes(), dim=int(vecs.shape[1]),
                           bad_hash=[h for h, _ in bad], bad_reason=[r for _, r in bad])
            except LabError as exc:
                row.update(fatal=f"on Ray worker {self.host}: {exc}",
                           fatal_kind=type(exc).__name__)
            rows.append(row)
        return pa.Table.from_pylist(rows, schema=_out_schema())


def _out_schema():
    """``EncodeShard``'s output columns (a function: pyarrow is imported on first use)."""
    import pyarrow as pa

    return pa.schema([
        ("shard", pa.int64()), ("good", pa.list_(pa.string())), ("vecs", pa.large_binary()),
        ("dim", pa.int64()), ("bad_hash", pa.list_(pa.string())),
        ("bad_reason", pa.list_(pa.string())), ("worker", pa.string()),
        ("fatal", pa.string()), ("fatal_kind", pa.string())])


def _raise_fatal(kind: str | None, message: str):
    import core.errors

    cls = getattr(core.errors, kind or "", None)
    if not (isinstance(cls, type) and issubclass(cls, LabError)):
        cls = LabError
    raise cls(message)


# --- the engine -----------------------------------------------------------------------------------
@dataclass
class RayEngine:
    """Encode the cache's misses on a Ray cluster (see the module docstring).

    Args:
        address: the cluster to join (``HEAD:6379``, ``auto``, or ``ray://…``); None: the Ray
            this process already joined, else ``$RAY_ADDRESS``, else a local Ray started here
            (with ``num_cpus``, default all cores) and stopped by ``close()``.
        rows_per_shard: inputs per shard (one Ray batch, one file, one cache transaction);
            None: from the cluster's size (``plan_pool``).
        actors: encoder actors, one model each; None: one per GPU, else per ``CPUS_PER_ACTOR``.
        num_cpus: CPUs of a local Ray started here.

    Use it as a context manager (or call ``close()``); ``stats`` counts, over its life, shards
    written and imported, shards and rows found from an earlier run, and rows encoded.
    """

    address: str | None = None
    rows_per_shard: int | None = None
    actors: int | None = None
    num_cpus: int | None = None
    stats: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("shards_written", "shards_imported", "resumed_shards", "resumed_rows", "encoded_rows",
         "bad_rows"), 0))
    pools: list[str] = field(default_factory=list)
    _ray: object = field(default=None, repr=False)
    _started: bool = field(default=False, repr=False)
    _cluster: str = field(default="", repr=False)

    def __enter__(self) -> RayEngine:
        _import_ray()  # a missing package fails now, not after hashing every input
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the local Ray this engine started (a cluster it joined keeps running)."""
        if self._started and self._ray is not None:
            self._ray.shutdown()
        self._ray, self._started = None, False

    def summary(self) -> list[str]:
        """Lines for ``EmbedReport``: the cluster and pools used, and the shard counts."""
        s = self.stats
        if not s["shards_written"] and not s["resumed_shards"]:
            return ["ray: nothing was missing, the cluster was not used"]
        out = [f"ray: {self._cluster}: {pool}" for pool in self.pools]
        resumed = (f" ({s['resumed_shards']} left by an earlier run: {s['resumed_rows']} inputs "
                   "not encoded again)" if s["resumed_shards"] else "")
        out.append(f"ray: {s['shards_written']} shards written, {s['shards_imported']} imported"
                   f"{resumed}; {s['encoded_rows']} inputs encoded on the cluster, "
                   f"{s['bad_rows']} bad")
        return out

    # --- Ray -------------------------------------------------------------------------------------
    def _connect(self):
        if self._ray is not None:
            return self._ray
        ray = _import_ray()
        if not ray.is_initialized():
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            address = self.address or os.environ.get("RAY_ADDRESS") or None
            # workers' own output (model loading bars) stays in the session's logs
            # (/tmp/ray/session_latest/logs on each node); their errors come back here
            quiet = {"logging_level": logging.WARNING, "log_to_driver": False}
            if address:
                ray.init(address=address, **quiet)
                where = f"Ray cluster at {address}"
            else:
                ray.init(num_cpus=self.num_cpus, include_dashboard=False, **quiet)
                where = "local Ray"
            self._started = True
        else:
            where = "the Ray this process joined"
        self._ray = ray
        nodes = self._nodes()
        cpus = sum(int(n.get("CPU", 0)) for n in nodes)
        gpus = sum(int(n.get("GPU", 0)) for n in nodes)
        self._cluster = (f"{where} ({len(nodes)} node{'s' if len(nodes) != 1 else ''}, "
                         f"{cpus} CPUs, {gpus} GPUs)")
        return ray

    def _nodes(self) -> list[dict]:
        return [n.get("Resources", {}) for n in self._ray.nodes() if n.get("Alive")]

    # --- ComputeEngine ---------------------------------------------------------------------------
    def batches(self, store: EmbeddingStore, encoder, modality: str, misses: list[str],
                payloads: list, batch_size: int | None,
                progress: Progress | None) -> Iterator[EncodedBatch]:
        """Shards left by an earlier run first, then the rest encoded on the cluster, each
        shard yielded once written and deleted once the store has committed it."""
        from core.encoders import KINDS

        if getattr(encoder, "kind", "") not in KINDS:
            raise EncoderUnavailable(
                f"--engine ray rebuilds the encoder from its spec on every worker, which "
                f"{encoder.spec} cannot be: use a {', '.join(k + ':' for k in KINDS)} spec")
        label = f"{encoder.spec} {modality}s"
        folder = shard_folder(store.root, encoder.id, modality)
        pending, covered = self._left_shards(folder, label, progress)
        todo = [i for i, h in enumerate(misses) if h not in covered]
        rows: list[dict] = []
        if todo:
            ray = self._connect()
            plan = plan_pool(self._nodes(), len(todo), self.actors, self.rows_per_shard)
            rows = _shard_rows(modality, [misses[i] for i in todo],
                               [payloads[i] for i in todo], plan.rows_per_shard)
            pool = f"{label}: {len(todo)} inputs in {len(rows)} shards, {plan.describe()}"
            self.pools.append(pool)
            _emit(progress, ProgressEvent("embed", None, message=f"ray: {self._cluster}: {pool}"))
        imported = _Counter(progress, f"{label}: shards imported", len(pending) + len(rows))
        for path in pending:
            try:
                batch = _read_shard(path, encoder.id, modality)
            except FileNotFoundError:  # another job imported it meanwhile
                imported.step()
                continue
            yield batch
            path.unlink(missing_ok=True)
            self.stats["resumed_shards"] += 1
            self.stats["resumed_rows"] += len(batch[0]) + len(batch[2])
            self.stats["shards_imported"] += 1
            imported.step()
        if not rows:
            return
        written = _Counter(progress, f"{label}: shards written", len(rows))
        named = dict(zip(misses, payloads)) if modality == "image" else {}
        meta = {"encoder": encoder.id, "spec": encoder.spec, "modality": modality}
        ds = ray.data.from_items(rows).map_batches(
            EncodeShard, batch_size=1, batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=plan.actors),
            fn_constructor_kwargs={"spec": _worker_spec(encoder), "encoder_id": encoder.id,
                                   "modality": modality, "batch_size": batch_size},
            **({"num_gpus": plan.num_gpus} if plan.num_gpus else {"num_cpus": plan.num_cpus}))
        with _quiet_ray_data(ray):
            for out in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                for row in out.to_pylist():
                    if row["fatal"]:
                        _raise_fatal(row["fatal_kind"], row["fatal"])
                    good = row["good"]
                    vecs = np.frombuffer(row["vecs"], np.float32).reshape(len(good), row["dim"])
                    # reasons name the file as the caller gave it, as in process
                    bad = [(h, r.replace(os.path.abspath(named[h]), str(named[h])))
                           for h, r in zip(row["bad_hash"], row["bad_reason"])]
                    path = _write_shard(folder, meta, good, vecs, bad)
                    self.stats["shards_written"] += 1
                    self.stats["encoded_rows"] += len(good)
                    self.stats["bad_rows"] += len(bad)
                    written.step()
                    yield good, vecs, bad
                    path.unlink(missing_ok=True)
                    self.stats["shards_imported"] += 1
                    imported.step()

    def _left_shards(self, folder: Path, label: str,
                 progress: Progress | None) -> tuple[list[Path], set[str]]:
        """Shards of an earlier run still on disk, and the hashes they hold."""
        found: list[Path] = []
        covered: set[str] = set()
        for path in _shard_files(folder):
            try:
                covered.update(_read_hashes(path))
                found.append(path)
            except FileNotFoundError:  # another job imported it meanwhile
                continue
            except Exception as exc:  # noqa: BLE001 - a damaged file: its inputs are encoded again
                _emit(progress, ProgressEvent("embed", None, message=(
                    f"{label}: unreadable shard {path} removed ({exc}); its inputs are encoded "
                    "again"), warning=True))
                path.unlink(missing_ok=True)
        return found, covered


def _shard_rows(modality: str, hashes: list[str], payloads: list, step: int) -> list[dict]:
    """The pipeline's input, one row per shard of ``step`` inputs: texts longest first (as in
    process: less padding), images in order, by absolute path (a worker's working directory is
    not the driver's)."""
    if modality == "text":
        order = sorted(range(len(hashes)), key=lambda i: -len(payloads[i]))
        hashes, payloads = [hashes[i] for i in order], [payloads[i] for i in order]
        payloads = [str(p) for p in payloads]
    else:
        payloads = [os.path.abspath(p) for p in payloads]
    return [{"shard": k, "hashes": hashes[s:s + step], "payloads": payloads[s:s + step]}
            for k, s in enumerate(range(0, len(hashes), step))]


class _Counter:
    """A counted ``embed`` job: ``done = 0`` now, one more per ``step()`` (nothing if empty)."""

    def __init__(self, progress: Progress | None, message: str, total: int) -> None:
        self.progress, self.message, self.total, self.done = progress, message, total, 0
        if total:
            _emit(progress, ProgressEvent("embed", None, 0, total, message))

    def step(self) -> None:
        self.done += 1
        _emit(self.progress, ProgressEvent("embed", None, self.done, self.total, self.message))


def _read_hashes(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    return pq.read_table(path, columns=["hash"]).column("hash").to_pylist()


def _worker_spec(encoder) -> str:
    """The spec workers build: the driver's, pinned to the precision the driver resolved (so
    ``MMREC_BF16`` on a worker, or ``auto`` measuring there, cannot change the vectors)."""
    base, precision = getattr(encoder, "base_spec", None), getattr(encoder, "precision", None)
    if base and precision in ("fp32", "bf16"):
        return f"{base}+{precision}"
    return encoder.spec


@contextmanager
def _quiet_ray_data(ray):
    """Ray Data's own progress bars and start/finish lines off while ours are drawn."""
    ctx = ray.data.DataContext.get_current()
    logger = logging.getLogger("ray.data")
    saved = (ctx.enable_progress_bars, getattr(ctx, "print_on_execution_start", None),
             logger.level)
    ctx.enable_progress_bars = False
    if saved[1] is not None:
        ctx.print_on_execution_start = False
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        ctx.enable_progress_bars = saved[0]
        if saved[1] is not None:
            ctx.print_on_execution_start = saved[1]
        logger.setLevel(saved[2])


def _emit(progress: Progress | None, event: ProgressEvent) -> None:
    if progress:
        progress(event)
