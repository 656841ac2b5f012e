"""The DuckDB embedding cache ``<cache>/embeddings.duckdb``, filled only by ``get_or_compute``.

Schema (version ``SCHEMA_VERSION``, recorded in ``meta``):

- ``vectors_<d>(encoder, modality, hash, vec FLOAT[d])`` — one table per vector size, primary key
  ``(encoder, modality, hash)``: ``encoder`` is the encoder's id (spec + weights identity +
  precision, e.g. ``text:all-MiniLM-L6-v2@sha256=…+fp32``, so fp32 and bf16 rows never mix),
  ``hash`` the BLAKE2b-128 of the image file's bytes or of the UTF-8 text.
- ``encoders(encoder, spec, dim, untrained, shared_space)`` — what each id is.
- ``bad_inputs(modality, hash, reason)`` — files that could not be decoded (not retried).
- ``dataset_map(dataset, kind, key, hash, path, size, mtime_ns)`` — per dataset, which photo id,
  review id or item id has which content hash (photos also remember size and mtime, so a warm run
  does not re-read unchanged files).

Concurrency model (the store base, ``core.store.base``): the file is created atomically and
opened for one short transaction at a time: lookups read-only, each finished batch of new vectors
in one read-write transaction (committed, so an interrupted job keeps every finished batch and
never leaves a torn row). Model inference happens with the file closed. If another process holds
the file, we retry with backoff for ``lock_timeout`` seconds (``$MMREC_CACHE_LOCK_TIMEOUT``,
default 120) and then raise ``CacheError`` ("another process is writing the embedding cache; wait
for it"). Two writers therefore interleave batch by batch; a duplicate vector is ignored
(``ON CONFLICT DO NOTHING``), so the result is the same as one writer's. The batch size is an
argument of each encoding call, never set on the encoder, which every session of the process
shares.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Protocol

import numpy as np

from core.progress import Progress, ProgressEvent
from core.store.base import LOCK_TIMEOUT_ENV, DuckStore

SCHEMA_VERSION = 1
DB_NAME = "embeddings.duckdb"
#: texts per committed transaction (an interrupted job loses at most this many)
TEXT_COMMIT_ROWS = 256


_SCHEMA = """
CREATE TABLE IF NOT EXISTS encoders(
    encoder VARCHAR PRIMARY KEY, spec VARCHAR, dim INTEGER, untrained BOOLEAN,
    shared_space BOOLEAN);
CREATE TABLE IF NOT EXISTS bad_inputs(
    modality VARCHAR, hash VARCHAR, reason VARCHAR, PRIMARY KEY (modality, hash));
CREATE TABLE IF NOT EXISTS dataset_map(
    dataset VARCHAR, kind VARCHAR, key VARCHAR, hash VARCHAR, path VARCHAR, size BIGINT,
    mtime_ns BIGINT, PRIMARY KEY (dataset, kind, key));
"""

__all__ = ["DB_NAME", "LOCK_TIMEOUT_ENV", "SCHEMA_VERSION", "ComputeEngine", "EmbeddingStore",
           "EncodedBatch", "Lookup", "file_hash", "local_batches", "text_hash"]


def text_hash(text: str) -> str:
    """Content hash of a text (BLAKE2b-128 hex of its UTF-8 bytes)."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def file_hash(path: str | PathLike) -> str | None:
    """Content hash of a file's bytes, or None when it cannot be read."""
    try:
        h = hashlib.blake2b(digest_size=16)
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()
    except OSError:
        return None


@dataclass
class Lookup:
    """Result of ``get_or_compute``: rows aligned with the inputs.

    ``vectors`` (n, d) float32 (zero rows where ``ok`` is False); ``hits``: inputs found in the
    cache, ``computed``: inputs encoded now, ``bad``: input position → reason (unreadable,
    corrupt).
    """

    vectors: np.ndarray
    ok: np.ndarray
    hits: int = 0
    computed: int = 0
    bad: dict[int, str] = field(default_factory=dict)
    seconds: float = 0.0


