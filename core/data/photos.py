"""Photo file screening shared by every loader with photos (Yelp, ``csv:`` ``[images]``, posters).

A loader lists the photos it found on disk; ``screen_photos`` then reads the first bytes of each
file (no decoding) and leaves out the ones no encoder could use:

* ``photos_zero_byte``: the file is empty (an interrupted download, a placeholder);
* ``photos_undecodable``: the file cannot be opened, or its first bytes are no image header (an
  HTML error page saved as ``.jpg``, a text file, random bytes).

Common formats (JPEG, PNG, GIF, WebP, BMP, TIFF) are recognised by their magic bytes; any other
header is handed to Pillow's ``Image.open``, which reads the header only (never ``load()``), so a
less common format Pillow reads still passes. A file whose header is fine but whose body is
truncated passes this check; the encoders report it when they decode it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from core.data.dataset import LoadReport

__all__ = ["PHOTO_OK", "PHOTO_UNDECODABLE", "PHOTO_ZERO_BYTE", "photo_status", "screen_photos"]

PHOTO_OK, PHOTO_ZERO_BYTE, PHOTO_UNDECODABLE = 0, 1, 2

_HEAD = 16
_MAGIC = (
    (0, b"\xff\xd8\xff"),  # JPEG
    (0, b"\x89PNG\r\n\x1a\n"),  # PNG
    (0, b"GIF87a"), (0, b"GIF89a"),
    (0, b"BM"),  # BMP
    (0, b"II*\x00"), (0, b"MM\x00*"),  # TIFF
)


def _known_header(head: bytes) -> bool:
    if any(head[at:at + len(sig)] == sig for at, sig in _MAGIC):
        return True
    return head[:4] == b"RIFF" and head[8:12] == b"WEBP"


def _pillow_opens(path: str) -> bool:
    """Whether Pillow identifies the file from its header (``Image.open`` without ``load``)."""
    from PIL import Image

    try:
        with Image.open(path):
            return True
    except Exception:  # UnidentifiedImageError, OSError, SyntaxError, ValueError, ...
        return False


def photo_status(path: str | Path) -> int:
    """``PHOTO_OK``, ``PHOTO_ZERO_BYTE`` or ``PHOTO_UNDECODABLE`` from the file's first bytes.

    One open and a 16-byte read per file; Pillow is consulted only for unrecognised headers.
    A file that cannot be opened counts as undecodable.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(_HEAD)
    except OSError:
        return PHOTO_UNDECODABLE
    if not head:
        return PHOTO_ZERO_BYTE
    if _known_header(head) or _pillow_opens(str(path)):
        return PHOTO_OK
    return PHOTO_UNDECODABLE


def screen_photos(photos: pd.DataFrame | None, report: LoadReport, where: str
                  ) -> pd.DataFrame | None:
    """``photos`` without zero-byte and undecodable files (column ``path``), counted and warned.

    Sets ``photos_zero_byte`` and ``photos_undecodable`` in ``report`` (0 when none), and adds one
    warning per kind naming ``where`` (the photo source: a folder or config) and an example path.
    ``None`` (the loader found no photo source) is returned unchanged and counts nothing.
    """
    if photos is None:
        return None
    status = np.fromiter((photo_status(p) for p in photos["path"]), dtype=np.int8,
                         count=len(photos))
    for code, key, what in ((PHOTO_ZERO_BYTE, "photos_zero_byte", "are empty (0 bytes)"),
                            (PHOTO_UNDECODABLE, "photos_undecodable",
                             "are not readable as an image (unrecognised header)")):
        bad = status == code
        report.counts[key] = report.counts.get(key, 0) + int(bad.sum())
        if bad.any():
            example = photos["path"].to_numpy()[bad][0]
            report.warn(f"{int(bad.sum())} photo file(s) from {where} {what}; left out "
                        f"(e.g. {example})")
    return photos[status == PHOTO_OK]
