"""Trained projection heads: applied in numpy (no torch needed to use them), stored beside the
embedding cache as ``<cache>/align/<key>.npz`` (weights) + ``<key>.json`` (what they are).

A head maps a frozen tower's vector to the shared space: ``linear`` is ``x W + b``; ``mlp`` is
``relu(x W1 + b1) W2 + b2``; no layer at all (the text side of ``locked`` heads) keeps the
tower's vector. The output is L2-normalised; rows that were not ``ok`` (no input)
stay zero. Files are written under a temporary name and renamed, so a reader never sees half a
file; two processes training one key write the same heads.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.encoders.base import l2_normalise

FOLDER = "align"


@dataclass
class Heads:
    """Layers ``[(W, b), ...]`` per modality (``"text"``, ``"image"``) and the logit scale."""

    layers: dict[str, list[tuple[np.ndarray, np.ndarray]]]
    logit_scale: float
    info: dict[str, Any] = field(default_factory=dict)

    def project(self, modality: str, x: np.ndarray, ok: np.ndarray | None = None) -> np.ndarray:
        """Tower vectors ``(n, d_in)`` → shared-space vectors ``(n, dim)``, L2-normalised float32
        (rows with ``ok`` False stay zero)."""
        h = np.asarray(x, dtype=np.float32)
        layers = self.layers[modality]
        for i, (w, b) in enumerate(layers):
            h = h @ w + b
            if i < len(layers) - 1:
                np.maximum(h, 0.0, out=h)
        h = l2_normalise(h)
        if ok is not None:
            h[~np.asarray(ok, dtype=bool)] = 0.0
        return h

    @property
    def dim(self) -> int:
        return int(self.layers["image"][-1][0].shape[1])


def heads_path(cache_root: str | Path, key: str) -> Path:
    return Path(cache_root) / FOLDER / f"{key}.npz"


def save_heads(cache_root: str | Path, key: str, heads: Heads) -> Path:
    """Write ``heads`` under ``key`` (atomically); returns the ``.npz`` path."""
    path = heads_path(cache_root, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {"logit_scale": np.array(heads.logit_scale, np.float32)}
    for modality, layers in heads.layers.items():
        for i, (w, b) in enumerate(layers):
            arrays[f"{modality}_w{i}"] = np.asarray(w, np.float32)
            arrays[f"{modality}_b{i}"] = np.asarray(b, np.float32)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    meta = path.with_suffix(".json")
    tmp_meta = meta.with_name(f".{meta.stem}.{os.getpid()}.tmp.json")
    tmp_meta.write_text(json.dumps(heads.info, indent=2, sort_keys=True, default=str))
    os.replace(tmp_meta, meta)
    os.replace(tmp, path)  # the weights last: their presence means "complete"
    return path


def load_heads(cache_root: str | Path, key: str) -> Heads | None:
    """The heads stored under ``key``, or None when there are none (or they are unreadable)."""
    path = heads_path(cache_root, key)
    if not path.exists():
        return None
    try:
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        info = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError, KeyError):
        return None
    layers: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for modality in ("text", "image"):
        i, layers[modality] = 0, []
        while f"{modality}_w{i}" in arrays:
            layers[modality].append((arrays[f"{modality}_w{i}"], arrays[f"{modality}_b{i}"]))
            i += 1
    if not layers["image"]:
        return None
    return Heads(layers=layers, logit_scale=float(arrays["logit_scale"]), info=info)


def list_heads(cache_root: str | Path) -> list[dict[str, Any]]:
    """The ``info`` of every stored set of heads (newest first)."""
    folder = Path(cache_root) / FOLDER
    out = []
    for meta in sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        if meta.name.startswith(".") or not meta.with_suffix(".npz").exists():
            continue
        try:
            out.append(json.loads(meta.read_text()))
        except (OSError, ValueError):
            continue
    return out
