"""Machinery shared by the torch encoders: threads, bf16, batched inference, image prefetch.

``TorchEncoder`` implements the ``Encoder`` contract once; a concrete encoder only says how to build
its model (``_build``), how to preprocess one decoded image (``_preprocess``) and how to run a batch
(``_forward_images`` / ``_forward_texts``). Everything runs under ``torch.inference_mode()``;
images are decoded and preprocessed in a small thread pool while the model runs on the previous
batch.
"""

from __future__ import annotations

import io
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from os import PathLike
from typing import Any

import numpy as np

from core.encoders.base import Encoder, l2_normalise

#: Environment switch for bf16 autocast: ``auto`` (default: only on CPUs with native bf16, and only
#: when the probe agrees with fp32), ``0`` (never), ``1`` (try it even without native support).
BF16_ENV = "MMREC_BF16"
#: Minimum cosine similarity between the bf16 and the fp32 vector of every probe input.
BF16_MIN_COSINE = 0.99

_setup_lock = threading.Lock()
_setup_done = False


def n_cpus() -> int:
    """CPU cores this process may use (affinity-aware)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def setup_torch() -> None:
    """Size torch's thread pools for this machine, once per process.

    Intra-op threads = the cores we may use (``MMREC_TORCH_THREADS`` overrides); one inter-op
    thread, since our graphs are sequential. Image decoding runs in separate Python threads (PIL
    releases the GIL), overlapping with inference.
    """
    global _setup_done
    with _setup_lock:
        if _setup_done:
            return
        import torch

        threads = int(os.environ.get("MMREC_TORCH_THREADS", "0") or 0) or n_cpus()
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set once parallel work ran in this process
            pass
        _setup_done = True


def cpu_has_native_bf16() -> bool:
    """True on CPUs with native bf16 matmul (AVX512-BF16 or AMX); emulated bf16 is slower."""
    try:
        import torch

        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # noqa: BLE001 - probing only
        try:
            with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as f:
                flags = f.read()
            return "avx512_bf16" in flags or "amx_bf16" in flags
        except OSError:
            return False


def bf16_wanted() -> bool:
    """Whether to try bf16 at all (``MMREC_BF16``: auto → native support only)."""
    mode = os.environ.get(BF16_ENV, "auto").strip().lower()
    if mode in ("0", "false", "off", "no"):
        return False
    if mode in ("1", "true", "on", "yes"):
        return True
    return cpu_has_native_bf16()


def min_row_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Smallest cosine similarity between corresponding rows of ``a`` and ``b``."""
    a = l2_normalise(a)
    b = l2_normalise(b)
    return float(np.min(np.sum(a * b, axis=1))) if len(a) else 1.0


