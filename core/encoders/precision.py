"""Which numeric precision a torch encoder runs in: configuration, not a guess (torch-free).

fp32 is the default everywhere. bf16 autocast is opt-in, per spec or per process:

- a spec suffix: ``text:minilm+bf16``, ``clip:ViT-B-32/openai+chunk+bf16`` (any order with CLIP's
  ``+chunk``); ``+fp32`` says fp32 explicitly. A suffix wins over the environment;
- ``MMREC_BF16``: unset / ``0`` → fp32, ``1`` → bf16 for every torch encoder, ``auto`` → measured on
  this machine (``choose_precision``: bf16 only where the device has native bf16, bf16 is at least
  ``AUTO_MIN_SPEEDUP`` times faster than fp32 on the encoder's probe batch, and every probe vector
  has cosine ≥ ``BF16_MIN_COSINE`` with its fp32 vector).

int8 is opt-in per spec only, for CLIP (``clip:ViT-B-32/openai+int8``): the image tower's matrix
products run in 8-bit integers in ONNX Runtime (dynamic quantization:
weights quantized once, activations per batch; no calibration data, so the same photo always gets
the same vector). It is used only if every probe vector has cosine ≥ ``INT8_MIN_COSINE`` with the
fp32 tower's, else the encoder refuses with the measured cosine (``core.encoders.runtime``). Texts
of an int8 encoder run in fp32.

The precision is part of ``Encoder.id`` (``<weights identity>+fp32`` / ``+bf16`` / ``+int8``),
so one embedding cache never mixes vectors of different precisions. This module only reads specs,
the environment and ``/proc/cpuinfo``: the app and the run keys use it without importing torch.
"""

from __future__ import annotations

import os
from typing import Literal

from core.errors import EncoderUnavailable

Precision = Literal["fp32", "bf16", "int8"]
Requested = Literal["fp32", "bf16", "auto"]

#: Environment switch (see the module docstring).
PRECISION_ENV = "MMREC_BF16"
#: Encoder kinds that run torch models (the ones precision applies to).
TORCH_KINDS = ("clip", "text", "bert", "cnn")
#: Spec suffixes that pin the precision.
SUFFIXES: dict[str, Precision] = {"+bf16": "bf16", "+fp32": "fp32", "+int8": "int8"}
#: Other suffixes a spec may carry after its body (CLIP's long-text chunking).
_OTHER_SUFFIXES = ("+chunk",)
#: ``auto``: bf16 must be at least this many times faster than fp32 on the probe batch...
AUTO_MIN_SPEEDUP = 1.2
#: ...and every probe vector must have at least this cosine with its fp32 vector.
BF16_MIN_COSINE = 0.99
#: ``+int8``: every probe image vector must have at least this cosine with the fp32 tower's.
INT8_MIN_COSINE = 0.99
#: Encoder kinds whose image towers ``+int8`` quantizes (transformers: their matrix products;
#: CNN towers are convolutions, which it leaves in float).
INT8_KINDS = ("clip",)

_OFF = ("", "0", "false", "off", "no", "fp32")
_ON = ("1", "true", "on", "yes", "bf16")


def env_precision() -> Requested:
    """The precision ``MMREC_BF16`` asks for; ``EncoderUnavailable`` naming it if unreadable."""
    raw = os.environ.get(PRECISION_ENV, "")
    mode = raw.strip().lower()
    if mode in _OFF:
        return "fp32"
    if mode in _ON:
        return "bf16"
    if mode == "auto":
        return "auto"
    raise EncoderUnavailable(
        f"{PRECISION_ENV}={raw!r} is not understood: use 0 (fp32, the default), 1 (bf16 for every "
        "torch encoder) or auto (bf16 only where it measures faster and agrees with fp32)"
    )


def is_torch_spec(spec: str) -> bool:
    """True for specs of the torch encoder kinds (``clip:``, ``text:``, ``bert:``, ``cnn:``)."""
    return spec.strip().partition(":")[0] in TORCH_KINDS


