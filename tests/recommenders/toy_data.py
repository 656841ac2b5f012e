"""The shared technique contract test's data: a structured toy dataset and fit contexts.

The toy data is a checkerboard: users and items fall into two taste groups (``u % 2``, ``i % 2``);
every user interacted with every item of their own group except one held-out item, so any technique
that learns structure must rank that held-out item first. Items carry group-specific names,
categories and descriptions, and each item has one small photo whose colour reflects its group,
so content techniques have an honest signal too.

Techniques that need encoders (``cls.needs``) get an ``EmbeddingProvider`` over this dataset with
the specs in ``TEST_ENCODERS`` (role -> spec); fill them in when such techniques land.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.data.dataset import Dataset, build_dataset

N_USERS = 40
N_ITEMS = 40
#: encoder spec per role used for techniques that need encoders (small, offline ones)
TEST_ENCODERS: dict[str, str] = {}
#: optional ``factory(dataset, cache_dir) -> provider`` replacing the real ``EmbeddingProvider``
#: (e.g. a fake provider with deterministic vectors); ``None`` = the real one
EMBEDDINGS_FACTORY = None


def _fake_embeddings(ds, cache):
    # issue 4 (helper E): a deterministic fake provider so the content/CLIP techniques run here
    # without models; real encoders are exercised by tests/encoders and tests/store.
    from content_fakes import CaptionFakeProvider

    return CaptionFakeProvider(ds, cache)


TEST_ENCODERS.update({"text": "text:fake", "image": "cnn:fake", "clip": "clip:fake"})
EMBEDDINGS_FACTORY = _fake_embeddings
#: techniques whose ranking ignores the user (exempt from "held-out item ranks first")
NON_PERSONALISED = {"random", "popular"}

_GROUP_TEXT = [
    ("Red Dragon Noodles", "Chinese, Noodles", "spicy noodles, dumplings and chilli oil"),
    ("Blue Bakery", "Bakery, Desserts", "sweet cakes, pastries and croissants"),
]


def heldout_item(user: int) -> int:
    """The one own-group item each user has not interacted with (held out)."""
    group = user % 2
    return group + 2 * ((user // 2) % (N_ITEMS // 2))


def _write_photos(root: Path) -> pd.DataFrame:
    from PIL import Image

    rows = []
    colours = [(200, 40, 30), (40, 60, 200)]
    for i in range(N_ITEMS):
        path = root / f"p{i:03d}.jpg"
        shade = 20 * (i // 2 % 4)
        base = colours[i % 2]
        Image.new("RGB", (32, 32), tuple(min(255, c + shade) for c in base)).save(path)
        rows.append({"photo_id": f"p{i:03d}", "item_id": f"it{i:03d}", "path": str(path),
                     "caption": _GROUP_TEXT[i % 2][2], "label": "food"})
    return pd.DataFrame(rows)


def make_toy_dataset(root: Path) -> Dataset:
    """Build the checkerboard dataset (raw ids ``us000``.., ``it000``..) with photos under root."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    t = 1_600_000_000
    for u in range(N_USERS):
        for i in range(u % 2, N_ITEMS, 2):
            if i == heldout_item(u):
                continue
            t += 60
            rows.append({"user_id": f"us{u:03d}", "item_id": f"it{i:03d}", "rating": 5.0,
                         "timestamp": t, "review_id": f"r{len(rows)}",
                         "text": f"Loved it: {_GROUP_TEXT[i % 2][2]}."})
    items = pd.DataFrame({
        "item_id": [f"it{i:03d}" for i in range(N_ITEMS)],
        "name": [f"{_GROUP_TEXT[i % 2][0]} {i}" for i in range(N_ITEMS)],
        "categories": [_GROUP_TEXT[i % 2][1] for i in range(N_ITEMS)],
        "description": [_GROUP_TEXT[i % 2][2] for i in range(N_ITEMS)],
    })
    return build_dataset("toy", pd.DataFrame(rows), items, _write_photos(root), domain="restaurant")


def make_context(cls, ds: Dataset, cache: Path, seed: int = 7):
    """A ``FitContext`` training on every toy interaction (no validation, no tuning); techniques
    needing encoders get an ``EmbeddingProvider`` or the test is skipped with the reason."""
    from core.recommenders import FitContext

    embeddings = None
    encoders: dict[str, str] = {}
    if cls.needs:
        missing = sorted(r for r in cls.needs if r not in TEST_ENCODERS)
        if missing:
            pytest.skip(f"{cls.name}: no test encoder configured for {missing} "
                        "(tests/recommenders/toy_data.py TEST_ENCODERS)")
        if EMBEDDINGS_FACTORY is not None:
            embeddings = EMBEDDINGS_FACTORY(ds, cache)
        else:
            try:
                from core.store import EmbeddingProvider
            except ImportError as exc:
                pytest.skip(f"{cls.name}: the encoder layer is not importable yet ({exc})")
            embeddings = EmbeddingProvider(ds, cache)
        encoders = {r: TEST_ENCODERS[r] for r in cls.needs}
    return FitContext(dataset=ds, train=ds.interactions, train_csr=ds.csr(), valid=None,
                      seed=seed, embeddings=embeddings, encoders=encoders,
                      options={"tune": False})


def all_users(ds: Dataset) -> np.ndarray:
    return np.arange(ds.n_users, dtype=np.int64)
