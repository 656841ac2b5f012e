"""``EmbeddingProvider``: the one object techniques ask for embeddings of a dataset.

Arrays come back aligned with the dataset's frames, with an ``ok`` mask: ``photos(spec)`` with
``dataset.photos`` rows, ``reviews(spec)`` with ``dataset.interactions`` rows, ``item_texts(spec)``
with item indices, ``texts(spec, texts)`` with the given list. Bad images and empty texts have
``ok`` False and a zero row, and are counted in ``report``. Everything goes through the DuckDB
cache; results are memoised in the provider (read-only arrays), so repeated calls are free.
An ``align:`` encoder's vectors are not cached: they are its trained heads applied to its towers'
cached vectors (``core.encoders.align``), a matrix product.

Identical inputs (same content hash: a text repeated in several reviews, a photo file twice) are
looked up and encoded once, so ``report``'s ``cached`` / ``computed`` / ``bad_images`` count
distinct inputs, the unit the encoding progress bar counts; ``empty_texts`` and
``empty_item_texts`` count rows.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from core.progress import Progress, resolve_progress
from core.store.cache import ComputeEngine, EmbeddingStore, text_hash

_TEXT_MEMO = 32
#: Review texts read from the dataset and looked up in the cache at a time (bounds the texts
#: held in memory; the vectors of all reviews are the result and stay).
REVIEW_BATCH = 100_000


def _distinct(hashes: Sequence[str | None]) -> tuple[list[int], np.ndarray]:
    """``(first, inverse)``: the position of the first input of each distinct hash (a ``None``
    hash, an unreadable file, is always its own), and per input the index into ``first``."""
    first: list[int] = []
    slot: dict[str, int] = {}
    inverse = np.empty(len(hashes), dtype=np.int64)
    for i, h in enumerate(hashes):
        if h is None:
            inverse[i] = len(first)
            first.append(i)
            continue
        j = slot.get(h)
        if j is None:
            j = slot[h] = len(first)
            first.append(i)
        inverse[i] = j
    return first, inverse


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


class EmbeddingProvider:
    """Embeddings of one dataset's photos, reviews and item texts, through the cache.

    Args:
        dataset: a ``core.data.Dataset``.
        cache_root: the cache directory (holds ``embeddings.duckdb``).
        progress: a ``core.progress.Progress`` (called with ``embed`` events while inputs are
            encoded), ``True`` for tqdm bars on stderr (``ConsoleProgress``), or None.
        batch_size: inference batch size (default: each encoder's).
        engine: where misses are encoded (``core.store.cache.ComputeEngine``); None: in this
            process. ``core.store.ray_engine.RayEngine`` encodes them on a Ray cluster.

    Attributes:
        report: per encoder spec, counts: ``bad_images``, ``cached``, ``computed`` (distinct
            inputs), ``empty_texts`` (review rows without text), ``empty_item_texts`` (item rows);
            and ``bad_examples`` (a few reasons).
        timings: seconds spent per (kind, spec) on the first (non-memoised) call.
    """

    def __init__(self, dataset, cache_root: str | Path, progress: bool | Progress | None = None,
                 batch_size: int | None = None, store: EmbeddingStore | None = None,
                 engine: ComputeEngine | None = None) -> None:
        self.dataset = dataset
        self.store = store or EmbeddingStore(cache_root)
        self.progress = resolve_progress(progress)
        self.batch_size = batch_size
        self.engine = engine
        self.report: dict[str, dict] = {}
        self.timings: dict[tuple[str, str], float] = {}
        self._memo: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        self._text_memo: OrderedDict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = (
            OrderedDict())
        self._lock = threading.RLock()

    # --- helpers ---------------------------------------------------------------------------------
    def encoder(self, spec: str):
        """The encoder for ``spec`` (``create_encoder`` with this dataset and cache, which
        ``align:`` encoders need; nothing is loaded yet)."""
        from core.encoders import create_encoder

        return create_encoder(spec, dataset=self.dataset, cache_root=self.store.root)

    def _aligned(self, spec: str):
        """The ``align:`` encoder of ``spec``, or None for any other kind."""
        enc = self.encoder(spec)
        return enc if getattr(enc, "kind", "") == "align" else None

    def _project(self, enc, modality: str, tower: tuple[np.ndarray, np.ndarray]) -> tuple:
        """An aligned encoder's vectors: its heads applied to the tower's cached vectors (the
        heads are trained first when they are not stored)."""
        vecs, ok = tower
        return enc.project(modality, vecs, ok, provider=self, progress=self.progress), ok.copy()

    def _counts(self, spec: str) -> dict:
        return self.report.setdefault(spec, {"bad_images": 0, "empty_texts": 0,
                                             "empty_item_texts": 0, "cached": 0, "computed": 0,
                                             "bad_examples": []})

    def _memoised(self, kind: str, spec: str, compute: Callable[[], tuple]) -> tuple:
        key = (kind, self.encoder(spec).id)
        with self._lock:
            if key not in self._memo:
                t0 = time.perf_counter()
                vecs, ok = compute()
                self._memo[key] = (_frozen(vecs), _frozen(ok))
                self.timings[(kind, spec)] = time.perf_counter() - t0
            return self._memo[key]

    def _texts_lookup(self, spec: str, texts: Sequence[object], kind: str,
                      keys: Sequence[str] | None) -> tuple[np.ndarray, np.ndarray, int]:
        enc = self.encoder(spec)
        clean = ["" if t is None or (isinstance(t, float) and np.isnan(t)) else str(t)
                 for t in texts]
        nonempty = [i for i, t in enumerate(clean) if t.strip()]
        hashes = [text_hash(clean[i]) for i in nonempty]
        first, inverse = _distinct(hashes)
        res = self.store.get_or_compute(enc, "text", [clean[nonempty[j]] for j in first],
                                        hashes=[hashes[j] for j in first],
                                        progress=self.progress, batch_size=self.batch_size,
                                        engine=self.engine)
        dim = res.vectors.shape[1] if res.vectors.ndim == 2 else int(enc.dim)
        vecs = np.zeros((len(clean), dim), dtype=np.float32)
        ok = np.zeros(len(clean), dtype=bool)
        vecs[nonempty] = res.vectors[inverse]
        ok[nonempty] = res.ok[inverse]
        c = self._counts(spec)
        c["cached"] += res.hits
        c["computed"] += res.computed
        if keys is not None:
            self.store.map_keys(self.dataset.name, kind, [keys[i] for i in nonempty], hashes)
        return vecs, ok, len(clean) - len(nonempty)

    # --- what techniques call ---------------------------------------------------------------------
    def photos(self, spec: str) -> tuple[np.ndarray, np.ndarray]:
        """``(vectors (n_photos, d), ok (n_photos,))`` aligned with ``dataset.photos`` rows."""
        aligned = self._aligned(spec)
        if aligned is not None:
            return self._memoised("photos", spec, lambda: self._project(
                aligned, "image", self.photos(aligned.image_spec)))

        def compute():
            enc = self.encoder(spec)
            ph = self.dataset.photos
            paths = [str(p) for p in ph["path"].tolist()]
            hashes = self.store.photo_hashes(self.dataset.name, ph["photo_id"].astype(str).tolist(),
                                             paths)
            first, inverse = _distinct(hashes)
            res = self.store.get_or_compute(enc, "image", [paths[j] for j in first],
                                            hashes=[hashes[j] for j in first],
                                            progress=self.progress, batch_size=self.batch_size,
                                            engine=self.engine)
            c = self._counts(spec)
            c["bad_images"] += len(res.bad)
            c["cached"] += res.hits
            c["computed"] += res.computed
            c["bad_examples"].extend(list(res.bad.values())[:5])
            ok = res.ok[inverse]
            if res.vectors.shape[1] == 0:  # no photos at all and nothing known about the encoder
                return np.zeros((len(paths), int(enc.dim)), np.float32), ok
            return res.vectors[inverse], ok

        return self._memoised("photos", spec, compute)

    def reviews(self, spec: str) -> tuple[np.ndarray, np.ndarray]:
        """``(vectors (n_interactions, d), ok)`` of review texts, aligned with
        ``dataset.interactions`` rows (empty text: ``ok`` False)."""
        aligned = self._aligned(spec)
        if aligned is not None:
            return self._memoised("reviews", spec, lambda: self._project(
                aligned, "text", self.reviews(aligned.text_spec)))

        def compute():
            # the texts stream from the dataset's store, REVIEW_BATCH rows at a time
            rid = self.dataset.interactions["review_id"].tolist()
            parts: list[tuple[np.ndarray, np.ndarray]] = []
            for start, texts in self.dataset.texts.batches(REVIEW_BATCH):
                keys = [str(r) if r is not None else f"row{i}"
                        for i, r in enumerate(rid[start:start + len(texts)], start)]
                vecs, ok, empty = self._texts_lookup(spec, texts, "review", keys)
                self._counts(spec)["empty_texts"] += empty
                parts.append((vecs, ok))
            dim = max((v.shape[1] for v, _ in parts), default=int(self.encoder(spec).dim))
            vecs = np.zeros((len(rid), dim), dtype=np.float32)
            ok = np.zeros(len(rid), dtype=bool)
            start = 0
            for v, o in parts:
                if v.shape[1] == dim:
                    vecs[start:start + len(o)] = v
                    ok[start:start + len(o)] = o
                start += len(o)
            return vecs, ok

        return self._memoised("reviews", spec, compute)

    def item_texts(self, spec: str) -> tuple[np.ndarray, np.ndarray]:
        """``(vectors (n_items, d), ok)`` of ``dataset.item_text()``, aligned with item indices."""
        aligned = self._aligned(spec)
        if aligned is not None:
            return self._memoised("item_texts", spec, lambda: self._project(
                aligned, "text", self.item_texts(aligned.text_spec)))

        def compute():
            keys = self.dataset.items["item_id"].astype(str).tolist()
            vecs, ok, empty = self._texts_lookup(spec, self.dataset.item_text(), "item", keys)
            self._counts(spec)["empty_item_texts"] += empty
            return vecs, ok

        return self._memoised("item_texts", spec, compute)

    def texts(self, spec: str, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(vectors, ok)`` for arbitrary texts (prompts, queries), cached by content."""
        texts = [str(t) if t is not None else "" for t in texts]
        key = (self.encoder(spec).id, hash(tuple(texts)))
        with self._lock:
            hit = self._text_memo.get(key)
            if hit is not None:
                self._text_memo.move_to_end(key)
                return hit
            aligned = self._aligned(spec)
            if aligned is not None:
                vecs, ok = self._project(aligned, "text", self.texts(aligned.text_spec, texts))
            else:
                vecs, ok, _ = self._texts_lookup(spec, texts, "query", None)
            out = (_frozen(vecs), _frozen(ok))
            self._text_memo[key] = out
            while len(self._text_memo) > _TEXT_MEMO:
                self._text_memo.popitem(last=False)
            return out