class EmbeddingStore(DuckStore):
    """Get-or-compute access to ``<root>/embeddings.duckdb`` (see the module docstring)."""

    what = "embedding cache"
    schema = _SCHEMA
    schema_version = SCHEMA_VERSION
    remedy = ("move or delete the file (a fresh cache is built on the next run) or use another "
              "--cache-dir")
    default_lock_timeout = 120.0
    create_on_open = False  # the file appears with the first vector; reads of none get None

    def __init__(self, root: str | PathLike, lock_timeout: float | None = None) -> None:
        self.root = Path(root)
        super().__init__(self.root / DB_NAME, lock_timeout)

    @staticmethod
    def _table(dim: int) -> str:
        return f"vectors_{int(dim)}"

    def _ensure_table(self, con, dim: int) -> None:
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {self._table(dim)}(encoder VARCHAR, modality VARCHAR, "
            f"hash VARCHAR, vec FLOAT[{int(dim)}], PRIMARY KEY (encoder, modality, hash))"
        )

    def vector_tables(self, con) -> list[tuple[str, int]]:
        names = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_name LIKE 'vectors_%'").fetchall()]
        return sorted((n, int(n.split("_", 1)[1])) for n in names)

    # --- reads ----------------------------------------------------------------------------------
    def lookup(self, encoder_id: str, dim: int, modality: str,
               hashes: Sequence[str]) -> tuple[dict[str, int], np.ndarray, dict[str, str]]:
        """Cached vectors of ``hashes``: (hash → row, rows (m, dim), known-bad hash → reason)."""
        import pyarrow as pa

        empty = ({}, np.zeros((0, max(dim, 0)), dtype=np.float32), {})
        if not hashes:
            return empty
        keys = pa.table({"hash": pa.array(list(hashes), pa.string())})
        with self.connect(write=False) as con:
            if con is None:
                return empty
            tables = dict(self.vector_tables(con))
            found_hashes: list[str] = []
            vecs = np.zeros((0, max(dim, 0)), dtype=np.float32)
            con.register("lookup_keys", keys)
            if dim and self._table(dim) in tables:
                tbl = con.sql(
                    f"SELECT v.hash, v.vec FROM {self._table(dim)} v JOIN lookup_keys k "
                    "USING (hash) WHERE v.encoder = $enc AND v.modality = $mod",
                    params={"enc": encoder_id, "mod": modality},
                ).to_arrow_table()
                found_hashes = tbl.column("hash").to_pylist()
                if len(found_hashes):
                    flat = tbl.column("vec").combine_chunks().flatten().to_numpy()
                    vecs = np.asarray(flat, dtype=np.float32).reshape(len(found_hashes), dim)
            bad_rows = con.sql(
                "SELECT b.hash, b.reason FROM bad_inputs b JOIN lookup_keys k USING (hash) "
                "WHERE b.modality = $mod", params={"mod": modality},
            ).fetchall()
            con.unregister("lookup_keys")
        index = {h: i for i, h in enumerate(found_hashes)}
        return index, vecs, dict(bad_rows)

    def encoder_dim(self, encoder_id: str) -> int | None:
        """Vector size recorded for an encoder id, if it has rows."""
        with self.connect(write=False) as con:
            if con is None:
                return None
            rows = con.execute("SELECT dim FROM encoders WHERE encoder = ?",
                               [encoder_id]).fetchall()
            row = rows[0] if rows else None
        return int(row[0]) if row else None

    # --- writes -----------------------------------------------------------------------------------
    def _write_batch(self, encoder, modality: str, hashes: list[str], vecs: np.ndarray,
                     bad: list[tuple[str, str]]) -> None:
        """Commit one batch of new vectors (and bad inputs) in one transaction."""
        import pyarrow as pa

        dim = int(vecs.shape[1]) if vecs.ndim == 2 and vecs.shape[1] else int(encoder.dim)
        with self.connect(write=True) as con:
            con.execute("BEGIN")
            try:
                con.execute(
                    "INSERT INTO encoders VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    [encoder.id, encoder.spec, dim, bool(getattr(encoder, "untrained", False)),
                     bool(getattr(encoder, "shared_space", False))],
                )
                if len(hashes):
                    self._ensure_table(con, dim)
                    flat = pa.array(np.ascontiguousarray(vecs, dtype=np.float32).ravel())
                    batch = pa.table({
                        "encoder": pa.array([encoder.id] * len(hashes), pa.string()),
                        "modality": pa.array([modality] * len(hashes), pa.string()),
                        "hash": pa.array(hashes, pa.string()),
                        "vec": pa.FixedSizeListArray.from_arrays(flat, dim),
                    })
                    con.register("new_rows", batch)
                    con.execute(f"INSERT INTO {self._table(dim)} SELECT * FROM new_rows "
                                "ON CONFLICT DO NOTHING")
                    con.unregister("new_rows")
                if bad:
                    con.executemany(
                        "INSERT INTO bad_inputs VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                        [[modality, h, r] for h, r in bad],
                    )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    # --- the only way in -------------------------------------------------------------------------
    def get_or_compute(
        self,
        encoder,
        modality: str,
        inputs: Sequence,
        hashes: Sequence[str | None] | None = None,
        progress: Progress | None = None,
        batch_size: int | None = None,
        engine: ComputeEngine | None = None,
    ) -> Lookup:
        """Vectors of ``inputs`` (image paths or texts) under ``encoder``, encoding only misses.

        Args:
            encoder: an ``Encoder`` with ``modality`` in its ``modalities``.
            modality: ``"image"`` (inputs are file paths) or ``"text"`` (non-empty texts).
            hashes: content hashes of the inputs if the caller has them (None entries = unreadable
                file); computed here otherwise.
            progress: called with ``embed`` events (``core.progress.ProgressEvent``: ``done`` of
                ``total`` distinct misses, ``message`` = ``"SPEC images"`` / ``"SPEC texts"``)
                while misses are encoded.
            batch_size: inference batch size (default: the encoder's).
            engine: where the misses are encoded (``ComputeEngine``); None: here, in this
                process (``local_batches``). ``core.store.ray_engine.RayEngine`` encodes them on
                a Ray cluster. Either way each batch it yields is committed here.
        Returns:
            ``Lookup`` aligned with ``inputs``. Undecodable images have ``ok`` False, are listed in
            ``bad`` and remembered, so later runs skip them without decoding again.
        """
        if modality not in ("image", "text"):
            raise ValueError(f"modality must be 'image' or 'text', not {modality!r}")
        if modality not in encoder.modalities:
            from core.errors import EncoderUnavailable

            raise EncoderUnavailable(f"{encoder.spec} does not encode {modality}s")
        t0 = time.perf_counter()
        n = len(inputs)
        if hashes is None:
            hashes = ([file_hash(p) for p in inputs] if modality == "image"
                      else [text_hash(str(t)) for t in inputs])
        hashes = list(hashes)
        if len(hashes) != n:
            raise ValueError("hashes and inputs differ in length")
        bad: dict[int, str] = {i: f"{inputs[i]}: cannot read file" for i, h in enumerate(hashes)
                               if h is None}
        first: dict[str, int] = {}
        for i, h in enumerate(hashes):
            if h is not None and h not in first:
                first[h] = i
        dim = int(encoder.dim or 0) or (self.encoder_dim(encoder.id) or 0)
        index, cached, known_bad = self.lookup(encoder.id, dim, modality, list(first))
        misses = [h for h in first if h not in index and h not in known_bad]
        new_rows: dict[str, np.ndarray] = {}
        new_bad: dict[str, str] = dict(known_bad)
        if misses:
            payloads = [inputs[first[h]] for h in misses]
            if engine is None:
                encoder.load()  # before any progress bar: missing weights fail cleanly here
                batches = local_batches(encoder, modality, misses, payloads, batch_size)
            else:
                batches = engine.batches(self, encoder, modality, misses, payloads, batch_size,
                                         progress)
            self._commit(encoder, modality, misses, batches, new_rows, new_bad, progress)
            # the encoder's own size, else that of what was encoded (a remote engine never
            # loads the model here, and some encoders learn their size when loaded)
            dim = int(encoder.dim or 0) or next((len(v) for v in new_rows.values()), 0)
        vectors = np.zeros((n, dim), dtype=np.float32)
        ok = np.zeros(n, dtype=bool)
        hits = 0
        for i, h in enumerate(hashes):
            if h is None:
                continue
            row = index.get(h)
            if row is not None:
                vectors[i] = cached[row]
                ok[i] = True
                hits += 1
            elif h in new_rows:
                vectors[i] = new_rows[h]
                ok[i] = True
            else:
                reason = new_bad.get(h, "not encoded")
                bad[i] = reason if str(inputs[i]) in reason else f"{inputs[i]}: {reason}"
        return Lookup(vectors, ok, hits=hits, computed=int(ok.sum()) - hits, bad=bad,
                      seconds=time.perf_counter() - t0)

    def _commit(self, encoder, modality: str, misses: list[str], batches: Iterator[EncodedBatch],
                new_rows: dict, new_bad: dict, progress: Progress | None) -> None:
        """Commit each batch an engine yields in its own transaction (``_write_batch``), then
        resume the engine (which may then drop what it kept for this batch); ``embed`` events
        count the distinct misses committed."""
        remaining = set(misses)
        total = len(remaining)
        label = f"{encoder.spec} {modality}s"

        def report() -> None:
            if progress:
                progress(ProgressEvent("embed", None, total - len(remaining), total, label))

        report()
        for hashes, vecs, bad in batches:
            self._write_batch(encoder, modality, list(hashes), vecs, list(bad))
            new_rows.update(zip(hashes, vecs))
            new_bad.update(bad)
            remaining.difference_update(hashes)
            remaining.difference_update(h for h, _ in bad)
            report()

    # --- dataset maps -----------------------------------------------------------------------------
    def photo_hashes(self, dataset: str, keys: Sequence[str],
                     paths: Sequence[str]) -> list[str | None]:
        """Content hashes of photo files, re-reading only files whose size or mtime changed since
        they were last mapped for ``dataset`` (the map is updated)."""
        stats: list[tuple[int, int] | None] = []
        for p in paths:
            try:
                st = os.stat(p)
                stats.append((st.st_size, st.st_mtime_ns))
            except OSError:
                stats.append(None)
        known = self._read_map(dataset, "photo")
        out: list[str | None] = []
        changed = []
        for key, path, st in zip(keys, paths, stats):
            prev = known.get(key)
            if st is not None and prev and prev[1] == str(path) and (prev[2], prev[3]) == st:
                out.append(prev[0])
                continue
            h = file_hash(path) if st is not None else None
            out.append(h)
            if h is not None:
                changed.append((dataset, "photo", str(key), h, str(path), st[0], st[1]))
        self._write_map(changed)
        return out

    def map_keys(self, dataset: str, kind: str, keys: Sequence[str],
                 hashes: Sequence[str | None]) -> None:
        """Record ``key → content hash`` for a dataset's reviews or items (changed rows only)."""
        known = self._read_map(dataset, kind)
        rows = [(dataset, kind, str(k), h, None, None, None) for k, h in zip(keys, hashes)
                if h is not None and (known.get(str(k)) or (None,))[0] != h]
        self._write_map(rows)

    def _read_map(self, dataset: str, kind: str) -> dict[str, tuple]:
        with self.connect(write=False) as con:
            if con is None:
                return {}
            rows = con.execute("SELECT key, hash, path, size, mtime_ns FROM dataset_map "
                               "WHERE dataset = ? AND kind = ?", [dataset, kind]).fetchall()
        return {r[0]: r[1:] for r in rows}

    def _write_map(self, rows: list[tuple]) -> None:
        if not rows:
            return
        import pyarrow as pa

        cols = list(zip(*rows))
        tbl = pa.table({
            "dataset": pa.array(cols[0], pa.string()), "kind": pa.array(cols[1], pa.string()),
            "key": pa.array(cols[2], pa.string()), "hash": pa.array(cols[3], pa.string()),
            "path": pa.array(cols[4], pa.string()), "size": pa.array(cols[5], pa.int64()),
            "mtime_ns": pa.array(cols[6], pa.int64()),
        })
        with self.connect(write=True) as con:
            con.register("map_rows", tbl)
            con.execute("INSERT OR REPLACE INTO dataset_map SELECT * FROM map_rows")
            con.unregister("map_rows")

    # --- maintenance ------------------------------------------------------------------------------
    def stats(self) -> list[dict]:
        """Rows per (encoder, modality): ``encoder``, ``spec``, ``modality``, ``rows``, ``dim``,
        ``untrained``, ``precision`` (``fp32`` / ``bf16`` from the id's suffix; None for ids
        without one, e.g. test fakes)."""
        from core.encoders.precision import precision_of_id

        out: list[dict] = []
        with self.connect(write=False) as con:
            if con is None:
                return out
            for table, dim in self.vector_tables(con):
                for enc, mod, rows, spec, untrained in con.execute(
                    f"SELECT v.encoder, v.modality, count(*), any_value(e.spec), "
                    f"any_value(e.untrained) FROM {table} v LEFT JOIN encoders e USING (encoder) "
                    "GROUP BY ALL ORDER BY 1, 2"
                ).fetchall():
                    out.append({"encoder": enc, "spec": spec, "modality": mod, "rows": int(rows),
                                "dim": dim, "untrained": bool(untrained),
                                "precision": precision_of_id(enc)})
        return out

    def counts(self) -> dict[str, int]:
        """Number of bad inputs and dataset map rows."""
        with self.connect(write=False) as con:
            if con is None:
                return {"bad_inputs": 0, "dataset_map": 0}
            bad = con.execute("SELECT count(*) FROM bad_inputs").fetchall()[0][0]
            mapped = con.execute("SELECT count(*) FROM dataset_map").fetchall()[0][0]
        return {"bad_inputs": int(bad), "dataset_map": int(mapped)}

    def clear(self, encoder_id: str | None) -> int:
        """Delete an encoder id's vectors (every vector and bad-input row when None); returns the
        number of vectors removed."""
        if not self.path.exists():
            return 0
        removed = 0
        with self.connect(write=True) as con:
            con.execute("BEGIN")
            for table, _ in self.vector_tables(con):
                if encoder_id is None:
                    removed += con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
                    con.execute(f"DELETE FROM {table}")
                else:
                    removed += con.execute(f"SELECT count(*) FROM {table} WHERE encoder = ?",
                                           [encoder_id]).fetchall()[0][0]
                    con.execute(f"DELETE FROM {table} WHERE encoder = ?", [encoder_id])
            if encoder_id is None:
                con.execute("DELETE FROM encoders")
                con.execute("DELETE FROM bad_inputs")
            else:
                con.execute("DELETE FROM encoders WHERE encoder = ?", [encoder_id])
            con.execute("COMMIT")
            con.execute("CHECKPOINT")
        return int(removed)


