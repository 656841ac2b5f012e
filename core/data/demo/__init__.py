"""A synthetic restaurant dataset in the exact Yelp Open Dataset layout, generated offline.

The demo is small (about 300 restaurants, 2,000 users, 25k reviews, 1,500 photos) but carries real
structure, so techniques differ for honest reasons:

* ten cuisines, each with its dishes, drinks, colour palette and drawing motif, and price levels;
* every user has latent tastes (a preference over 1-3 cuisines, a home city, a preferred price
  level and a price sensitivity) and restaurants have a Zipf-like popularity and a quality;
* which restaurants a user reviews follows taste x popularity x locality x price fit, so
  collaborative filtering beats most-popular, which beats random;
* stars follow taste match + restaurant quality + price fit + noise; review text names the
  cuisine and its dishes with sentiment words tied to the stars;
* photos are drawn with PIL so their look reflects the cuisine (food and drinks), plus menus,
  interiors and storefronts as in the real photo archive;
* reviews span 2015-2022; some restaurants have no photo and some users exactly one review.

Everything is drawn from one seeded generator, so a seed gives byte-identical files.
``ensure_demo`` generates the data once into a cache directory (atomically, safe under concurrency).

Parts: ``vocabulary.toml`` + ``vocabulary`` (cuisines, cities, names, review phrases), ``world``
(businesses, users, tastes, reviews, stars, dates), ``text`` (names, reviews, captions),
``drawing`` (photos), ``files`` (the Yelp files), ``generate`` (``generate_demo``, the order).
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from core.data.demo.drawing import PHOTO_SIZE
from core.data.demo.files import GENERATOR_VERSION
from core.data.demo.generate import generate_demo
from core.data.demo.vocabulary import CUISINES, Cuisine
from core.data.demo.world import PHOTO_LABELS
from core.data.yelp import BUSINESS_FILE, PHOTO_DIR, PHOTO_FILE, REVIEW_FILE, USER_FILE

__all__ = [
    "BUSINESS_FILE", "CUISINES", "GENERATOR_VERSION", "MARKER", "PHOTO_DIR", "PHOTO_FILE",
    "PHOTO_LABELS", "PHOTO_SIZE", "REVIEW_FILE", "USER_FILE", "Cuisine", "ensure_demo",
    "generate_demo",
]

MARKER = ".demo-complete"


def _complete(root: Path) -> bool:
    marker = root / MARKER
    try:
        return marker.read_text(encoding="utf-8").strip() == GENERATOR_VERSION
    except OSError:
        return False


def ensure_demo(root: Path) -> Path:
    """Return ``root`` holding the demo data, generating it first if missing or incomplete.

    Generation writes into a temporary sibling directory, adds the marker file
    (``.demo-complete`` with the generator version) and renames it into place, so a reader never
    sees half-written data. Two processes calling this at once are safe: a file lock makes the
    second wait for the first, and the rename is atomic either way.
    """
    root = Path(root)
    if _complete(root):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    lock_path = root.parent / f".{root.name}.lock"
    with open(lock_path, "a+") as lock:
        try:
            import fcntl

            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        except ImportError:  # no fcntl (Windows): the atomic rename still keeps readers safe
            pass
        if _complete(root):
            return root
        tmp = root.parent / f".{root.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            # looked up in this module at call time, so a test can substitute a smaller demo
            generate_demo(tmp, progress=False)
            (tmp / MARKER).write_text(GENERATOR_VERSION + "\n", encoding="utf-8")
            if root.exists():  # stale or incomplete: move it aside, then replace
                old = root.parent / f".{root.name}.old-{uuid.uuid4().hex[:8]}"
                os.replace(root, old)
                shutil.rmtree(old, ignore_errors=True)
            os.replace(tmp, root)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return root
