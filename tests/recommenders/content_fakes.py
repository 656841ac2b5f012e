"""A small synthetic dataset with topical content and a fake ``EmbeddingProvider`` (no models).

Items belong to one of ``N_TOPICS`` topics; users prefer one topic. Review texts and item names
name the topic word; photos show their item's topic plus a visual label (food, drink, menu, ...).
The fake encoders map words and photos onto fixed basis vectors, so content carries real signal:

* a topic word embeds to the topic's basis vector; label words (food, drink, menu, interior,
  exterior) to their own basis vectors; any other word to a small hashed random vector;
* a photo embeds to ``topic basis + label basis (+ noise)`` — in the *same* space as texts for a
  shared-space (CLIP-like) encoder, and in a rotated space for separate-space encoders;
* a ``noise`` encoder embeds everything to random vectors (content without signal).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.data.dataset import Dataset, build_dataset
from core.encoders.base import l2_normalise
from core.recommenders.base import FitContext

N_TOPICS = 4
TOPIC_WORDS = ("sushi", "pizza", "tacos", "curry")
LABEL_WORDS = {"food": "food", "drink": "drink", "menu": "menu", "inside": "interior",
               "outside": "exterior"}
DIM = 32


def _basis(i: int) -> np.ndarray:
    v = np.zeros(DIM, np.float32)
    v[i] = 1.0
    return v


def _hashed(word: str, salt: str = "") -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32((salt + word).encode()))
    return rng.normal(size=DIM).astype(np.float32)


def word_vector(word: str) -> np.ndarray:
    word = word.strip(".,;:'!?").lower()
    if word in TOPIC_WORDS:
        return _basis(TOPIC_WORDS.index(word))
    names = list(LABEL_WORDS.values())
    if word in names:
        return _basis(N_TOPICS + names.index(word))
    return 0.05 * _hashed(word)


@dataclass
class FakeEncoder:
    """Just the attributes techniques read from an ``Encoder``."""

    spec: str
    modalities: frozenset = frozenset({"image", "text"})
    shared_space: bool = False
    noise: bool = False
    dim: int = DIM
    untrained: bool = False

    @property
    def id(self) -> str:
        return f"{self.spec}#fake"

    def embed_text(self, text: str, key: str = "") -> np.ndarray:
        if self.noise:  # ignores the text: pure noise
            return _hashed(key, "noise")
        vec = np.zeros(DIM, np.float32)
        for word in str(text).split():
            vec += word_vector(word)
        return vec

    def embed_photo(self, topic: int, label: str, key: str) -> np.ndarray:
        if self.noise:
            return _hashed(key, "noise")
        vec = _basis(topic) + 0.8 * word_vector(LABEL_WORDS[label]) + 0.05 * _hashed(key, "ph")
        if not self.shared_space:  # a different space: rotate the dimensions
            vec = np.roll(vec, 7)
        return vec


ENCODERS = {
    "text:fake": FakeEncoder("text:fake", frozenset({"text"})),
    "cnn:fake": FakeEncoder("cnn:fake", frozenset({"image"})),
    "clip:fake": FakeEncoder("clip:fake", shared_space=True),
    "sep:fake": FakeEncoder("sep:fake"),  # both modalities, separate spaces
    "text:noise": FakeEncoder("text:noise", frozenset({"text"}), noise=True),
    "cnn:noise": FakeEncoder("cnn:noise", frozenset({"image"}), noise=True),
}


@dataclass
class FakeProvider:
    """The ``EmbeddingProvider`` interface over ``ENCODERS`` (counts calls per method)."""

    dataset: Dataset
    calls: dict = field(default_factory=dict)

    def _count(self, what: str) -> None:
        self.calls[what] = self.calls.get(what, 0) + 1

    def encoder(self, spec: str) -> FakeEncoder:
        from core.errors import EncoderUnavailable

        if spec not in ENCODERS:
            raise EncoderUnavailable(f"fake provider: no encoder {spec!r}")
        return ENCODERS[spec]

    def photos(self, spec: str):
        self._count("photos")
        enc = self.encoder(spec)
        ph = self.dataset.photos
        vecs = np.stack([
            enc.embed_photo(int(t), v, pid) for t, v, pid in
            zip(ph["topic"], ph["visual"], ph["photo_id"])
        ]) if len(ph) else np.zeros((0, DIM), np.float32)
        ok = ~ph["photo_id"].str.startswith("bad").to_numpy()
        vecs[~ok] = 0.0
        return l2_normalise(vecs), ok

    def reviews(self, spec: str):
        self._count("reviews")
        return self._texts(spec, [t or "" for t in self.dataset.texts.to_list()])

    def item_texts(self, spec: str):
        self._count("item_texts")
        return self._texts(spec, self.dataset.item_text())

    def texts(self, spec: str, texts: list[str]):
        self._count("texts")
        return self._texts(spec, list(texts))

    def _texts(self, spec: str, texts: list[str]):
        enc = self.encoder(spec)
        ok = np.array([bool(str(t).strip()) for t in texts], dtype=bool)
        if not texts:
            return np.zeros((0, DIM), np.float32), ok
        vecs = np.stack([enc.embed_text(t, f"{i}") if o else np.zeros(DIM, np.float32)
                         for i, (t, o) in enumerate(zip(texts, ok))])
        return l2_normalise(vecs), ok


def topical_dataset(
    n_users: int = 80, items_per_topic: int = 10, per_user: int = 10, loyalty: float = 0.9,
    seed: int = 0, with_text: bool = True, photo_labels: bool = True,
) -> Dataset:
    """Users who mostly consume items of their favourite topic; reviews and photos show topics.

    Photos: two per item (a ``food`` photo of its topic and a ``menu`` photo), none for the last
    item of each topic; ``photo_labels=False`` blanks the dataset's own labels (the fake CLIP
    still *sees* them). Ratings: 5 for the favourite topic, 2 otherwise.
    """
    rng = np.random.default_rng(seed)
    n_items = N_TOPICS * items_per_topic
    topic_of = np.arange(n_items) // items_per_topic
    items = pd.DataFrame({
        "item_id": [f"i{j:03d}" for j in range(n_items)],
        "name": [f"{TOPIC_WORDS[t].title()} place {j}" for j, t in enumerate(topic_of)],
        "categories": [f"Restaurants, {TOPIC_WORDS[t]}" for t in topic_of],
        "description": ["" for _ in range(n_items)],
        "attributes": [{"price": int(j % 3) + 1} for j in range(n_items)],
    })
    rows = []
    for u in range(n_users):
        fav = u % N_TOPICS
        own = np.flatnonzero(topic_of == fav)
        other = np.flatnonzero(topic_of != fav)
        n_own = int(round(per_user * loyalty))
        chosen = list(rng.choice(own, size=min(n_own, len(own)), replace=False))
        chosen += list(rng.choice(other, size=per_user - len(chosen), replace=False))
        for j in chosen:
            liked = topic_of[j] == fav
            text = (f"the {TOPIC_WORDS[topic_of[j]]} was " + ("great" if liked else "bland")
                    if with_text else None)
            rows.append({"user_id": f"u{u:03d}", "item_id": f"i{j:03d}",
                         "rating": 5.0 if liked else 2.0,
                         "timestamp": int(rng.integers(1_500_000_000, 1_600_000_000)),
                         "review_id": f"r{len(rows)}", "text": text})
    photos = []
    for j in range(n_items):
        if j % items_per_topic == items_per_topic - 1:
            continue  # an item without photos
        for visual in ("food", "menu"):
            photos.append({"photo_id": f"p{j:03d}{visual}", "item_id": f"i{j:03d}",
                           "path": f"/nonexistent/p{j}{visual}.jpg", "caption": "",
                           "label": visual if photo_labels else ""})
    ds = build_dataset("fake", pd.DataFrame(rows), items, pd.DataFrame(photos),
                       domain="restaurant")
    ds.photos["visual"] = np.where(ds.photos["photo_id"].str.endswith("food"), "food", "menu")
    ds.photos["topic"] = topic_of[ds.photos["item"].to_numpy()]
    return ds


def fit_context(
    ds: Dataset, encoders: dict[str, str] | None = None, options: dict | None = None,
    split: str = "random", seed: int = 0,
) -> FitContext:
    """A ``FitContext`` on a seeded split of ``ds`` with a ``FakeProvider``."""
    from core.evaluation.evaluator import Validator
    from core.evaluation.splits import make_split

    parts = make_split(ds, split, seed)
    options = dict(options or {})
    train = ds.csr(parts.train)
    return FitContext(
        dataset=ds, train=parts.train, train_csr=train, valid=parts.valid,
        seed=seed, embeddings=FakeProvider(ds),
        encoders=dict(encoders if encoders is not None else
                      {"text": "text:fake", "image": "cnn:fake", "clip": "clip:fake"}),
        options=options,
        validator=Validator.of(ds, train, parts.valid, seed, options.get("min_rating")),
    )


def split_of(ds: Dataset, seed: int = 0, split: str = "random"):
    """The same split as ``fit_context`` makes (to evaluate on its test part)."""
    from core.evaluation.splits import make_split

    return make_split(ds, split, seed)


class CaptionFakeProvider:
    """A generic fake provider for any dataset (used by the shared contract test).

    Texts embed as a bag of hashed word vectors. A photo embeds as the text embedding of its
    caption plus a little per-photo noise: in the same space for ``clip:fake`` (shared space), in a
    rotated space for ``cnn:fake``. Specs: ``text:fake``, ``cnn:fake``, ``clip:fake``.
    """

    specs = {"text:fake": ENCODERS["text:fake"], "cnn:fake": ENCODERS["cnn:fake"],
             "clip:fake": ENCODERS["clip:fake"]}

    def __init__(self, dataset: Dataset, cache_root=None) -> None:
        self.dataset = dataset

    def encoder(self, spec: str) -> FakeEncoder:
        from core.errors import EncoderUnavailable

        if spec not in self.specs:
            raise EncoderUnavailable(f"caption fake provider: no encoder {spec!r}")
        return self.specs[spec]

    @staticmethod
    def _bag(text: str) -> np.ndarray:
        vec = np.zeros(DIM, np.float32)
        for word in str(text).lower().split():
            vec += _hashed(word.strip(".,;:'!?"), "bag")
        return vec

    def photos(self, spec: str):
        enc = self.encoder(spec)
        ph = self.dataset.photos
        vecs = np.zeros((len(ph), DIM), np.float32)
        for r, (caption, pid) in enumerate(zip(ph["caption"], ph["photo_id"])):
            vec = self._bag(caption) + 0.05 * _hashed(str(pid), "ph")
            vecs[r] = vec if enc.shared_space else np.roll(vec, 7)
        return l2_normalise(vecs), np.ones(len(ph), bool)

    def _texts(self, spec: str, texts):
        self.encoder(spec)
        ok = np.array([bool(str(t or "").strip()) for t in texts], dtype=bool)
        vecs = np.stack([self._bag(t) if o else np.zeros(DIM, np.float32)
                         for t, o in zip(texts, ok)]) if len(ok) else np.zeros((0, DIM))
        return l2_normalise(vecs), ok

    def reviews(self, spec: str):
        return self._texts(spec, [t or "" for t in self.dataset.texts.to_list()])

    def item_texts(self, spec: str):
        return self._texts(spec, self.dataset.item_text())

    def texts(self, spec: str, texts):
        return self._texts(spec, list(texts))
