"""Helpers of the store tests (importable from subprocess scripts too): a fake encoder that counts
its calls, and a tiny dataset whose photos (good, corrupt, zero-byte) and texts (some empty) are
written into a folder the test owns."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pandas as pd

from core.data.dataset import build_dataset
from core.encoders.base import Encoder, l2_normalise


class FakeEncoder(Encoder):
    """Deterministic 8-d vectors from the content hash; counts every encoded input and records
    the ``batch_size`` argument of each ``encode_texts`` call.

    ``delay`` seconds per input make it slow enough to be interrupted in the resume test.
    """

    kind = "fake"

    def __init__(self, spec: str = "fake:v1", delay: float = 0.0, dim: int = 8) -> None:
        self.spec = spec
        self.id = spec
        self.dim = dim
        self.modalities = frozenset({"image", "text"})
        self.delay = delay
        self.batch_size = 4
        self.encoded_images = 0
        self.encoded_texts = 0
        self.text_batch_sizes: list[int | None] = []  # the batch_size of each encode_texts call

    def load(self) -> None:
        pass

    def _vec(self, data: bytes) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(data).digest()[:8], "little")
        return np.random.default_rng(seed).standard_normal(self.dim)

    def encode_texts(self, texts, batch_size=None):
        self.text_batch_sizes.append(batch_size)
        self.encoded_texts += len(texts)
        time.sleep(self.delay * len(texts))
        return l2_normalise(np.stack([self._vec(t.encode()) for t in texts]))

    def encode_images(self, paths):
        from core.encoders.runtime import read_image

        rows = []
        for p in paths:
            read_image(p)  # raises ValueError for corrupt / empty files, like real encoders
            rows.append(self._vec(Path(p).read_bytes()))
        self.encoded_images += len(paths)
        time.sleep(self.delay * len(paths))
        return l2_normalise(np.stack(rows))


def write_images(folder: Path, n: int, size: int = 64) -> list[Path]:
    """``n`` distinct small JPEGs (colour gradients)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        yy, xx = np.mgrid[0:size, 0:size]
        arr = np.stack([(xx * 4 + i * 37) % 256, (yy * 4 + i * 11) % 256,
                        np.full_like(xx, (i * 53) % 256)], -1).astype(np.uint8)
        p = folder / f"img{i}.jpg"
        Image.fromarray(arr).save(p, quality=90)
        paths.append(p)
    return paths


def tiny_dataset(tmp: Path, n_good: int = 4):
    """3 items, 5 interactions (one with empty text, one with None), photos: ``n_good`` good +
    one corrupt + one zero-byte."""
    good = write_images(tmp / "photos", n_good)
    corrupt = tmp / "photos" / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg" * 3)
    empty = tmp / "photos" / "empty.jpg"
    empty.write_bytes(b"")
    inter = pd.DataFrame({
        "user_id": ["u1", "u1", "u2", "u3", "u3"],
        "item_id": ["a", "b", "a", "c", "b"],
        "rating": [5, 4, 3, 2, 5],
        "timestamp": [1, 2, 3, 4, 5],
        "review_id": ["r1", "r2", "r3", "r4", "r5"],
        "text": ["great pizza", "", "great pizza", None, "fresh sushi rolls"],
    })
    items = pd.DataFrame({"item_id": ["a", "b", "c"], "name": ["Pizzeria", "Sushi Bar", "Diner"],
                          "categories": ["Pizza", "Sushi", "Burgers"]})
    paths = [*good, corrupt, empty]
    owners = [("a", "b", "c")[i % 3] for i in range(n_good)]
    photos = pd.DataFrame({
        "photo_id": [f"p{i}" for i in range(len(paths))],
        "item_id": [*owners, "b", "c"],
        "path": [str(p) for p in paths],
    })
    return build_dataset("tiny", inter, items, photos)
