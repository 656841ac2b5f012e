"""The study's CLIP techniques T1–T5: one CLIP encoder, photos and texts, same-modal or cross-modal.

* ``clip-t1`` image–image: user photo vector · item photo vector.
* ``clip-t2`` text–text: user text vector · item text vector (CLIP text tower).
* ``clip-t3`` user text → item photos: user text vector · item photo vector.
* ``clip-t4`` user photos → item text: user photo vector · item text vector.
* ``clip-t5`` user and item = re-normalised mean of their text and photo vectors.

T3–T5 compare vectors of different modalities, which only means something when the encoder puts
both in one space (``Encoder.shared_space``); with any other encoder they raise
``TechniqueUnavailable``. The representations are those of ``core.recommenders.representations``.
"""

from __future__ import annotations

from typing import ClassVar

from core.errors import TechniqueUnavailable
from core.recommenders import register
from core.recommenders.base import FitContext
from core.recommenders.content import EmbeddingRecommender, _require_photos
from core.recommenders.representations import (
    item_photo_vectors,
    item_text_vectors,
    mean_of,
    user_photo_vectors,
    user_text_vectors,
)


class ClipRecommender(EmbeddingRecommender):
    """Base of T1–T5: the encoder comes from the run's ``clip`` role (or param ``encoder``)."""

    role = "clip"
    needs = frozenset({"clip"})
    #: whether user and item vectors may come from different modalities
    cross_modal: ClassVar[bool] = False
    #: modalities the encoder must encode
    modalities: ClassVar[frozenset[str]] = frozenset({"image", "text"})

    def encoder_spec(self, ctx: FitContext) -> str:
        spec = super().encoder_spec(ctx)
        if ctx.embeddings is None:
            raise TechniqueUnavailable(f"{self.name} needs embeddings: no embedding provider")
        enc = ctx.embeddings.encoder(spec)
        missing = self.modalities - set(enc.modalities)
        if missing:
            raise TechniqueUnavailable(
                f"{self.name} needs an encoder of {', '.join(sorted(self.modalities))}; "
                f"{spec} does not encode {', '.join(sorted(missing))}")
        if self.cross_modal and not enc.shared_space:
            raise TechniqueUnavailable(
                f"{self.name} is cross-modal: it compares text and photo vectors, which needs an "
                f"encoder with one shared image-text space (CLIP, --encoder clip:MODEL/WEIGHTS); "
                f"{spec} embeds images and texts in separate spaces")
        return spec


@register
class ClipT1(ClipRecommender):
    """CLIP T1, image–image: user photo vector · item photo vectors."""

    name = "clip-t1"
    label = "CLIP T1 image→image"
    modalities = frozenset({"image"})

    def vectors(self, ctx, spec):
        _require_photos(ctx, self.name)
        return (*user_photo_vectors(ctx, spec), *item_photo_vectors(ctx, spec))


@register
class ClipT2(ClipRecommender):
    """CLIP T2, text–text: user text vector · item text vectors (CLIP text tower)."""

    name = "clip-t2"
    label = "CLIP T2 text→text"
    modalities = frozenset({"text"})

    def vectors(self, ctx, spec):
        return (*user_text_vectors(ctx, spec), *item_text_vectors(ctx, spec))


@register
class ClipT3(ClipRecommender):
    """CLIP T3, cross-modal: user text vector · item photo vectors."""

    name = "clip-t3"
    label = "CLIP T3 user text→item photos"
    cross_modal = True

    def vectors(self, ctx, spec):
        _require_photos(ctx, self.name)
        return (*user_text_vectors(ctx, spec), *item_photo_vectors(ctx, spec))


@register
class ClipT4(ClipRecommender):
    """CLIP T4, cross-modal: user photo vector · item text vectors."""

    name = "clip-t4"
    label = "CLIP T4 user photos→item text"
    cross_modal = True

    def vectors(self, ctx, spec):
        _require_photos(ctx, self.name)
        return (*user_photo_vectors(ctx, spec), *item_text_vectors(ctx, spec))


@register
class ClipT5(ClipRecommender):
    """CLIP T5: user and item = mean of their text and photo vectors."""

    name = "clip-t5"
    label = "CLIP T5 text+photo mean"
    cross_modal = True

    def vectors(self, ctx, spec):
        users = mean_of(user_text_vectors(ctx, spec), user_photo_vectors(ctx, spec))
        items = mean_of(item_text_vectors(ctx, spec), item_photo_vectors(ctx, spec))
        return (*users, *items)


CLIP_TECHNIQUES = (ClipT1, ClipT2, ClipT3, ClipT4, ClipT5)
