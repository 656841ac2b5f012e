"""Machinery shared by the torch encoders: threads, precision, batched inference, image prefetch.

``TorchEncoder`` implements the ``Encoder`` contract once; a concrete encoder only says how to build
its model (``_build``), how to preprocess one decoded image (``_preprocess``) and how to run a batch
(``_forward_images`` / ``_forward_texts``). Everything runs under ``torch.inference_mode()``;
images are decoded and preprocessed in a small thread pool while the model runs on the previous
batch.

Precision (see ``core.encoders.precision``): fp32 unless the spec or ``MMREC_BF16`` asks for bf16;
``MMREC_BF16=auto`` measures bf16 against fp32 on a fixed probe batch (``measure_precision``) and
keeps the result per process per weights identity. Every id ends in the precision (``+fp32`` or
``+bf16``).
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from os import PathLike
from typing import Any

import numpy as np

from core.encoders.base import Encoder, l2_normalise
from core.encoders.precision import (
    BF16_MIN_COSINE,
    PRECISION_ENV,
    Precision,
    Requested,
    choose_precision,
    cpuinfo_bf16_flags,
    env_precision,
    split_precision,
)

__all__ = ["BF16_MIN_COSINE", "TorchEncoder", "cpu_has_native_bf16", "native_bf16", "read_image"]

#: Timed repetitions per precision when ``auto`` measures (after one untimed warm-up); best kept.
AUTO_REPEATS = 3
#: The clock ``auto`` times with (a module attribute so tests can script it).
_clock = time.perf_counter

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
    """True when this CPU executes bf16 matmuls natively (AVX512-BF16 or AMX-BF16).

    Asks torch's own CPU feature probes where the installed torch has them, else the Linux
    ``/proc/cpuinfo`` flags. Deliberately not oneDNN's ``_is_mkldnn_bf16_supported()``: that is
    true on any AVX-512BW CPU, where bf16 is only emulated and 2-4x slower than fp32.
    """
    try:
        import torch.cpu as tcpu

        probes = [getattr(tcpu, name, None)
                  for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
        probes = [p for p in probes if callable(p)]
        if probes:
            return any(bool(p()) for p in probes)
    except Exception:  # noqa: BLE001 - probing only; fall back to the kernel's flags
        pass
    return bool(cpuinfo_bf16_flags())


def native_bf16(device: str = "cpu") -> bool:
    """Whether ``device`` (``cpu`` or ``cuda``) runs bf16 natively (the ``auto`` precondition)."""
    if device.startswith("cuda"):
        import torch

        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
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


_auto_reports: dict[tuple[str, str], dict[str, Any]] = {}
_auto_lock = threading.RLock()


class TorchEncoder(Encoder):
    """Encoder backed by a torch model (see the module docstring for what subclasses provide).

    Subclasses set ``base_id`` (the spec's weights identity, e.g.
    ``text:all-MiniLM-L6-v2@sha256=…``); ``id`` is ``f"{base_id}+{precision}"``.

    Attributes:
        batch_size: the default batch size; ``encode_texts`` and ``image_batches`` take another
            as an argument (never set this on an encoder the sessions of a process share).
        device: where the model runs (``cpu``; bf16 autocast and the ``auto`` capability check
            follow it).
        base_spec: ``spec`` without its ``+bf16`` / ``+fp32`` suffix (what subclasses parse).
        requested_precision: ``fp32``, ``bf16`` or ``auto`` (the spec's suffix, else
            ``MMREC_BF16``), fixed when the encoder is built.
        precision_report: how the precision was decided (``precision``, ``requested``, ``source``,
            ``device``; for ``auto`` also ``native_bf16``, ``speedup`` = fp32 time / bf16 time on
            the probe batch, ``min_cosine``, ``reason``). For ``auto`` it is filled by the first
            access to ``id``/``precision`` or by ``load()``.
    """

    batch_size: int = 32
    image_draft: int | None = 256
    decode_workers: int = max(1, min(4, n_cpus()))
    device: str = "cpu"
    base_id: str

    def __init__(self, spec: str, precision: Requested | None = None) -> None:
        """``precision`` overrides the spec's suffix and ``MMREC_BF16`` (None: use those)."""
        self.spec = spec
        self.base_spec, suffix = split_precision(spec)
        self.requested_precision: Requested = precision or suffix or env_precision()
        env = os.environ.get(PRECISION_ENV, "").strip()
        source = ("argument" if precision else "spec suffix" if suffix
                  else f"{PRECISION_ENV}={env}" if env else "default")
        self.precision_report: dict[str, Any] = {}
        if self.requested_precision != "auto":
            self.precision_report = {"precision": self.requested_precision,
                                     "requested": self.requested_precision, "source": source,
                                     "device": self.device}
        self._model: Any = None
        self._load_lock = threading.Lock()

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

    # --- precision -------------------------------------------------------------------------------
    @property
    def precision(self) -> Precision:
        """``fp32`` or ``bf16``. Known at once unless ``auto`` was asked for; then the first access
        measures (loading the model), and the result is kept for this process and every encoder
        with the same ``base_id``."""
        if self.requested_precision != "auto":
            return self.requested_precision  # type: ignore[return-value]
        return self._resolve_auto()["precision"]

    @property
    def id(self) -> str:  # type: ignore[override]
        """Cache identity: ``base_id`` + ``+fp32`` / ``+bf16`` (resolves ``auto``, see
        ``precision``)."""
        return f"{self.base_id}+{self.precision}"

    def _resolve_auto(self) -> dict[str, Any]:
        key = (self.base_id, self.device)
        with _auto_lock:
            report = _auto_reports.get(key)
            if report is None:
                report = self.measure_precision()
                _auto_reports[key] = report
        self.precision_report = dict(report)
        return report

    def measure_precision(self, repeats: int = AUTO_REPEATS) -> dict[str, Any]:
        """Measure bf16 against fp32 on the probe batch and decide (``choose_precision``).

        Without native bf16 nothing is timed (emulated bf16 is slow by construction). Otherwise
        each probe input set runs once untimed per precision, then ``repeats`` times per precision,
        fp32 and bf16 alternating (so background load hits both alike); the best time counts.
        ``speedup`` = summed best fp32 time / summed best bf16 time; ``min_cosine`` = the worst
        cosine between a bf16 vector and its fp32 vector. Loads the model.
        """
        report: dict[str, Any] = {"requested": "auto", "source": f"{PRECISION_ENV}=auto",
                                  "device": self.device, "native_bf16": native_bf16(self.device),
                                  "speedup": None, "min_cosine": None}
        if report["native_bf16"]:
            self._ensure_built()
            t32 = t16 = 0.0
            worst = 1.0
            for fn, probe in self._probes():
                (v32, s32), (v16, s16) = self._timed(fn, probe, repeats)
                t32, t16 = t32 + s32, t16 + s16
                worst = min(worst, min_row_cosine(v32, v16))
            report["speedup"] = t32 / max(t16, 1e-12)
            report["min_cosine"] = worst
        report["precision"], report["reason"] = choose_precision(
            report["native_bf16"], report["speedup"], report["min_cosine"])
        return report

    def _timed(self, fn: Callable, x: Any,
               repeats: int) -> tuple[tuple[np.ndarray, float], tuple[np.ndarray, float]]:
        """``((fp32 vectors, best seconds), (bf16 vectors, best seconds))`` of ``fn(x)``: one
        warm-up per precision, then ``repeats`` timed runs of each, alternating."""
        out = {bf16: self._run(fn, x, bf16=bf16) for bf16 in (False, True)}
        best = {False: float("inf"), True: float("inf")}
        for _ in range(max(1, repeats)):
            for bf16 in (False, True):
                t0 = _clock()
                out[bf16] = self._run(fn, x, bf16=bf16)
                best[bf16] = min(best[bf16], _clock() - t0)
        return (out[False], best[False]), (out[True], best[True])

    # --- loading -------------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _ensure_built(self) -> None:
        with self._load_lock:
            if self._model is None:
                setup_torch()
                self._build()

    def load(self) -> None:
        """Load the weights now; with ``MMREC_BF16=auto`` also decide the precision."""
        self._ensure_built()
        if self.requested_precision == "auto":
            self._resolve_auto()

    def _probes(self) -> list[tuple[Callable, Any]]:
        """Fixed inputs of every modality the encoder has (needs the model built for images)."""
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
        """``fn(x)`` under ``inference_mode`` (bf16 autocast if ``bf16``, default: the encoder's
        precision), as L2-normalised float32 numpy rows."""
        import torch

        bf16 = self.precision == "bf16" if bf16 is None else bf16
        with torch.inference_mode():
            if bf16:
                with torch.autocast(self.device.split(":")[0], dtype=torch.bfloat16):
                    out = fn(x)
            else:
                out = fn(x)
        return l2_normalise(out.float().cpu().numpy())

    # --- the contract ----------------------------------------------------------------------------
    def encode_texts(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        if "text" not in self.modalities:
            return super().encode_texts(texts, batch_size)
        self.load()
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        bs = max(1, batch_size or self.batch_size)
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
