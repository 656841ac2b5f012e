"""Where weights come from, checked without downloading anything.

Encoders ask here whether their weights are on this machine (Hugging Face hub cache, torch hub
cache, a local file) before trying to load them, so a missing model fails fast with an
``EncoderUnavailable`` that says how to provide it, instead of a network timeout or, worse, a
silent fallback to random weights.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from core.errors import EncoderUnavailable

_sha_memo: dict[tuple[str, int, int], str] = {}


def offline() -> bool:
    """True when the Hugging Face / transformers offline switches are set."""
    return any(
        os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on")
        for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "MMREC_OFFLINE")
    )


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file (memoised per process by path, size and mtime)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _sha_memo:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _sha_memo[key] = h.hexdigest()
    return _sha_memo[key]


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache folder, resolved as ``huggingface_hub`` resolves it
    (``HF_HUB_CACHE``, ``HUGGINGFACE_HUB_CACHE``, ``$HF_HOME/hub``,
    ``$XDG_CACHE_HOME/huggingface/hub``, ``~/.cache/huggingface/hub``)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def hf_cached_file(repo_id: str, filenames: list[str]) -> str | None:
    """Path of the first of ``filenames`` in the local HF hub cache of ``repo_id`` at its ``main``
    revision (``models--<org>--<name>/refs/main`` names the snapshot folder).

    Read from the files, without importing ``huggingface_hub`` (a quarter of a second, on the
    first page of the app); ``tests/encoders/test_probe.py`` checks it against
    ``huggingface_hub.try_to_load_from_cache`` on fake caches.
    """
    repo = hf_hub_cache() / ("models--" + repo_id.replace("/", "--"))
    try:
        commit = (repo / "refs" / "main").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not commit or "/" in commit or commit.startswith("."):
        return None
    for name in filenames:
        path = repo / "snapshots" / commit / name
        if path.is_file():
            return str(path)
    return None


def torch_hub_file(url: str) -> str | None:
    """Path of ``url``'s file in the torch hub checkpoint cache, if present."""
    import torch.hub

    path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
    return str(path) if path.is_file() else None


def unavailable(model: str, spec: str, detail: str, local_hint: str) -> EncoderUnavailable:
    """The one message for missing weights: what is missing and both ways to provide it."""
    return EncoderUnavailable(
        f"{spec}: the weights of {model} are not on this machine ({detail}). Either run "
        f"`python -m core embed ... --encoder {spec}` once with network access (this fills the "
        f"Hugging Face / torch hub cache: $HF_HOME or ~/.cache/huggingface, $TORCH_HOME or "
        f"~/.cache/torch), or point at local weights: {local_hint}. No random-weight fallback is "
        f"used."
    )
