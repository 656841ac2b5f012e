"""Image–text pairs taken from a dataset's own content (never its interactions' ratings or order).

Pair sets (``core.encoders.align.config.PAIR_KINDS``):

* ``caption`` — a photo with its caption (Yelp's ``photos.json`` captions; empty ones skipped);
* ``item`` — each photo of an item with the item's document (``Dataset.item_text``: name,
  categories, description / overview / article text, attributes);
* ``review`` — each photo of an item with up to ``reviews`` of the item's review texts (picked
  with the seed). Review texts are content written by users, including users whose reviews are
  held out by an evaluation split; ``content_note`` says so.

Items with at least one pair are split 90/10 (with the seed) into training and held-out items;
every pair of a held-out item is held out, so held-out retrieval uses photos and texts the heads
never saw. The pair set's content hash (texts and photo bytes by hash, pair kind, split side) is
part of the heads' cache key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from core.errors import EncoderUnavailable
from core.store.cache import text_hash

#: Share of items whose pairs are held out for measuring retrieval.
HELDOUT_SHARE = 0.1


@dataclass
class PairSet:
    """Distinct texts and photos and the pairs between them.

    Attributes:
        texts: distinct texts (index = text number).
        photos: ``dataset.photos`` row of each distinct photo (index = photo number).
        text_idx, photo_idx, kind, item, heldout: one entry per pair.
        content_hash: hex digest of the pair set's content (see the module docstring).
        counts: pairs per kind, train / held-out pairs and items, skips.
    """

    texts: list[str]
    photos: np.ndarray
    text_idx: np.ndarray
    photo_idx: np.ndarray
    kind: np.ndarray
    item: np.ndarray
    heldout: np.ndarray
    content_hash: str
    counts: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.text_idx)


def content_note(kinds) -> str:
    """One sentence for run.json and the CLI: what the heads were trained on."""
    used = {"caption": "photo captions", "item": "item documents",
            "review": "review texts"}
    text = ("trained on the dataset's content only (photos with "
            + ", ".join(used[k] for k in kinds) + "); no interaction, rating or split is used")
    if "review" in kinds:
        text += ("; review texts include those of interactions an evaluation split holds out, "
                 "so cross-modal rows may see held-out users' words")
    return text


def build_pairs(ds, kinds: tuple[str, ...], photo_hashes: list[str | None], seed: int,
                reviews: int = 3) -> PairSet:
    """The pairs of ``kinds`` in ``ds`` (photos whose hash is None, i.e. unreadable, are left out
    and counted). ``EncoderUnavailable`` when the dataset gives no pair (e.g. no photos)."""
    photos = ds.photos
    n_photos = len(photos)
    readable = np.array([h is not None for h in photo_hashes], dtype=bool)
    photo_item = photos["item"].to_numpy(dtype=np.int64) if n_photos else np.zeros(0, np.int64)
    counts: dict[str, int] = {"photos_unreadable": int((~readable).sum())}
    none = EncoderUnavailable(
        f"align: {ds.name} gives no image–text pair of the sets {'+'.join(kinds)} (it needs "
        "photos with captions, or photos of items with a name or description)")
    if not readable.any():  # no photo, no pair: said before any text is built
        raise none

    text_of: dict[str, int] = {}
    texts: list[str] = []
    rows: list[tuple[int, int, str]] = []  # (text number, photos row, kind)

    def text_number(t: str) -> int:
        j = text_of.get(t)
        if j is None:
            j = text_of[t] = len(texts)
            texts.append(t)
        return j

    by_item: dict[int, list[int]] = {}
    for r in np.nonzero(readable)[0]:
        by_item.setdefault(int(photo_item[r]), []).append(int(r))

    if "caption" in kinds:
        captions = photos["caption"].fillna("").astype(str).tolist() if n_photos else []
        empty = 0
        for r in np.nonzero(readable)[0]:
            c = " ".join(captions[r].split())
            if c:
                rows.append((text_number(c), int(r), "caption"))
            else:
                empty += 1
        counts["captions_empty"] = empty
    if "item" in kinds:
        docs = ds.item_text()
        for it, rs in by_item.items():
            doc = " ".join(str(docs[it]).split())
            if doc:
                j = text_number(doc)
                rows.extend((j, r, "item") for r in rs)
    if "review" in kinds and reviews > 0:
        inter = ds.interactions
        has_text = ds.texts.nonblank()
        reviews_of: dict[int, list[int]] = {}
        for i, it in zip(np.nonzero(has_text)[0], inter["item"].to_numpy()[has_text]):
            reviews_of.setdefault(int(it), []).append(int(i))
        rng = np.random.default_rng([seed, 1])
        picked: list[tuple[int, list[int]]] = []  # (interaction row, photo rows), in draw order
        for it, rs in by_item.items():
            candidates = reviews_of.get(it, [])
            if not candidates:
                continue
            pick = rng.choice(len(candidates), size=min(reviews, len(candidates)), replace=False)
            picked.extend((candidates[p], rs) for p in sorted(pick))
        # only the drawn reviews' texts are read (the texts may live on disk)
        drawn = ds.texts.get([row for row, _ in picked])
        for text, (_, rs) in zip(drawn, picked):
            j = text_number(" ".join(str(text).split()))
            rows.extend((j, r, "review") for r in rs)
    if not rows:
        raise none

    t_idx = np.array([r[0] for r in rows], dtype=np.int64)
    p_rows = np.array([r[1] for r in rows], dtype=np.int64)
    kind = np.array([r[2] for r in rows], dtype=object)
    distinct_rows, p_idx = np.unique(p_rows, return_inverse=True)
    item = photo_item[p_rows]

    items = np.unique(item)
    rng = np.random.default_rng([seed, 0])
    order = rng.permutation(items)
    n_hold = int(round(len(items) * HELDOUT_SHARE)) if len(items) >= 2 else 0
    n_hold = max(1, n_hold) if len(items) >= 2 else 0
    held_items = np.sort(order[:n_hold])
    heldout = np.isin(item, held_items)

    digest = hashlib.blake2b(digest_size=16)
    text_hashes = [text_hash(t) for t in texts]
    lines = sorted(f"{k}\t{text_hashes[t]}\t{photo_hashes[r]}\t{int(h)}"
                   for k, t, r, h in zip(kind, t_idx, p_rows, heldout))
    for line in lines:
        digest.update(line.encode() + b"\n")

    for k in kinds:
        counts[f"pairs_{k}"] = int((kind == k).sum())
    counts.update(pairs=len(rows), pairs_train=int((~heldout).sum()),
                  pairs_heldout=int(heldout.sum()), texts=len(texts),
                  photos=len(distinct_rows), items_train=int(len(items) - n_hold),
                  items_heldout=int(n_hold))
    return PairSet(texts=texts, photos=distinct_rows, text_idx=t_idx, photo_idx=p_idx,
                   kind=kind, item=item, heldout=heldout, content_hash=digest.hexdigest(),
                   counts=counts)
