"""Process-wide settings that come from the environment, resolved in one place."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "MMREC_CACHE_DIR"
DEFAULT_SEED = 42


def cache_dir(value: str | os.PathLike | None = None) -> Path:
    """The cache directory: ``value`` if given, else ``$MMREC_CACHE_DIR``, else ``./cache``.

    The directory is created if missing.
    """
    raw = value if value not in (None, "") else os.environ.get(CACHE_ENV) or "cache"
    path = Path(raw).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path
