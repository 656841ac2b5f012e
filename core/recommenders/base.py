"""The recommender contract: every technique is one small class with ``fit`` and ``score``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from core.data.dataset import Dataset


@dataclass
class FitContext:
    """Everything a technique may learn from; built once per (dataset, split) by the experiment.

    Attributes:
        dataset: the whole dataset (items, photos, id maps). Techniques must learn only from
            ``train`` interactions — never read held-out interactions from ``dataset.interactions``.
        train: the train rows of ``dataset.interactions`` (same columns, original index kept).
        train_csr: binary user x item CSR of ``train``.
        valid: the validation rows, used only to pick hyperparameters (``None`` = no tuning).
        seed: random seed for anything stochastic.
        embeddings: a ``core.store.EmbeddingProvider`` giving cached photo/review/item/prompt
            vectors for an encoder spec (``None`` when the run uses no encoder).
        encoders: role -> encoder spec chosen for this run: ``"text"``, ``"image"``, ``"clip"``.
        options: run-wide switches: ``photo_filter`` (``None``/``"food"``), ``review_filter``
            (``None``/``"positive"``), ``min_rating`` and anything a technique documents.
        progress: optional callable ``progress(message: str)`` for long steps.
    """

    dataset: Dataset
    train: pd.DataFrame
    train_csr: sp.csr_matrix
    valid: pd.DataFrame | None = None
    seed: int = 42
    embeddings: Any = None
    encoders: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    progress: Any = None

    def log(self, message: str) -> None:
        if self.progress is not None:
            self.progress(message)


class Recommender(ABC):
    """Base of every technique.

    Contract:
      * ``fit(ctx)`` learns from ``ctx.train`` only (plus item content and ``ctx.valid`` for tuning)
        and returns ``self``. Hyperparameters picked on validation are recorded in ``self.params``.
      * ``score(user_idx)`` returns a dense float32 array ``(len(user_idx), n_items)``: higher is
        better, no masking. Users without train history get the technique's documented
        ``fallback`` (e.g. popularity); ``cold_users`` in the evaluator counts them.
      * ``recommend(user_idx, n)`` is the batch API for callers: top-``n`` item indices and scores
        per user, seen (train) items filtered by default, any extra ``exclude`` CSR also filtered.
        ``recommend`` on a batch equals ``recommend`` user by user.

    Class attributes:
        name: registry name (``"als"``, ``"clip-t3"``).
        label: human-readable row label.
        needs: encoder roles required (subset of {"text", "image", "clip"}).
        fallback: one sentence on what users without train history receive.
    """

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    needs: ClassVar[frozenset[str]] = frozenset()
    fallback: ClassVar[str] = "scores from the technique itself (no special handling)"

    def __init__(self, **params: Any) -> None:
        self.params: dict[str, Any] = dict(params)
        self.train_csr: sp.csr_matrix | None = None
        self.n_items: int = 0

    @abstractmethod
    def fit(self, ctx: FitContext) -> Recommender:
        """Learn from ``ctx`` and return ``self``; subclasses must call ``self._remember(ctx)``."""

    @abstractmethod
    def score(self, user_idx: np.ndarray) -> np.ndarray:
        """Dense scores ``(len(user_idx), n_items)`` float32; higher is better; no masking."""

    def _remember(self, ctx: FitContext) -> None:
        self.train_csr = ctx.train_csr
        self.n_items = ctx.train_csr.shape[1]

    def recommend(
        self,
        user_idx: np.ndarray | int,
        n: int = 10,
        filter_seen: bool = True,
        exclude: sp.csr_matrix | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``n`` items for each user: ``(ids, scores)`` of shape ``(len(user_idx), n)``.

        Masked positions (seen or excluded) never appear; if fewer than ``n`` items remain, the tail
        is padded with id ``-1`` and score ``-inf``.
        """
        from core.evaluation.topk import top_k

        users = np.atleast_1d(np.asarray(user_idx, dtype=np.int64))
        scores = np.asarray(self.score(users), dtype=np.float32)
        masks = []
        if filter_seen and self.train_csr is not None:
            masks.append(self.train_csr)
        if exclude is not None:
            masks.append(exclude)
        for mask in masks:
            mask_rows(scores, mask, users)
        return top_k(scores, n)


def mask_rows(scores: np.ndarray, mask: sp.csr_matrix, users: np.ndarray) -> None:
    """Set ``scores[i, j] = -inf`` in place wherever ``mask[users[i], j]`` is stored."""
    sub = mask[users]
    rows = np.repeat(np.arange(len(users)), np.diff(sub.indptr))
    scores[rows, sub.indices] = -np.inf
