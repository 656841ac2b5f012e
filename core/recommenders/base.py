"""The recommender contract: every technique is one small class with ``fit`` and ``score``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from core.data.dataset import Dataset
from core.errors import LabError
from core.progress import Progress, ProgressEvent
from core.ranking import mask_rows, top_k

T = TypeVar("T")

#: Validation users a tuner scores at most (a seeded sample beyond this).
MAX_VALID_USERS = 5000


class Validator(Protocol):
    """How tuners score candidates on the validation part: the one yardstick of every technique.

    Techniques never build one: whoever builds the ``FitContext`` does (the experiment runner, with
    ``core.evaluation.evaluator.Validator``), so recommenders do not import the evaluation layer.
    The metric is nDCG@``k`` with the user's train items masked; the users are those with a
    relevant validation item (``min_rating`` applied), sampled with the context's seed down to
    ``max_users``, ascending.
    """

    k: int

    def users(self, max_users: int = MAX_VALID_USERS) -> np.ndarray:
        """The validation users scored (int64, ascending; empty if none)."""
        ...

    def score(self, model: Recommender, max_users: int = MAX_VALID_USERS) -> float:
        """Mean nDCG@``k`` of a fitted ``model`` over ``users(max_users)`` (0.0 without users)."""
        ...

    def per_user(self, scores: np.ndarray, users: np.ndarray) -> np.ndarray:
        """Per-user nDCG@``k`` (float64) of a dense score block whose rows are ``users`` (from
        ``users()``); ``scores`` is not modified."""
        ...


@dataclass
class FitContext:
    """Everything a technique may learn from; built once per (dataset, split) by the experiment.

    Attributes:
        dataset: the whole dataset (items, photos, id maps). Techniques must learn only from
            ``train`` interactions — never read held-out interactions from ``dataset.interactions``.
        train: the train rows of ``dataset.interactions`` (same columns, original index kept).
        train_csr: binary user x item CSR of ``train``.
        valid: the validation rows, used only to pick hyperparameters (``None`` = no tuning).
        validator: scores candidates on ``valid`` (see ``Validator``); built by whoever builds
            the context from the same rows. Techniques tune through ``tuning()``, never by
            reading ``valid`` themselves.
        seed: random seed for anything stochastic.
        embeddings: a ``core.store.EmbeddingProvider`` giving cached photo/review/item/prompt
            vectors for an encoder spec (``None`` when the run uses no encoder).
        encoders: role -> encoder spec chosen for this run: ``"text"``, ``"image"``, ``"clip"``.
        options: run-wide switches: ``photo_filter`` (``None``/``"food"``), ``review_filter``
            (``None``/``"positive"``), ``min_rating`` and anything a technique documents.
        progress: optional ``core.progress.Progress``: called with a ``ProgressEvent`` for long
            steps; techniques report through ``emit`` and ``log``, leaving the event's row
            (``technique``) to whoever runs them.

    Techniques of one run share work (vectors, masks) through the context's memo: ``memoize``.
    """

    dataset: Dataset
    train: pd.DataFrame
    train_csr: sp.csr_matrix
    valid: pd.DataFrame | None = None
    seed: int = 42
    embeddings: Any = None
    encoders: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    progress: Progress | None = None
    validator: Validator | None = None
    _memo: dict[Hashable, Any] = field(default_factory=dict, init=False, repr=False,
                                       compare=False)
    _memo_owner: tuple[int, ...] = field(default=(), init=False, repr=False, compare=False)

    def emit(self, phase: str, message: str = "", done: int | None = None,
             total: int | None = None) -> None:
        """Report a ``ProgressEvent`` (see ``core.progress`` for the phases) if anyone listens."""
        if self.progress is not None:
            self.progress(ProgressEvent(phase, None, done, total, message))

    def log(self, message: str) -> None:
        """Report one sentence (a ``note`` event)."""
        self.emit("note", message)

    @property
    def memo(self) -> dict[Hashable, Any]:
        """What techniques fitted on this context share (vectors, masks, filter reports), by key.

        Emptied when the context is re-pointed at other data (``train``, ``train_csr``,
        ``dataset`` or ``embeddings`` replaced), so an entry never outlives what it was built from.
        """
        owner = (id(self.train), id(self.train_csr), id(self.dataset), id(self.embeddings))
        if owner != self._memo_owner:
            self._memo, self._memo_owner = {}, owner
        return self._memo

    def memoize(self, key: Hashable, build: Callable[[], T]) -> T:
        """``build()`` once per ``key`` on this context, then the stored value.

        ``key`` must name everything the value depends on beyond the context's data (encoder
        spec, filter options), e.g. ``("item_text", spec, review_filter)``.
        """
        memo = self.memo
        if key not in memo:
            memo[key] = build()
        return memo[key]

    def tuning(self) -> Validator | None:
        """The validator to pick hyperparameters with, or ``None`` when this context does not tune
        (no validation rows, or ``options["tune"]`` false).

        Raises ``LabError`` when the context has validation rows but no validator.
        """
        if not self.options.get("tune", True) or self.valid is None or len(self.valid) == 0:
            return None
        if self.validator is None:
            raise LabError(
                "this FitContext has validation rows but no validator to tune with: build it "
                "with validator=core.evaluation.evaluator.Validator.of(dataset, train_csr, "
                "valid, seed, min_rating), or set options['tune']=False")
        return self.validator


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
        needs: encoder roles required (subset of {"text", "image", "clip"}): without one of them
            the technique cannot run.
        uses: encoder roles whose encoder can change its results (a superset of ``needs``;
            defaults to ``needs``). A hybrid that picks its content part on validation needs no
            encoder but uses all three; a stored run's key holds the encoders of ``uses``.
        fallback: one sentence on what users without train history receive.
        revision: the version of the technique's computation. Bump it when a change to the code
            changes its results for the same data, params and encoders, so stored runs made by the
            older code are not reused (it is part of a stored run's key from 2 on).
    """

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    needs: ClassVar[frozenset[str]] = frozenset()
    uses: ClassVar[frozenset[str]] = frozenset()
    fallback: ClassVar[str] = "scores from the technique itself (no special handling)"
    revision: ClassVar[int] = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = cls.__dict__.get("uses", cls.uses)
        cls.uses = frozenset(declared) | frozenset(cls.needs)  # what it needs, it uses

    @classmethod
    def row_encoders(cls, params: Mapping[str, Any], encoders: Mapping[str, str]) -> dict[str, str]:
        """The encoder spec per needed role that a row built with ``params`` runs with in a run
        whose encoders are ``encoders`` (the row's ``encoder`` column); default: the run's
        encoder of each role in ``needs`` that it has."""
        return {r: encoders[r] for r in sorted(cls.needs) if encoders.get(r)}

    @classmethod
    def row_title(cls, params: Mapping[str, Any]) -> str:
        """How a row built with ``params`` reads in tables: ``label`` (or ``name``), plus the
        params in brackets when there are any (``ALS (factors=64)``)."""
        from core.recommenders.spec import format_params

        title = cls.label or cls.name
        return f"{title} ({format_params(params)})" if params else title

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
