"""Content filters from the study's future work: food photos only, positive reviews only.

Both are run-wide switches in ``FitContext.options`` and apply to every content representation:

* ``photo_filter="food"`` keeps the photos whose label is ``food`` or ``drink``. The label is
  CLIP's zero-shot choice among ``PHOTO_PROMPTS`` when the run has a CLIP encoder
  (``ctx.encoders["clip"]``) whose weights can be used, otherwise the dataset's own photo label
  (Yelp's ``photos.json`` ``label``). With neither, it raises ``TechniqueUnavailable``.
* ``review_filter="positive"`` keeps only reviews rated 4 or more (``POSITIVE_MIN_RATING``) when
  building text vectors from reviews.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from core.errors import EncoderUnavailable, TechniqueUnavailable

#: Zero-shot labels and their prompts; ``{domain}`` becomes the dataset's domain word. A label's
#: text vector is the re-normalised mean of its prompts' vectors (CLIP's prompt ensembling).
PHOTO_PROMPTS: dict[str, tuple[str, ...]] = {
    "food": ("food", "a dish", "a meal", "a plate of food", "a photo of food"),
    "drink": ("a drink", "a beverage", "a photo of a drink"),
    "menu": ("a menu", "a photo of a menu"),
    "inside": ("inside the {domain}", "the dining room", "a photo of a {domain}'s interior"),
    "outside": ("outside the {domain}", "the {domain}'s storefront",
                "a photo of a {domain}'s exterior"),
}

#: Labels kept by ``photo_filter="food"``.
FOOD_LABELS = frozenset({"food", "drink"})
#: Reviews at or above this rating are kept by ``review_filter="positive"``.
POSITIVE_MIN_RATING = 4.0

PHOTO_FILTERS = (None, "food")
REVIEW_FILTERS = (None, "positive")


def check_options(options: dict[str, Any]) -> None:
    """``TechniqueUnavailable`` naming the option if a filter value is unknown."""
    if options.get("photo_filter") not in PHOTO_FILTERS:
        raise TechniqueUnavailable(
            f"unknown photo filter {options.get('photo_filter')!r}: use one of food or none")
    if options.get("review_filter") not in REVIEW_FILTERS:
        raise TechniqueUnavailable(
            f"unknown review filter {options.get('review_filter')!r}: use one of positive or none")


def zero_shot_labels(ctx: Any, clip_spec: str) -> np.ndarray:
    """CLIP zero-shot label of every photo of ``ctx.dataset`` (object array; ``""`` for bad photos).

    Each photo gets the label whose prompt ensemble (``PHOTO_PROMPTS``: the re-normalised mean of
    the label's prompt vectors) has the highest cosine with it.
    """
    from core.encoders.base import l2_normalise

    ds = ctx.dataset
    provider = ctx.embeddings
    labels = list(PHOTO_PROMPTS)
    prompts = [p.format(domain=ds.domain) for k in labels for p in PHOTO_PROMPTS[k]]
    owner = np.repeat(np.arange(len(labels)), [len(PHOTO_PROMPTS[k]) for k in labels])
    photos, ok = provider.photos(clip_spec)
    text, _ = provider.texts(clip_spec, prompts)
    label_vecs = l2_normalise(np.stack([np.asarray(text, np.float32)[owner == j].mean(axis=0)
                                        for j in range(len(labels))]))
    out = np.full(len(photos), "", dtype=object)
    if len(photos):
        best = np.argmax(np.asarray(photos, np.float32) @ label_vecs.T, axis=1)
        out[:] = np.asarray(labels, dtype=object)[best]
        out[~np.asarray(ok, bool)] = ""
    return out


def photo_keep_mask(ctx: Any) -> np.ndarray:
    """Boolean mask over ``ctx.dataset.photos`` rows: the photos content techniques may use.

    All ``True`` without a photo filter. The source of the labels is recorded in
    ``filter_info(ctx)``.
    """
    return ctx.memoize(_photo_key(ctx), lambda: _photo_keep(ctx))[0]


def _photo_key(ctx: Any) -> tuple:
    return ("photo_keep", ctx.options.get("photo_filter"), ctx.encoders.get("clip"))


def _photo_keep(ctx: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """``(keep mask, report for filter_info)`` of ``photo_keep_mask``."""
    check_options(ctx.options)
    ds = ctx.dataset
    n = len(ds.photos)
    info: dict[str, Any] = {"photo_filter": ctx.options.get("photo_filter")}
    if ctx.options.get("photo_filter") is None:
        keep = np.ones(n, dtype=bool)
    else:
        labels, source = None, None
        clip = ctx.encoders.get("clip")
        if clip and ctx.embeddings is not None:
            try:
                if ctx.embeddings.encoder(clip).shared_space:
                    labels, source = zero_shot_labels(ctx, clip), f"CLIP zero-shot ({clip})"
            except EncoderUnavailable as exc:
                info["clip_unavailable"] = str(exc)
        if labels is None:
            own = ds.photos["label"].fillna("").astype(str).str.strip().str.lower().to_numpy()
            if n and not (own != "").any():
                raise TechniqueUnavailable(
                    "--photo-filter food needs a CLIP encoder (--encoder clip:...) or photo "
                    f"labels in the dataset (photos 'label' column); {ds.name} has neither")
            labels, source = own, "dataset photo labels"
        keep = np.isin(labels.astype(str), list(FOOD_LABELS))
        info.update(source=source, label_counts=pd.Series(labels).value_counts().to_dict())
    info.update(photos_total=int(n), photos_kept=int(keep.sum()))
    return keep, info


def review_keep_mask(ctx: Any, frame: pd.DataFrame) -> np.ndarray:
    """Boolean mask over the rows of ``frame`` (interactions): the reviews text vectors may use."""
    check_options(ctx.options)
    if ctx.options.get("review_filter") == "positive":
        return frame["rating"].to_numpy(dtype=np.float32) >= POSITIVE_MIN_RATING
    return np.ones(len(frame), dtype=bool)


def filter_info(ctx: Any) -> dict[str, Any]:
    """What the filters did in this run (for ``run.json``): label source, what was kept."""
    out: dict[str, Any] = {
        "photo_filter": ctx.options.get("photo_filter"),
        "review_filter": ctx.options.get("review_filter"),
    }
    photo = ctx.memo.get(_photo_key(ctx))  # only when a technique used the photos
    if photo is not None:
        out.update(photo[1])
    if ctx.options.get("review_filter") == "positive":
        keep = review_keep_mask(ctx, ctx.train)
        out.update(train_reviews_total=int(len(keep)), train_reviews_kept=int(keep.sum()),
                   review_min_rating=POSITIVE_MIN_RATING)
    return out
