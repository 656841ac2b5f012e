"""The provider streams review texts from the dataset's store in batches."""

from __future__ import annotations

import numpy as np
import pytest
from store_helpers import FakeEncoder

import core.encoders as encoders
from core.data import LoadOptions
from core.data.demo import generate_demo
from core.data.yelp import load_yelp
from core.store import provider as provider_mod
from core.store.provider import EmbeddingProvider


@pytest.fixture
def registered(monkeypatch):
    enc = FakeEncoder()
    monkeypatch.setitem(encoders._cache, enc.spec, enc)
    return enc


def test_reviews_are_embedded_in_batches(tmp_path, registered, monkeypatch):
    """The provider reads texts through ``batches`` (never the whole column) and its vectors
    are aligned with interaction rows whatever the batch size."""
    root = generate_demo(tmp_path / "d", seed=11, n_businesses=30, n_users=80, n_photos=0)
    ds = load_yelp(root, LoadOptions(), name="yelp:t")
    seen: list[int] = []
    real = ds.texts.batches

    def spy(size=50_000):
        for start, batch in real(size):
            seen.append(len(batch))
            yield start, batch

    monkeypatch.setattr(ds.texts, "batches", spy)
    monkeypatch.setattr(provider_mod, "REVIEW_BATCH", 97)
    small = EmbeddingProvider(ds, tmp_path / "a").reviews(registered.spec)
    assert max(seen) == 97 and sum(seen) == len(ds.interactions)
    monkeypatch.setattr(provider_mod, "REVIEW_BATCH", 10**6)
    whole = EmbeddingProvider(ds, tmp_path / "b").reviews(registered.spec)
    np.testing.assert_array_equal(small[1], whole[1])
    assert small[1].all()
    np.testing.assert_allclose(small[0], whole[0])
    # row i's vector is the encoder's vector of row i's text
    texts = ds.texts.get([0, len(ds.interactions) - 1])
    direct = registered.encode_texts(texts)
    np.testing.assert_allclose(small[0][[0, -1]], direct, rtol=1e-5, atol=1e-6)
