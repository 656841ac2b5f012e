"""The encoder contract: photos and texts in, L2-normalised float32 vectors out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from os import PathLike
from typing import ClassVar

import numpy as np


class Encoder(ABC):
    """Base of every encoder.

    Attributes:
        spec: the spec string it was created from (``clip:ViT-B-32/openai``).
        id: identity used as the cache key: the spec plus the weights' identity (pretrained tag,
            or the sha256 of a local checkpoint) plus, for torch encoders, the precision
            (``+fp32`` / ``+bf16``). Computable without loading the model, except under
            ``MMREC_BF16=auto``, where the first access measures (see ``core.encoders.precision``).
        dim: embedding size.
        modalities: which of ``{"image", "text"}`` it encodes.
        shared_space: True when image and text vectors live in one space (CLIP), so cross-modal
            cosine similarity means something.
        untrained: True for random-weight encoders (tests and benchmarks only); labelled everywhere.

    The model loads lazily on the first ``encode_*`` call, so building an encoder to read its ``id``
    or to look embeddings up in the cache is cheap.
    """

    kind: ClassVar[str] = ""
    spec: str
    id: str
    dim: int
    modalities: frozenset[str]
    shared_space: bool = False
    untrained: bool = False

    def encode_images(self, paths: Sequence[str | PathLike]) -> np.ndarray:
        """Encode image files → ``(n, dim)`` float32, rows L2-normalised.

        Raises ``ValueError`` naming the file if one cannot be decoded (the cache layer catches it,
        counts the file as bad and goes on).
        """
        raise NotImplementedError(f"{self.spec} does not encode images")

    def encode_texts(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Encode texts → ``(n, dim)`` float32, rows L2-normalised.

        ``batch_size``: texts per forward pass (default: the encoder's own). An argument, never
        set on the encoder: one encoder instance is shared by every session of the process.
        """
        raise NotImplementedError(f"{self.spec} does not encode texts")

    @abstractmethod
    def load(self) -> None:
        """Load the weights now (``EncoderUnavailable`` says what to do if they are missing)."""


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), as float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)
