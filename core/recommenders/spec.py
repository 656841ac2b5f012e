"""Technique specs: one experiment row as data — ``(label, technique, params)``.

A row names a registered technique and the hyperparameters it is built with; two rows may use the
same technique with different params (one ``image`` row per image encoder is two rows with
different ``encoder=``). Rows are what ``run_experiment`` fits, what presets build and what a stored
run's key is made of; no class is ever generated to hold a parameter.

Text form (``--techniques``): comma-separated ``name`` or ``name:key=value,key=value``; a
``key=value`` item after a ``name:`` item belongs to that row, so
``als:factors=64,regularization=10,bpr,image:encoder=cnn:resnet101`` is three rows. Values are read
as JSON where they parse (``64``, ``0.5``, ``true``), else kept as text. A row's label is its
technique name, or ``name:key=value,...`` when it has params (unique within a run).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.errors import LabError

__all__ = ["TechniqueSpec", "as_specs", "format_params", "parse_techniques"]


@dataclass(frozen=True)
class TechniqueSpec:
    """One experiment row.

    Attributes:
        technique: the registry name (``core.recommenders.get_technique``).
        params: hyperparameters passed to the technique's constructor (fixed, not searched).
        label: the row's name in tables, stored runs and per-user frames; defaults to
            ``technique`` (no params) or ``technique:key=value,...``.
    """

    technique: str
    params: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""

    def __post_init__(self) -> None:
        if not self.technique or not isinstance(self.technique, str):
            raise LabError(f"a technique row needs a technique name, got {self.technique!r}")
        object.__setattr__(self, "params", dict(self.params))
        if not self.label:
            text = self.technique + (f":{format_params(self.params)}" if self.params else "")
            object.__setattr__(self, "label", text)

    def identity(self) -> dict[str, Any]:
        """What makes two rows the same computation (the label is only a name)."""
        return {"technique": self.technique,
                "params": {k: self.params[k] for k in sorted(self.params)}}

    def __hash__(self) -> int:  # params is a dict: hash the identity's JSON instead
        return hash((self.label, json.dumps(self.identity(), sort_keys=True, default=str)))


def format_params(params: Mapping[str, Any]) -> str:
    """``{"factors": 64, "encoder": "cnn:vgg16"}`` -> ``encoder=cnn:vgg16,factors=64``."""
    return ",".join(f"{k}={_text(params[k])}" for k in sorted(params))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_techniques(text: str | None) -> list[TechniqueSpec]:
    """Rows from the ``--techniques`` text (see the module docstring); ``LabError`` naming the
    item on a ``key=value`` with no row before it, an empty key, or a label used twice."""
    rows: list[tuple[str, dict[str, Any]]] = []
    for item in (x.strip() for x in str(text or "").split(",")):
        if not item:
            continue
        name, colon, rest = item.partition(":")
        if "=" in name or (not colon and "=" in item):
            if not rows:
                raise LabError(f"--techniques: {item!r} has no technique before it "
                               "(write name:key=value,key=value)")
            key, _, value = item.partition("=")
            _add(rows[-1][1], key, value, item)
            continue
        rows.append((name.strip(), {}))
        if colon and rest.strip():
            key, eq, value = rest.partition("=")
            if not eq:
                raise LabError(f"--techniques: {item!r}: write name:key=value")
            _add(rows[-1][1], key, value, item)
    return as_specs(TechniqueSpec(name, params) for name, params in rows)


def _add(params: dict[str, Any], key: str, value: str, item: str) -> None:
    key = key.strip()
    if not key:
        raise LabError(f"--techniques: {item!r} has an empty parameter name")
    params[key] = _value(value.strip())


def as_specs(rows: Iterable[str | TechniqueSpec]) -> list[TechniqueSpec]:
    """Rows from names or specs (a bare name is a row without params); ``LabError`` if two rows
    share a label."""
    out = [r if isinstance(r, TechniqueSpec) else TechniqueSpec(str(r)) for r in rows]
    seen: set[str] = set()
    for r in out:
        if r.label in seen:
            raise LabError(f"technique row {r.label!r} is listed twice; give each row its own "
                           "label or params")
        seen.add(r.label)
    return out
