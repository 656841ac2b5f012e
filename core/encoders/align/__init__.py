"""``align:`` — a joint image–text space trained on a dataset's own pairs (LiT/CLIP style).

Two frozen towers (any text encoder, any image encoder; their vectors come from the embedding
cache) get a small projection head each, trained with a symmetric contrastive loss and a learnable
temperature (``train``) on the dataset's photo–caption and photo–item-document pairs (``pairs``).
The result is an ``Encoder`` with ``shared_space=True``: cross-modal techniques (clip-t3…t5,
multiview), zero-shot photo labels, text → photo search and the two-modality map use it like CLIP.

Unlike CLIP, whose towers learnt one space from 400M web pairs, an aligned space knows only what
this dataset's pairs teach: it needs no hub weights and fits the dataset's vocabulary, but a query
about something the pairs never show lands anywhere. Prefer real CLIP weights when they are here.

Identity: the heads' key is a hash of both towers' ``Encoder.id``, the pair set's content hash,
the hyperparameters and the seed; the encoder's id is ``align:<text id>+<image id>@heads=<key>``,
so vectors and runs of different heads never mix. Heads are stored in ``<cache>/align/`` and
trained once (a lock file keeps two processes from training one key twice); a second use loads
them. Building the encoder needs the dataset (``create_encoder(spec, dataset=ds)``).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.encoders.align.config import (
    DEFAULT_ALIGN,
    PAIR_KINDS,
    AlignConfig,
    is_align_spec,
    parse_align_spec,
)
from core.encoders.align.heads import Heads, load_heads, save_heads
from core.encoders.align.pairs import PairSet, build_pairs, content_note
from core.encoders.align.quality import retrieval, summary_line
from core.encoders.base import Encoder
from core.errors import EncoderUnavailable

__all__ = ["DEFAULT_ALIGN", "PAIR_KINDS", "AlignConfig", "AlignedEncoder", "aligned_encoder",
           "is_align_spec", "parse_align_spec", "summary_line"]

_CACHE_SIZE = 4
_instances: OrderedDict[tuple, AlignedEncoder] = OrderedDict()
_instances_lock = threading.Lock()


class AlignedEncoder(Encoder):
    """The ``align:`` encoder of one dataset (see the module docstring).

    Attributes (besides ``Encoder``'s): ``config`` (``AlignConfig``), ``text_spec`` /
    ``image_spec`` (the towers), ``dataset``, ``cache_root``.
    """

    kind = "align"
    shared_space = True

    def __init__(self, config: AlignConfig, dataset, cache_root: str | Path) -> None:
        from core.encoders import create_encoder

        self.config = config
        self.spec = config.spec
        self.text_spec, self.image_spec = config.text, config.image
        self.dataset = dataset
        self.cache_root = Path(cache_root)
        self.text_tower = create_encoder(config.text)
        self.image_tower = create_encoder(config.image)
        if "text" not in self.text_tower.modalities:
            raise EncoderUnavailable(f"align: the first tower {config.text} does not encode text; "
                                     "give a text encoder first (align:TEXT+IMAGE)")
        if "image" not in self.image_tower.modalities:
            raise EncoderUnavailable(f"align: the second tower {config.image} does not encode "
                                     "images; give an image encoder second (align:TEXT+IMAGE)")
        self.modalities = frozenset({"image", "text"})
        self.untrained = bool(self.text_tower.untrained or self.image_tower.untrained)
        self._pairs: PairSet | None = None
        self._key: str | None = None
        self._heads: Heads | None = None
        self._lock = threading.RLock()

    @property
    def dim(self) -> int:  # type: ignore[override]
        """The shared space's size: the text tower's for ``locked`` heads (known once the tower
        or the heads are loaded), else ``dim``."""
        if self.config.head != "locked":
            return int(self.config.dim)
        heads = self._heads
        return heads.dim if heads is not None else int(self.text_tower.dim)

    # --- identity --------------------------------------------------------------------------------
    def pairs(self) -> PairSet:
        """The dataset's pair set (built once; photo hashes come from the cache's map)."""
        with self._lock:
            if self._pairs is None:
                from core.store.cache import EmbeddingStore

                ph = self.dataset.photos
                hashes = EmbeddingStore(self.cache_root).photo_hashes(
                    self.dataset.name, ph["photo_id"].astype(str).tolist(),
                    [str(p) for p in ph["path"].tolist()]) if len(ph) else []
                self._pairs = build_pairs(self.dataset, self.config.pairs, hashes,
                                          self.config.seed, self.config.reviews)
            return self._pairs

    @property
    def key(self) -> str:
        """The heads' cache key (towers' ids, pairs' content hash, hyperparameters, seed)."""
        with self._lock:
            if self._key is None:
                blob = json.dumps({"text": self.text_tower.id, "image": self.image_tower.id,
                                   "pairs": self.pairs().content_hash,
                                   "hyperparameters": self.config.hyperparameters()},
                                  sort_keys=True)
                self._key = hashlib.blake2b(blob.encode(), digest_size=8).hexdigest()
            return self._key

    @property
    def id(self) -> str:  # type: ignore[override]
        return f"align:{self.text_tower.id}+{self.image_tower.id}@heads={self.key}"

    # --- heads -----------------------------------------------------------------------------------
    def stored_heads(self) -> Heads | None:
        """The heads if they are trained and stored (nothing is trained)."""
        with self._lock:
            if self._heads is None:
                self._heads = load_heads(self.cache_root, self.key)
            return self._heads

    @property
    def info(self) -> dict[str, Any]:
        """What the stored heads are (towers, pairs, hyperparameters, loss, held-out retrieval);
        empty before training."""
        heads = self.stored_heads()
        return dict(heads.info) if heads is not None else {}

    def heads(self, provider=None, progress=None) -> Heads:
        """The trained heads: loaded, or trained now (tower vectors through ``provider``'s cache,
        ``train`` progress events to ``progress``) and stored."""
        heads = self.stored_heads()
        if heads is not None:
            return heads
        from core.store.runs import RunLock

        lock_path = self.cache_root / "align" / f"{self.key}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, RunLock(lock_path):
            self._heads = load_heads(self.cache_root, self.key)  # trained while we waited?
            if self._heads is None:
                self._heads = self._train(provider, progress)
            return self._heads

    def tower_vectors(self, provider) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(text_x, text_ok, image_x, image_ok)`` of the pair set's texts and photos, from the
        cache through ``provider`` (encoding what is missing)."""
        ps = self.pairs()
        text_x, text_ok = provider.texts(self.text_spec, ps.texts)
        photos, photos_ok = provider.photos(self.image_spec)
        return (np.asarray(text_x), np.asarray(text_ok), np.asarray(photos)[ps.photos],
                np.asarray(photos_ok)[ps.photos])

    def _train(self, provider, progress) -> Heads:
        from core.encoders.align.train import train_heads
        from core.progress import ProgressEvent, resolve_progress
        from core.store.provider import EmbeddingProvider

        emit = resolve_progress(progress)
        if provider is None:
            provider = EmbeddingProvider(self.dataset, self.cache_root, progress=emit)
        ps = self.pairs()
        text_x, text_ok, image_x, image_ok = self.tower_vectors(provider)
        usable = text_ok[ps.text_idx] & image_ok[ps.photo_idx]
        train = usable & ~ps.heldout
        held = usable & ps.heldout
        if train.sum() < 2:
            raise EncoderUnavailable(
                f"align: {self.dataset.name} has {int(train.sum())} usable training pair(s); "
                "it needs photos with captions or photos of described items")
        job = f"aligning {self.config.text} + {self.config.image} ({int(train.sum()):,} pairs)"

        def on_epoch(epoch: int, loss: float) -> None:
            if emit is not None:
                emit(ProgressEvent("train", done=epoch, total=self.config.epochs, message=job))

        if emit is not None:
            emit(ProgressEvent("train", done=0, total=self.config.epochs, message=job))
        heads = train_heads(text_x, image_x, ps.text_idx[train], ps.photo_idx[train],
                            self.config, on_epoch=on_epoch)
        t_vec = heads.project("text", text_x, text_ok)
        p_vec = heads.project("image", image_x, image_ok)
        figures = retrieval(t_vec, p_vec, ps.text_idx[held], ps.photo_idx[held], ps.kind[held])
        heads.info.update({
            "key": self.key, "id": self.id, "spec": self.spec, "dataset": self.dataset.name,
            "towers": {"text": self.text_tower.id, "image": self.image_tower.id},
            "pairs": dict(ps.counts, usable=int(usable.sum()), kinds=list(self.config.pairs),
                          content_hash=ps.content_hash),
            "hyperparameters": self.config.hyperparameters(), "dim": heads.dim,
            "content": content_note(self.config.pairs),
            "heldout": figures, "summary": summary_line(figures),
            "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        })
        save_heads(self.cache_root, self.key, heads)
        if emit is not None:
            emit(ProgressEvent("note", message=f"aligned space {self.key}: held-out "
                                               f"{heads.info['summary']}"))
        return heads

    # --- the encoder contract --------------------------------------------------------------------
    def project(self, modality: str, vectors: np.ndarray, ok: np.ndarray | None = None,
                provider=None, progress=None) -> np.ndarray:
        """Tower vectors of ``modality`` → aligned vectors (trains the heads first if needed)."""
        return self.heads(provider, progress).project(modality, vectors, ok)

    def encode_texts(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        return self.project("text", self.text_tower.encode_texts(texts, batch_size=batch_size))

    def encode_images(self, paths) -> np.ndarray:
        return self.project("image", self.image_tower.encode_images(paths))

    def load(self) -> None:
        self.heads()


def _dataset_identity(dataset) -> tuple:
    return (dataset.name, id(dataset), dataset.n_items, len(dataset.photos),
            len(dataset.interactions))


def aligned_encoder(spec: str, dataset, cache_root: str | Path | None = None) -> AlignedEncoder:
    """The ``align:`` encoder of ``spec`` on ``dataset`` (one instance per canonical spec, dataset
    and cache kept per process). ``EncoderUnavailable`` without a dataset or for a bad spec."""
    from core.config import cache_dir

    config = parse_align_spec(spec)
    if dataset is None:
        raise EncoderUnavailable(
            f"{spec}: an align: encoder is trained on a dataset's own image–text pairs, so it "
            "needs the dataset: use it where one is loaded (python -m core align|evaluate|embed "
            "--dataset ..., or the app)")
    root = cache_dir(cache_root)
    key = (config.spec, _dataset_identity(dataset), str(root))
    with _instances_lock:
        enc = _instances.get(key)
        if enc is not None and enc.dataset is dataset:
            _instances.move_to_end(key)
            return enc
    enc = AlignedEncoder(config, dataset, root)
    with _instances_lock:
        _instances[key] = enc
        while len(_instances) > _CACHE_SIZE:
            _instances.popitem(last=False)
    return enc
