"""Machinery shared by the torch encoders: threads, precision, batched inference, image prefetch.

``TorchEncoder`` implements the ``Encoder`` contract once; a concrete encoder only says how to build
its model (``_build``), how to preprocess one decoded image (``_preprocess``) and how to run a batch
(``_forward_images`` / ``_forward_texts``). Everything runs under ``torch.inference_mode()``;
images are decoded and preprocessed in a small thread pool while the model runs on the previous
batch.

Precision (see ``core.encoders.precision``): fp32 unless the spec or ``MMREC_BF16`` asks for bf16;
``MMREC_BF16=auto`` measures bf16 against fp32 on a fixed probe batch (``measure_precision``) and
keeps the result per process per weights identity. ``+int8`` (by spec only) runs the image tower
quantized in ONNX Runtime (``quantize_int8``) if its probe vectors agree with fp32 to
``INT8_MIN_COSINE``, and refuses otherwise. Every id ends in the precision (``+fp32``, ``+bf16``
or ``+int8``).

Images, fast path (issue 12; ``bench.embed_speed`` has the figures):

* preprocessing: when the encoder's transform is a torchvision ``Compose`` ending in
  ``ToTensor, Normalize`` (open_clip's and EfficientNet-Lite0's), the decode threads run only its
  PIL steps (resize, crop) and hand back uint8 pixels; ``ToTensor + Normalize`` run once per batch
  in numpy, with the same float32 arithmetic (so the same values), straight into the layout the
  model wants. No torch op runs per image, so decode threads never start torch thread pools that
  fight the model's for the two cores;
* the forward pass: with fp32 on the CPU and ``MMREC_RUNTIME`` unset or ``auto``, the image tower is
  exported once per process to ONNX (in memory) and run by ONNX Runtime when it is installed:
  measured here 2-7x faster than torch eager for EfficientNet-Lite0 and 1.3-3x for ViT-B-32, and it
  keeps its speed when other processes load the machine, where torch's two spinning OpenMP threads
  collapse. Its vectors agree with torch's to float rounding (measured cosine ≥ 0.9999998; it is
  used only if ≥ ``ORT_MIN_COSINE`` on the probe batch; ``tests/encoders/test_fast_path.py``), so
  the runtime is not part of ``Encoder.id``: the cache may mix rows from both, as it mixes rows
  from different batch sizes. Full batches run in a second session whose batch axis is fixed
  (``_ort_session_for``), where ONNX Runtime can fold the shape arithmetic of TF-style padding.
  ``MMREC_RUNTIME=torch`` keeps torch; bf16 always runs in torch
  (autocast). ``runtime_report`` says what ran and why. The export costs a few seconds per process
  (tens of seconds for ViT-B-32 on a loaded 2-core machine), paid on the first image batch.
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
    INT8_MIN_COSINE,
    PRECISION_ENV,
    Precision,
    Requested,
    choose_precision,
    cpuinfo_bf16_flags,
    env_precision,
    split_precision,
)

__all__ = ["BF16_MIN_COSINE", "RUNTIME_ENV", "TorchEncoder", "cpu_has_native_bf16", "env_runtime",
           "native_bf16", "read_image"]

#: Environment switch for the image tower's runtime: ``auto`` (default: ONNX Runtime for fp32 on
#: the CPU when ``onnxruntime`` and ``onnx`` are installed, else torch), ``torch`` or ``onnx``.
RUNTIME_ENV = "MMREC_RUNTIME"
RUNTIMES = ("auto", "torch", "onnx")
#: ONNX Runtime is used only if its vectors agree with torch's to this cosine on the probe batch
#: (measured: ≥ 0.9999998 for EfficientNet-Lite0 and ViT-B-32; float rounding).
ORT_MIN_COSINE = 0.9999
#: Image batch size when ONNX Runtime runs the tower (measured: 32 beats 8 by ~1.4x for
#: EfficientNet-Lite0 there; torch eager gained nothing past 8).
ORT_IMAGE_BATCH = 32

#: Timed repetitions per precision when ``auto`` measures (after one untimed warm-up); best kept.
AUTO_REPEATS = 3
#: The clock ``auto`` times with (a module attribute so tests can script it).
_clock = time.perf_counter

_setup_lock = threading.Lock()
_setup_done = False


def env_runtime() -> str:
    """The image runtime ``MMREC_RUNTIME`` asks for; ``EncoderUnavailable`` naming it if
    unreadable."""
    from core.errors import EncoderUnavailable

    raw = os.environ.get(RUNTIME_ENV, "")
    mode = raw.strip().lower() or "auto"
    if mode in ("onnxruntime", "ort"):
        mode = "onnx"
    if mode not in RUNTIMES:
        raise EncoderUnavailable(
            f"{RUNTIME_ENV}={raw!r} is not understood: use auto (the default: ONNX Runtime for "
            "fp32 image towers when it is installed), torch or onnx"
        )
    return mode


def onnxruntime_installed() -> bool:
    """Whether ``onnxruntime`` and ``onnx`` (the exporter needs it) can be imported (no import)."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))


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
    sides ≥ ``draft`` pixels: about the same result after the encoder's resize (see
    ``TorchEncoder.image_draft``), faster on big photos.
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