# --- engines: where misses are encoded ---------------------------------------------------------
#: One encoded batch: (content hashes with vectors, their vectors (n, d), [(hash, reason)] of
#: inputs that could not be decoded). ``get_or_compute`` commits each in one transaction.
EncodedBatch = tuple[list[str], np.ndarray, list[tuple[str, str]]]


class ComputeEngine(Protocol):
    """Where ``get_or_compute`` has its misses encoded (None: in this process).

    ``batches`` yields ``EncodedBatch``es covering ``misses`` (it may add rows for other hashes;
    they are stored too); the store commits each one before asking for the next, so code after
    a ``yield`` runs once that batch is in the cache.
    """

    def batches(self, store: EmbeddingStore, encoder, modality: str, misses: list[str],
                payloads: list, batch_size: int | None,
                progress: Progress | None) -> Iterator[EncodedBatch]: ...


def local_batches(encoder, modality: str, misses: list[str], payloads: list,
                  batch_size: int | None) -> Iterator[EncodedBatch]:
    """The in-process engine: encode ``payloads`` (texts or image paths; ``misses`` are their
    hashes) here, texts in commits of ``TEXT_COMMIT_ROWS`` (longest first), images batch by
    batch."""
    if modality == "text":
        order = sorted(range(len(misses)), key=lambda i: -len(payloads[i]))
        step = max(TEXT_COMMIT_ROWS, batch_size or 0)
        for start in range(0, len(order), step):
            idx = order[start:start + step]
            yield ([misses[i] for i in idx],
                   _encode_texts(encoder, [payloads[i] for i in idx], batch_size), [])
        return
    for positions, vecs, bad in _image_batches(encoder, payloads, batch_size):
        yield [misses[i] for i in positions], vecs, [(misses[i], reason) for i, reason in bad]