# --- images -------------------------------------------------------------------------------------
def read_image(path: str | PathLike, draft: int | None = None):
    """Decode an image file to RGB PIL; ``ValueError`` naming the file if empty or undecodable.

    ``draft`` lets JPEG decoding scale down by a power of two (DCT scaling) while keeping both
    sides ≥ ``draft`` pixels: same result after the encoder's resize, several times faster on big
    photos.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    if not data:
        raise ValueError(f"{path}: zero-byte image file")
    try:
        img = Image.open(io.BytesIO(data))
        if draft and img.format == "JPEG":
            img.draft("RGB", (draft, draft))
        img = img.convert("RGB")
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"{path}: corrupt or unsupported image ({exc})") from None
    return img


@dataclass
class ImageBatch:
    """One encoded batch: ``positions`` index the input paths, ``vectors`` their rows;
    ``bad`` lists ``(position, reason)`` of inputs in this batch that could not be decoded."""

    positions: np.ndarray
    vectors: np.ndarray
    bad: list[tuple[int, str]]


class TorchEncoder(Encoder):
    """Encoder backed by a torch model (see the module docstring for what subclasses provide).

    Attributes:
        batch_size: default batch size for ``encode_*`` and the cache pipeline.
        use_bf16: decided at ``load()`` (``None`` before): bf16 autocast only where the CPU has
            native bf16 and the probe batch agrees with fp32 (cosine ≥ 0.99 for every vector).
        bf16_cosine: the probe's minimum cosine, when it was measured.
    """

    batch_size: int = 32
    image_draft: int | None = 256
    decode_workers: int = max(1, min(4, n_cpus()))

    def __init__(self) -> None:
        self._model: Any = None
        self._load_lock = threading.Lock()
        self.use_bf16: bool | None = None
        self.bf16_cosine: float | None = None

    # --- subclass hooks --------------------------------------------------------------------------
    def _build(self) -> None:
        """Create ``self._model`` (and transforms/tokenizers); raise ``EncoderUnavailable``."""
        raise NotImplementedError

    def _preprocess(self, image) -> Any:
        """One RGB PIL image → a (C, H, W) float tensor."""
        raise NotImplementedError(f"{self.spec} does not encode images")

    def _forward_images(self, batch) -> Any:
        """(n, C, H, W) tensor → (n, d) tensor (any dtype, not yet normalised)."""
        raise NotImplementedError(f"{self.spec} does not encode images")

    def _forward_texts(self, texts: list[str]) -> Any:
        """List of non-empty texts → (n, d) tensor (any dtype, not yet normalised)."""
        raise NotImplementedError(f"{self.spec} does not encode texts")

    # --- loading -------------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> None:
        with self._load_lock:
            if self._model is not None:
                return
            setup_torch()
            self._build()
            if self.use_bf16 is None:
                self.use_bf16 = False
                if bf16_wanted():
                    self.bf16_cosine = self.bf16_agreement()
                    self.use_bf16 = self.bf16_cosine >= BF16_MIN_COSINE

    def bf16_agreement(self) -> float:
        """Min cosine between bf16-autocast and fp32 vectors on a fixed probe batch (both
        modalities the encoder has). Loads the model if needed."""
        if self._model is None:
            setup_torch()
            self._build()
        worst = 1.0
        for fn, probe in self._probes():
            fp32 = self._run(fn, probe, bf16=False)
            bf16 = self._run(fn, probe, bf16=True)
            worst = min(worst, min_row_cosine(fp32, bf16))
        return worst

    def _probes(self) -> list[tuple[Callable, Any]]:
        import torch
        from PIL import Image

        out: list[tuple[Callable, Any]] = []
        if "image" in self.modalities:
            rng = np.random.default_rng(0)
            imgs = []
            for i in range(4):
                yy, xx = np.mgrid[0:256, 0:256]
                base = np.stack([(xx * (i + 1)) % 256, (yy * (i + 2)) % 256, (xx + yy) % 256], -1)
                noise = rng.integers(0, 60, size=base.shape)
                arr = np.clip(base + noise, 0, 255).astype(np.uint8)
                imgs.append(self._preprocess(Image.fromarray(arr)))
            out.append((self._forward_images, torch.stack(imgs)))
        if "text" in self.modalities:
            out.append((self._forward_texts, [
                "a plate of spaghetti with tomato sauce and basil",
                "The service was slow but the sushi was fresh and the staff friendly.",
                "cheap burgers, loud music, great milkshakes",
                "a quiet cafe with good espresso and croissants",
            ]))
        return out

    def _run(self, fn: Callable, x: Any, bf16: bool | None = None) -> np.ndarray:
        import torch

        bf16 = self.use_bf16 if bf16 is None else bf16
        with torch.inference_mode():
            if bf16:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    out = fn(x)
            else:
                out = fn(x)
        return l2_normalise(out.float().cpu().numpy())

    # --- the contract ----------------------------------------------------------------------------
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        if "text" not in self.modalities:
            return super().encode_texts(texts)
        self.load()
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        bs = self.batch_size
        parts = [self._run(self._forward_texts, texts[i:i + bs]) for i in range(0, len(texts), bs)]
        return np.concatenate(parts)

    def encode_images(self, paths: Sequence[str | PathLike]) -> np.ndarray:
        if "image" not in self.modalities:
            return super().encode_images(paths)
        out = np.zeros((len(paths), self.dim), dtype=np.float32)
        for batch in self.image_batches(paths):
            if batch.bad:
                raise ValueError(batch.bad[0][1])
            out[batch.positions] = batch.vectors
        return out

    def image_batches(
        self, paths: Sequence[str | PathLike], batch_size: int | None = None
    ) -> Iterator[ImageBatch]:
        """Encode ``paths`` batch by batch, decoding the next batches in a thread pool while the
        model runs. Undecodable files are reported in ``ImageBatch.bad`` instead of raising."""
        import torch

        self.load()
        bs = max(1, batch_size or self.batch_size)
        chunks = [list(range(i, min(i + bs, len(paths)))) for i in range(0, len(paths), bs)]

        def prep(i: int):
            try:
                return self._preprocess(read_image(paths[i], self.image_draft)), None
            except ValueError as exc:
                return None, str(exc)

        lookahead = 2
        with ThreadPoolExecutor(self.decode_workers, thread_name_prefix="decode") as pool:
            pending: deque[tuple[list[int], list[Future]]] = deque()
            it = iter(chunks)
            for chunk in it:
                pending.append((chunk, [pool.submit(prep, i) for i in chunk]))
                if len(pending) > lookahead:
                    break
            while pending:
                chunk, futs = pending.popleft()
                nxt = next(it, None)
                if nxt is not None:
                    pending.append((nxt, [pool.submit(prep, i) for i in nxt]))
                good, tensors, bad = [], [], []
                for i, fut in zip(chunk, futs):
                    tensor, reason = fut.result()
                    if tensor is None:
                        bad.append((i, reason))
                    else:
                        good.append(i)
                        tensors.append(tensor)
                if tensors:
                    vecs = self._run(self._forward_images, torch.stack(tensors))
                else:
                    vecs = np.zeros((0, self.dim), dtype=np.float32)
                yield ImageBatch(np.asarray(good, dtype=np.int64), vecs, bad)