def split_precision(spec: str) -> tuple[str, Precision | None]:
    """``(spec without its precision suffix, the suffix's precision or None)``.

    Looks through the trailing ``+...`` suffixes, so ``clip:X/y+bf16+chunk`` gives
    ``("clip:X/y+chunk", "bf16")``. Two different precision suffixes raise ``EncoderUnavailable``.
    """
    spec = spec.strip()
    kept: list[str] = []
    found: Precision | None = None
    body = spec
    while True:
        suffix = next((s for s in (*SUFFIXES, *_OTHER_SUFFIXES) if body.endswith(s)), None)
        if suffix is None:
            break
        body = body[: -len(suffix)]
        if suffix in SUFFIXES:
            if found is not None and found != SUFFIXES[suffix]:
                both = " and ".join(f"+{x}" for x in sorted((found, SUFFIXES[suffix])))
                raise EncoderUnavailable(f"{spec}: both {both} given; keep one")
            found = SUFFIXES[suffix]
        else:
            kept.insert(0, suffix)
    return body + "".join(kept), found


def requested_precision(spec: str) -> Requested | None:
    """The precision a spec asks for: its suffix, else ``MMREC_BF16``; None for non-torch kinds
    (test fakes). Never loads anything."""
    if not is_torch_spec(spec):
        return None
    found = split_precision(spec)[1]
    if found == "int8" and spec.strip().partition(":")[0] not in INT8_KINDS:
        raise EncoderUnavailable(f"{spec}: +int8 quantizes the matrix products of CLIP image "
                                 "towers (clip: specs) only: use +fp32 or +bf16")
    return found or env_precision()


def spec_with_precision(spec: str) -> str:
    """``spec`` with its requested precision spelled out (``text:minilm`` → ``text:minilm+fp32``,
    or ``+auto`` when ``MMREC_BF16=auto``); non-torch specs are returned unchanged. Used where a
    key must change with the precision without building the encoder (the app's stored-run key)."""
    wanted = requested_precision(spec)
    return spec if wanted is None else f"{split_precision(spec)[0]}+{wanted}"


def precision_of_id(encoder_id: str) -> Precision | None:
    """The precision recorded at the end of an encoder id, or None (fakes, pre-precision ids)."""
    for suffix, precision in SUFFIXES.items():
        if encoder_id.endswith(suffix):
            return precision
    return None


def choose_precision(native: bool, speedup: float | None,
                     min_cosine: float | None) -> tuple[Precision, str]:
    """The ``auto`` decision and its reason, from what was measured on the probe batch.

    bf16 only if the device has native bf16, ``speedup`` (fp32 time / bf16 time) is at least
    ``AUTO_MIN_SPEEDUP`` and ``min_cosine`` (worst bf16-vs-fp32 probe vector) is at least
    ``BF16_MIN_COSINE``; fp32 otherwise.
    """
    if not native:
        return "fp32", "no native bf16 on this device (it would be emulated, several times slower)"
    if speedup is None or speedup < AUTO_MIN_SPEEDUP:
        return "fp32", f"bf16 is not at least {AUTO_MIN_SPEEDUP}x faster than fp32"
    if min_cosine is None or min_cosine < BF16_MIN_COSINE:
        return "fp32", f"a bf16 probe vector has cosine < {BF16_MIN_COSINE} with fp32"
    return "bf16", (f"native bf16, ≥ {AUTO_MIN_SPEEDUP}x faster, every probe vector cosine "
                    f"≥ {BF16_MIN_COSINE} with fp32")


def cpuinfo_bf16_flags(path: str = "/proc/cpuinfo") -> list[str]:
    """Native-bf16 CPU flags (``avx512_bf16``, ``amx_bf16``) listed in ``path`` (Linux); empty
    where the file is missing or lists neither."""
    try:
        with open(path, encoding="ascii", errors="ignore") as f:
            text = f.read()
    except OSError:
        return []
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.partition(":")[2].split())
    return [f for f in ("avx512_bf16", "amx_bf16") if f in flags]


def describe_report(report: dict) -> str:
    """One line for the CLI from an encoder's ``precision_report``: the precision, who asked for
    it and, for ``auto``, what was measured."""
    if not report:
        return ""
    head = f"precision {report.get('precision', '?')} on {report.get('device', 'cpu')}"
    if report.get("requested") != "auto":
        return f"{head} ({report.get('source', 'configured')})"
    measured = []
    if report.get("speedup") is not None:
        measured.append(f"bf16/fp32 speed-up {report['speedup']:.2f}x")
    if report.get("min_cosine") is not None:
        measured.append(f"min cosine {report['min_cosine']:.4f}")
    shown = f"measured {', '.join(measured)}; " if measured else ""
    return f"{head} ({PRECISION_ENV}=auto: {shown}{report.get('reason', '')})"
