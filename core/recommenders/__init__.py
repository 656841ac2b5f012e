"""Techniques: the ``Recommender`` contract (``base.py``) and a registry of named implementations.

Callers never touch a backend class: ``create_recommender("als", factors=100)`` builds one, and
``list_techniques()`` fills dropdowns and help texts. A new technique is one class decorated with
``@register`` in a module listed in ``_MODULES`` (imported on first use, so ``import core`` stays
light and torch-free).
"""

from __future__ import annotations

import importlib
from typing import Any

from core.errors import TechniqueUnavailable
from core.recommenders.base import FitContext, Recommender

__all__ = [
    "FitContext", "Recommender", "create_recommender", "get_technique", "list_techniques",
    "register",
]

#: Modules that define registered techniques, in display order. A module that does not exist yet
#: is skipped (the later issues add theirs here).
_MODULES = (
    "baselines", "implicit_models", "itemknn", "content", "clip", "multiview",
    "lightgcn", "vbpr", "freedom", "fusion", "hybrid",
)

_REGISTRY: dict[str, type[Recommender]] = {}
_loaded = False


def register(cls: type[Recommender]) -> type[Recommender]:
    """Class decorator: add a ``Recommender`` subclass to the registry under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__qualname__} needs a non-empty class attribute `name`")
    other = _REGISTRY.get(cls.name)
    if other is not None and other is not cls and other.__qualname__ != cls.__qualname__:
        raise ValueError(f"technique name {cls.name!r} is taken by {other.__qualname__}")
    _REGISTRY[cls.name] = cls
    return cls


def _load_builtin() -> None:
    global _loaded
    if _loaded:
        return
    for mod in _MODULES:
        full = f"{__name__}.{mod}"
        try:
            importlib.import_module(full)
        except ModuleNotFoundError as exc:
            if exc.name != full:  # a real missing dependency inside an existing module
                raise
    # display order = _MODULES order, whichever module happened to be imported first
    rank = {f"{__name__}.{m}": i for i, m in enumerate(_MODULES)}
    ordered = sorted(_REGISTRY.items(), key=lambda kv: rank.get(kv[1].__module__, len(rank)))
    _REGISTRY.clear()
    _REGISTRY.update(ordered)
    _loaded = True


def _describe(cls: type[Recommender]) -> dict[str, Any]:
    doc = (cls.__doc__ or "").strip().splitlines()
    return {
        "name": cls.name,
        "label": cls.label or cls.name,
        "needs": sorted(cls.needs),
        "uses": sorted(cls.uses),
        "description": doc[0].strip() if doc else "",
        "fallback": cls.fallback,
    }


def list_techniques() -> list[dict[str, Any]]:
    """Every registered technique as ``{name, label, needs, uses, description, fallback}`` (fresh
    copies), in registration order: ``needs`` are the encoder roles it cannot run without, ``uses``
    those whose encoder can change its results."""
    _load_builtin()
    return [_describe(cls) for cls in _REGISTRY.values()]


def get_technique(name: str) -> type[Recommender]:
    """The class registered as ``name``; ``TechniqueUnavailable`` listing known names if none."""
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(_REGISTRY)
        raise TechniqueUnavailable(f"unknown technique {name!r}: choose from {known}") from None


def create_recommender(name: str, **params: Any) -> Recommender:
    """A new, unfitted instance of technique ``name`` with hyperparameters ``params``.

    A hyperparameter given here is fixed (not searched on validation)."""
    return get_technique(name)(**params)
