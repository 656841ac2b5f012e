"""The ``align:`` spec: which towers, which pairs, which hyperparameters (torch-free).

Grammar: ``align:<text spec>+<image spec>[?key=value&key=value...]``, e.g.
``align:text:minilm+cnn:efficientnet-lite0`` or
``align:text:minilm+cnn:efficientnet-lite0+bf16?pairs=caption+item+review&dim=128``.
The towers are split at the ``+`` that starts the image spec's kind (``clip:``, ``text:``,
``bert:``, ``cnn:``), so tower suffixes such as ``+bf16`` and ``+chunk`` stay with their tower.
Options (``OPTIONS``; unknown keys are an error naming the key):

* ``pairs`` — pair sets joined by ``+`` (``PAIR_KINDS``; default ``caption+item``);
* ``head`` — ``locked`` (default): the text tower's space is kept as it is and one linear head
  learns to map the image tower's vectors into it (LiT's locked tower, with the text side locked:
  prompts and queries keep everything the text model knows); ``linear`` / ``mlp``: both towers
  get a head into a new ``dim``-dimensional space (``mlp``: one hidden ReLU layer of ``2 * dim``);
* ``dim`` — the shared dimension of ``linear`` / ``mlp`` heads (default 256; ``locked`` uses the
  text tower's dimension);
* ``epochs``, ``batch``, ``lr``, ``wd`` (AdamW weight decay), ``temp`` (initial temperature of
  the learnable logit scale), ``seed`` (weights, batches and the 90/10 item split),
  ``reviews`` (review texts per item for the ``review`` pair set).

The canonical spec (``AlignConfig.spec``) lists only options that differ from the defaults, in
``OPTIONS`` order, so two ways of writing one configuration give one spec.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from core.errors import EncoderUnavailable

PREFIX = "align:"
#: Pair sets: photo ↔ its caption; item's photos ↔ item document; item's photos ↔ its reviews.
PAIR_KINDS = ("caption", "item", "review")
DEFAULT_PAIRS = ("caption", "item")
HEADS = ("locked", "linear", "mlp")
DEFAULT_ALIGN = "align:text:minilm+cnn:efficientnet-lite0"
_TOWER_START = re.compile(r"\+(?=(?:clip|text|bert|cnn):)")


@dataclass(frozen=True)
class AlignConfig:
    """One aligned space: the two frozen towers, the pair sets and the heads' hyperparameters."""

    text: str
    image: str
    pairs: tuple[str, ...] = DEFAULT_PAIRS
    dim: int = 256
    head: str = "locked"
    epochs: int = 120
    batch: int = 256
    lr: float = 5e-3
    wd: float = 1e-4
    temp: float = 0.07
    seed: int = 0
    reviews: int = 3

    @property
    def spec(self) -> str:
        """The canonical spec string (defaults left out)."""
        default = AlignConfig(self.text, self.image)
        opts = []
        for name in OPTIONS:
            value = getattr(self, name)
            if value != getattr(default, name):
                opts.append(f"{name}={'+'.join(value) if name == 'pairs' else value}")
        return f"{PREFIX}{self.text}+{self.image}" + (f"?{'&'.join(opts)}" if opts else "")

    def hyperparameters(self) -> dict[str, Any]:
        """Everything but the towers (part of the heads' cache key)."""
        out = asdict(self)
        out.pop("text")
        out.pop("image")
        out["pairs"] = list(self.pairs)
        return out


OPTIONS = tuple(f.name for f in fields(AlignConfig) if f.name not in ("text", "image"))


def is_align_spec(spec: str) -> bool:
    return spec.strip().startswith(PREFIX)


def parse_align_spec(spec: str) -> AlignConfig:
    """``AlignConfig`` of an ``align:`` spec; ``EncoderUnavailable`` naming what is wrong."""
    spec = spec.strip()
    if not spec.startswith(PREFIX):
        raise EncoderUnavailable(f"{spec!r} is not an align: spec")
    towers, _, query = spec[len(PREFIX):].partition("?")
    parts = _TOWER_START.split(towers, maxsplit=1)
    if len(parts) != 2 or not all(p.strip() for p in parts):
        raise EncoderUnavailable(
            f"align spec {spec!r}: give a text encoder and an image encoder joined by '+', e.g. "
            f"{DEFAULT_ALIGN}")
    cfg = AlignConfig(parts[0].strip(), parts[1].strip())
    changes: dict[str, Any] = {}
    for item in filter(None, query.split("&")):
        key, eq, value = item.partition("=")
        key = key.strip()
        if key not in OPTIONS or not eq:
            raise EncoderUnavailable(
                f"align spec {spec!r}: unknown option {item!r}; options are "
                f"{', '.join(OPTIONS)} (key=value joined by '&')")
        try:
            if key == "pairs":
                kinds = tuple(k.strip() for k in value.split("+") if k.strip())
                bad = [k for k in kinds if k not in PAIR_KINDS]
                if bad or not kinds:
                    raise ValueError(f"pair sets are {', '.join(PAIR_KINDS)}")
                changes[key] = tuple(k for k in PAIR_KINDS if k in kinds)
            elif key == "head":
                if value not in HEADS:
                    raise ValueError(f"head is one of {', '.join(HEADS)}")
                changes[key] = value
            else:
                kind = type(getattr(cfg, key))
                changes[key] = kind(value)
                if changes[key] <= 0 and key not in ("seed", "wd"):
                    raise ValueError("must be positive")
        except ValueError as exc:
            raise EncoderUnavailable(f"align spec {spec!r}: bad value for {key}: {value!r} "
                                     f"({exc})") from exc
    cfg = replace(cfg, **changes)
    if cfg.head == "locked" and "dim" in changes:
        raise EncoderUnavailable(
            f"align spec {spec!r}: dim applies to head=linear or head=mlp; head=locked (the "
            "default) keeps the text tower's space and its dimension")
    return cfg