@dataclass(frozen=True)
class PixelPipeline:
    """An image transform split in two: its PIL steps per image (in the decode threads), then its
    ``ToTensor + Normalize`` once per batch in numpy.

    ``batch`` computes what ``ToTensor`` then ``Normalize`` compute, in the same order and in
    float32 (``x / 255``, ``- mean``, ``/ std``), so a batch holds the same values as the stacked
    tensors of the full transform; only the layout differs (NHWC, i.e. channels-last).
    """

    pil_steps: tuple
    mean: np.ndarray
    std: np.ndarray

    def pixels(self, image) -> np.ndarray:
        """One decoded PIL image → its uint8 ``(H, W, 3)`` pixels after the PIL steps."""
        for step in self.pil_steps:
            image = step(image)
        if image.mode != "RGB":
            image = image.convert("RGB")
        return np.asarray(image, dtype=np.uint8)

    def batch(self, pixels: Sequence[np.ndarray]) -> np.ndarray:
        """uint8 ``(H, W, 3)`` arrays of one size → normalised float32 ``(n, H, W, 3)``."""
        x = np.stack(pixels).astype(np.float32)
        x /= np.float32(255.0)
        x -= self.mean
        x /= self.std
        return x


def split_transform(transform) -> PixelPipeline | None:
    """``transform`` as a ``PixelPipeline`` when it is a torchvision ``Compose`` of PIL steps
    followed by ``ToTensor`` (or a subclass, e.g. open_clip's ``MaybeToTensor``) and a 3-channel
    ``Normalize``; None for anything else (the encoder then runs its whole transform per image)."""
    from torchvision import transforms as T

    steps = list(getattr(transform, "transforms", None) or [])
    if not isinstance(transform, T.Compose) or len(steps) < 2:
        return None
    to_tensor, norm = steps[-2], steps[-1]
    if not isinstance(to_tensor, T.ToTensor) or not isinstance(norm, T.Normalize):
        return None
    tensor_steps = (T.ToTensor, T.PILToTensor, T.ConvertImageDtype, T.Normalize,
                    T.LinearTransformation)
    if any(isinstance(step, tensor_steps) for step in steps[:-2]):
        return None
    mean = np.broadcast_to(np.asarray(norm.mean, dtype=np.float32).reshape(-1), (3,)).copy()
    std = np.broadcast_to(np.asarray(norm.std, dtype=np.float32).reshape(-1), (3,)).copy()
    return PixelPipeline(tuple(steps[:-2]), mean, std)


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
        requested_runtime: the image tower's runtime asked for (``MMREC_RUNTIME`` when the encoder
            was built: ``auto``, ``torch`` or ``onnx``); not part of ``id`` (same vectors).
        runtime_report: what runs the image tower (``runtime``: ``onnxruntime`` or ``torch``,
            ``requested``, ``reason``; with ONNX Runtime also ``min_cosine`` against torch on the
            probe batch); filled by the first image batch.
        requested_precision: ``fp32``, ``bf16``, ``int8`` or ``auto`` (the spec's suffix, else
            ``MMREC_BF16``), fixed when the encoder is built.
        precision_report: how the precision was decided (``precision``, ``requested``, ``source``,
            ``device``; for ``auto`` also ``native_bf16``, ``speedup`` = fp32 time / bf16 time on
            the probe batch, ``min_cosine``, ``reason``). For ``auto`` it is filled by the first
            access to ``id``/``precision`` or by ``load()``.
    """

    batch_size: int = 32
    #: JPEG draft decoding keeps both sides ≥ this (``read_image``): twice the transforms' resize
    #: (224-256), so the resize's own antialiasing does most of the downscaling. Measured on a
    #: 1600×1200 photo: cosine with a full decode 0.9998 (EfficientNet-Lite0), where a draft of 256
    #: (a 1/4-scale decode) gave 0.9986; ``tests/encoders/test_fast_path.py`` pins ≥ 0.999.
    image_draft: int | None = 512
    #: ``encode_texts`` batches texts longest first (the order is restored in the output), so a
    #: batch pads to a similar length; subclasses whose cost follows the longest text set it
    length_sorted_batches: bool = False
    #: image batch size under ONNX Runtime (``image_batches`` without ``batch_size``)
    ort_image_batch: int = ORT_IMAGE_BATCH
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
        self.requested_runtime = env_runtime()
        self.runtime_report: dict[str, Any] = {}
        self._model: Any = None
        self._load_lock = threading.Lock()
        self._runtime_lock = threading.Lock()
        self._pixel_pipeline: PixelPipeline | None = None
        self._ort: Any = None
        self._ort_onnx: str | None = None  # the exported tower's file, until its fixed session
        self._ort_fixed: Any = None  # that session (False: it disagreed; see _ort_session_for)

    def with_runtime(self, runtime: str) -> TorchEncoder:
        """A fresh encoder of the same spec and requested precision whose image tower runs in
        ``runtime`` (``auto``, ``torch`` or ``onnx``); not shared (``create_encoder`` never returns
        it), so tests and benchmarks can compare runtimes side by side."""
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}, not {runtime!r}")
        clone = type(self)(self.spec, self.requested_precision)
        clone.requested_runtime = runtime
        return clone

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

    def _image_transform(self) -> Any:
        """The torchvision transform ``_preprocess`` applies, if it has one (for
        ``split_transform``); None keeps ``_preprocess`` per image."""
        return None

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
        order = None
        if self.length_sorted_batches:
            order = np.argsort([-len(t) for t in texts], kind="stable")
            texts = [texts[i] for i in order]
        parts = [self._run(self._forward_texts, texts[i:i + bs]) for i in range(0, len(texts), bs)]
        out = np.concatenate(parts)
        if order is None:
            return out
        result = np.empty_like(out)
        result[order] = out
        return result

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
        model runs. Undecodable files are reported in ``ImageBatch.bad`` instead of raising.
        ``batch_size`` defaults to ``ort_image_batch`` under ONNX Runtime, else ``batch_size``."""
        self.load()
        runtime = self.image_runtime()
        default_bs = self.ort_image_batch if runtime == "onnxruntime" else self.batch_size
        bs = max(1, batch_size or default_bs)
        chunks = [list(range(i, min(i + bs, len(paths)))) for i in range(0, len(paths), bs)]

        def prep(i: int):
            try:
                return self._prepare_image(read_image(paths[i], self.image_draft)), None
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
                good, items, bad = [], [], []
                for i, fut in zip(chunk, futs):
                    item, reason = fut.result()
                    if item is None:
                        bad.append((i, reason))
                    else:
                        good.append(i)
                        items.append(item)
                if items:
                    vecs = self._encode_prepared(items)
                else:
                    vecs = np.zeros((0, self.dim), dtype=np.float32)
                yield ImageBatch(np.asarray(good, dtype=np.int64), vecs, bad)

    # --- the image fast path (see the module docstring) ------------------------------------------
    def _prepare_image(self, image) -> Any:
        """One decoded image → what ``_encode_prepared`` batches: uint8 pixels on the fast path,
        else the ``_preprocess`` tensor. Runs in the decode threads."""
        pipe = self._pixel_pipeline
        return pipe.pixels(image) if pipe is not None else self._preprocess(image)

    def _encode_prepared(self, items: list) -> np.ndarray:
        """Prepared images of one batch → L2-normalised float32 rows (ONNX Runtime or torch)."""
        import torch

        pipe = self._pixel_pipeline
        if pipe is not None:
            nhwc = pipe.batch(items)
            if self._ort is not None:
                return self._run_ort(np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2)))
            return self._run(self._forward_images, torch.from_numpy(nhwc).permute(0, 3, 1, 2))
        batch = torch.stack(items)
        if self._ort is not None:
            return self._run_ort(batch.contiguous().numpy())
        return self._run(self._forward_images, batch)

    def _run_ort(self, nchw: np.ndarray) -> np.ndarray:
        return l2_normalise(self._ort_session_for(nchw).run(None, {"pixels": nchw})[0])

    def _ort_session_for(self, nchw: np.ndarray) -> Any:
        """The session a batch runs in: for a batch of ``ort_image_batch`` rows, one whose batch
        axis is fixed to that size (``add_free_dimension_override_by_name``), built on the first
        such batch and kept if it agrees with the batch-dynamic session on it (cosine ≥
        ``ORT_MIN_COSINE``); the batch-dynamic session for any other size.

        With every dimension known, ONNX Runtime folds shape arithmetic into constants; for
        EfficientNet-Lite0's TF-style "same" padding that turns 5 Pad subgraphs (Shape, Gather,
        Ceil, Clip, ...) into plain convolutions, which then stay in its blocked (NCHWc) layout
        end to end instead of being reordered around every Pad.
        """
        n = len(nchw)
        if n != self.ort_image_batch or self._ort_onnx is None:
            return self._ort
        with self._runtime_lock:
            if self._ort_fixed is None:
                fixed = _ort_session(self._ort_onnx, batch=n)
                want = l2_normalise(self._ort.run(None, {"pixels": nchw})[0])
                got = l2_normalise(fixed.run(None, {"pixels": nchw})[0])
                cosine = min_row_cosine(got, want)
                self.runtime_report["fixed_batch"] = n
                self.runtime_report["fixed_batch_min_cosine"] = cosine
                if cosine < ORT_MIN_COSINE:
                    fixed = False  # disagrees: never ask again
                self._ort_fixed = fixed
                # built once, for the first full batch's size: the file is not needed again
                _remove_quietly(self._ort_onnx)
                self._ort_onnx = None
            return self._ort_fixed or self._ort

    def image_runtime(self) -> str:
        """``onnxruntime`` or ``torch``: what runs the image tower (decided on the first call,
        which loads the model and, for ONNX Runtime, exports the tower; see ``runtime_report``).
        ``EncoderUnavailable`` when ``MMREC_RUNTIME=onnx`` cannot be honoured."""
        self.load()
        precision = self.precision  # outside the lock: ``auto`` may load and measure
        with self._runtime_lock:
            if not self.runtime_report:
                self._pixel_pipeline = split_transform(self._image_transform())
                self.runtime_report = self._choose_runtime(precision)
            return self.runtime_report["runtime"]

    def _choose_runtime(self, precision: str) -> dict[str, Any]:
        from core.errors import EncoderUnavailable

        wanted = self.requested_runtime
        report: dict[str, Any] = {"requested": wanted, "runtime": "torch"}
        if precision == "int8":
            return self._int8_runtime(report)
        if wanted == "torch":
            return {**report, "reason": f"{RUNTIME_ENV}=torch"}
        if precision != "fp32" or not self.device.startswith("cpu"):
            why = f"{precision} on {self.device} runs in torch"
            if wanted == "onnx":
                raise EncoderUnavailable(f"{self.spec}: {RUNTIME_ENV}=onnx but {why} (only fp32 "
                                         "on the CPU runs in ONNX Runtime)")
            return {**report, "reason": why}
        if not onnxruntime_installed():
            if wanted == "onnx":
                raise EncoderUnavailable(f"{self.spec}: {RUNTIME_ENV}=onnx needs `pip install "
                                         "onnxruntime onnx`")
            return {**report, "reason": "onnxruntime/onnx not installed"}
        try:
            self._ort, cosine = self._start_ort(*self._export_onnx())
        except Exception as exc:  # noqa: BLE001 - any exporter/runtime failure: torch still works
            if wanted == "onnx":
                raise EncoderUnavailable(f"{self.spec}: ONNX export failed ({type(exc).__name__}: "
                                         f"{str(exc)[:200]}); unset {RUNTIME_ENV}") from exc
            return {**report, "reason": f"ONNX export failed: {type(exc).__name__}: "
                                        f"{str(exc)[:200]}"}
        if cosine < ORT_MIN_COSINE:
            self._ort = None
            return {**report, "min_cosine": cosine,
                    "reason": f"ONNX Runtime disagrees with torch (cosine {cosine:.6f})"}
        return {**report, "runtime": "onnxruntime", "min_cosine": cosine,
                "reason": "fp32 on the CPU, onnxruntime installed"}

    def _int8_runtime(self, report: dict[str, Any]) -> dict[str, Any]:
        """``+int8``: the exported tower, quantized (``quantize_int8``), in ONNX Runtime; or
        ``EncoderUnavailable`` saying why not (no ONNX Runtime, not the CPU,
        ``MMREC_RUNTIME=torch``, or probe vectors below ``INT8_MIN_COSINE`` against the fp32
        tower, with the figure)."""
        from core.errors import EncoderUnavailable

        head = f"{self.spec}: +int8 runs the image tower quantized in ONNX Runtime on the CPU"
        if self.requested_runtime == "torch":
            raise EncoderUnavailable(f"{head}; unset {RUNTIME_ENV}=torch or use +fp32")
        if not self.device.startswith("cpu"):
            raise EncoderUnavailable(f"{head}, not on {self.device}: use +bf16 or +fp32 there")
        if not onnxruntime_installed():
            raise EncoderUnavailable(f"{head}: `pip install onnxruntime onnx`, or use +fp32")
        try:
            model, probe = self._export_onnx()
            model, n_quantized = quantize_int8(model)
        except Exception as exc:  # noqa: BLE001 - int8 was asked for: say why it cannot run
            raise EncoderUnavailable(f"{head}; exporting or quantizing it failed "
                                     f"({type(exc).__name__}: {str(exc)[:200]}): use +fp32"
                                     ) from exc
        if not n_quantized:
            raise EncoderUnavailable(
                f"{head}, which quantizes matrix products (MatMul/Gemm); this tower has none "
                "(its convolutions stay float, so it would be fp32 under another name): use +fp32")
        self._ort, cosine = self._start_ort(model, probe)
        if cosine < INT8_MIN_COSINE:
            self._ort = None
            raise EncoderUnavailable(
                f"{head}; its vectors disagree with fp32 here (smallest probe cosine "
                f"{cosine:.4f} < {INT8_MIN_COSINE}): use +fp32 for this encoder")
        return {**report, "runtime": "onnxruntime", "min_cosine": cosine,
                "reason": f"+int8: quantized tower, probe cosine ≥ {INT8_MIN_COSINE} with fp32"}

    def _export_onnx(self) -> tuple[bytes, Any]:
        """The image tower exported to ONNX in memory (batch axis ``n`` dynamic), with the probe
        batch it was traced on."""
        import io
        import warnings

        import torch

        encoder = self

        class Tower(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = encoder._model  # registered, so its weights become initialisers

            def forward(self, pixels):
                return encoder._forward_images(pixels)

        probe = next(x for fn, x in self._probes() if fn == self._forward_images)
        buf = io.BytesIO()
        kwargs: dict[str, Any] = {"input_names": ["pixels"], "output_names": ["features"],
                                  "dynamic_axes": {"pixels": {0: "n"}, "features": {0: "n"}},
                                  "opset_version": 17}
        # traced with autograd on: under no_grad, nn.MultiheadAttention takes its fused "fast
        # path" (aten::_native_multi_head_attention), which has no ONNX form
        with torch.enable_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(Tower().eval(), (probe,), buf, dynamo=False, **kwargs)
            except TypeError:  # a torch without the dynamo switch: TorchScript is its exporter
                torch.onnx.export(Tower().eval(), (probe,), buf, **kwargs)
        return buf.getvalue(), probe

    def _start_ort(self, onnx_bytes: bytes, probe: Any) -> tuple[Any, float]:
        """An ONNX Runtime session of ``onnx_bytes``, with the smallest cosine between its
        vectors and the torch fp32 tower's on ``probe``. The graph waits in a temporary file
        (removed with the encoder, or at exit) for the fixed-batch session (``_ort_session_for``),
        rather than in memory: ViT-B-32's is 350 MB, and a process that only ever encodes single
        photos never builds that session."""
        import tempfile
        import weakref

        fd, path = tempfile.mkstemp(prefix="mmrec-tower-", suffix=".onnx")
        with os.fdopen(fd, "wb") as f:
            f.write(onnx_bytes)
        weakref.finalize(self, _remove_quietly, path)
        self._ort_onnx, self._ort_fixed = path, None
        session = _ort_session(onnx_bytes)
        want = self._run(self._forward_images, probe, bf16=False)
        got = l2_normalise(session.run(None, {"pixels": probe.contiguous().numpy()})[0])
        return session, min_row_cosine(got, want)


def quantize_int8(onnx_bytes: bytes) -> tuple[bytes, int]:
    """An exported float tower with its MatMul/Gemm weights quantized to 8 bits (ONNX Runtime's
    dynamic quantization: activations are quantized per batch, so there is no calibration set),
    and how many of its products were quantized.

    Weights are unsigned (u8 x u8): with signed weights, ONNX Runtime's x86 kernels without VNNI
    multiply through 16-bit sums that can saturate (``VPMADDUBSW``); measured on ViT-B-32 here,
    s8 weights gave probe cosines of 0.983-0.987 with fp32 and u8 weights 0.9998. Convolutions
    stay in float: ONNX Runtime's integer convolution measured slower than its float one here.
    """
    import tempfile
    from pathlib import Path

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="mmrec-int8-") as tmp:
        src, pre, out = (Path(tmp) / name for name in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        src.write_bytes(onnx_bytes)
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_dynamic(str(pre), str(out), weight_type=QuantType.QUInt8,
                         op_types_to_quantize=["MatMul", "Gemm"])
        graph = onnx.load(str(out)).graph
        integer_ops = ("MatMulInteger", "DynamicQuantizeMatMul", "QGemm", "MatMulIntegerToFloat")
        return out.read_bytes(), sum(node.op_type in integer_ops for node in graph.node)


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def _ort_session(onnx: bytes | str, batch: int | None = None) -> Any:
    """An ONNX Runtime CPU session of an exported image tower (its bytes or its file), sized like
    torch's thread pool; with ``batch``, its batch axis (``n``) is fixed to that size."""
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    if batch is not None:
        options.add_free_dimension_override_by_name("n", batch)
    return ort.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])