# --- encoder adapters: torch encoders stream batches; any other Encoder works too ---------------
def _encode_texts(encoder, texts: list[str], batch_size: int | None) -> np.ndarray:
    """``encoder.encode_texts`` with ``batch_size`` as an argument (the encoder is shared by every
    session of the process, so its own ``batch_size`` is never changed)."""
    extra = {"batch_size": batch_size} if batch_size else {}
    return np.asarray(encoder.encode_texts(texts, **extra), dtype=np.float32)


def _image_batches(encoder, paths: list, batch_size: int | None):
    """Yield (positions, vectors, [(position, reason)]) for ``paths``."""
    if hasattr(encoder, "image_batches"):
        for b in encoder.image_batches(paths, batch_size):
            yield b.positions.tolist(), b.vectors, b.bad
        return
    bs = batch_size or getattr(encoder, "batch_size", 32) or 32
    for start in range(0, len(paths), bs):
        idx = list(range(start, min(start + bs, len(paths))))
        try:
            vecs = np.asarray(encoder.encode_images([paths[i] for i in idx]), dtype=np.float32)
            yield idx, vecs, []
        except ValueError:  # find the bad files one by one
            good, rows, bad = [], [], []
            for i in idx:
                try:
                    rows.append(np.asarray(encoder.encode_images([paths[i]]), np.float32)[0])
                    good.append(i)
                except ValueError as exc:
                    bad.append((i, str(exc)))
            dim = int(encoder.dim)
            yield good, (np.stack(rows) if rows else np.zeros((0, dim), np.float32)), bad
