"""Matrix factorisation through the ``implicit`` package: ``als`` and ``bpr``.

Both fit implicit's CPU models on the binary train CSR (users x items, as implicit 0.7 expects) with
``random_state = ctx.seed``. With tuning on (``ctx.tuning()``: validation rows given and
``ctx.options["tune"]`` not false), hyperparameters are picked by ``ctx.validator``, nDCG@10 on the
validation part: ALS tries every combination of factors {50, 100, 200} x regularization {1, 10};
BPR tries factors {25, 50, 100} and, for each, keeps the epoch (checked every 10, up to 200) that
scored best. A hyperparameter given to ``create_recommender`` is fixed, not searched. Without
tuning the ``defaults`` are used. Users without train history receive the popularity fallback. BPR
runs on one thread (implicit's multithreaded SGD is lock-free and so not reproducible).

Tie rule: trials whose validation nDCG@10 is within ``TIE_TOLERANCE`` (0.0001) of the best tie,
and the simplest of the tied trials is kept (``simpler``): ALS fewer factors, then stronger
regularization; BPR fewer factors, then fewer epochs (an epoch replaces the best one only if it
scores more than the tolerance above it). Validation that is flat over the whole grid (every
trial ties, best score above 0) says the grid missed the range where the data has signal: ALS
then also tries the ``widen`` values (regularization 0.1 and 0.01 with every factor count) and
applies the same rule to all trials. ``params["tuning"]`` records every trial, the tied ones, the
rule and whether the grid was widened."""

from __future__ import annotations

import itertools
import warnings
from typing import Any, ClassVar

import numpy as np

from core.recommenders import register
from core.recommenders.base import FitContext
from core.recommenders.baselines import PopularityFallback

#: Validation nDCG@10 scores closer than this to the best are ties (broken toward simplicity).
TIE_TOLERANCE = 1e-4
TIE_RULE = ("trials within {tol} nDCG@10 of the best tie; the simplest tied trial wins "
            "({order})")


class _ImplicitMF(PopularityFallback):
    """Shared fit/tune/score code of the implicit adapters."""

    #: hyperparameters searched on validation -> candidate values (every combination is tried)
    grid: ClassVar[dict[str, list[Any]]] = {}
    #: defaults used when a value is neither given nor searched
    defaults: ClassVar[dict[str, Any]] = {}
    #: with tuning on, also pick the number of epochs on validation (checked every ``every``)
    early_stopping: ClassVar[bool] = False
    every: ClassVar[int] = 10
    #: epochs trained while picking the best one on validation
    max_iterations: ClassVar[int] = 200
    #: simplicity order among tied trials: (hyperparameter, +1 if smaller is simpler, -1 if larger)
    simpler: ClassVar[tuple[tuple[str, int], ...]] = ()
    #: values tried in addition when every grid trial ties (flat validation)
    widen: ClassVar[dict[str, list[Any]]] = {}

    def _build(self, params: dict[str, Any], seed: int, threads: int):
        raise NotImplementedError

    def _train(self, params: dict[str, Any], ctx: FitContext, monitor: bool = False):
        """Fit one implicit model; with ``monitor``, keep the factors of the epoch that scored
        best on validation. Returns ``(model, validation score or None, best epoch or None)``."""
        from threadpoolctl import threadpool_limits

        threads = int(ctx.options.get("threads", 2))
        best: dict[str, Any] = {"score": -1.0, "epoch": None, "factors": None}
        model = None

        def callback(epoch: int, *_: Any) -> None:
            if (epoch + 1) % self.every and epoch + 1 != int(params["iterations"]):
                return
            self._use(model)
            score = self._validation(ctx)
            if best["epoch"] is None or score > best["score"] + TIE_TOLERANCE:  # ties: fewer
                best.update(score=score, epoch=epoch + 1,
                            factors=(self._user_factors.copy(), self._item_factors_t.copy()))

        # implicit's own loops are multithreaded; a multithreaded BLAS underneath only fights them
        with threadpool_limits(1, "blas"), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*BLAS.*threads", category=RuntimeWarning)
            model = self._build(params, ctx.seed, threads)
            model.fit(ctx.train_csr.astype(np.float32), show_progress=False,
                      callback=callback if monitor else None)
        self._use(model)
        if monitor and best["factors"] is not None:
            self._user_factors, self._item_factors_t = best["factors"]
            # keep the implicit model consistent with the epoch we keep
            model.user_factors = self._user_factors.copy()
            model.item_factors = np.ascontiguousarray(self._item_factors_t.T)
            return model, best["score"], best["epoch"]
        return model, None, None

    def _validation(self, ctx: FitContext) -> float:
        """Validation nDCG@10 of the current factors (only called while tuning)."""
        return ctx.validator.score(self)

    def _use(self, model) -> None:
        self._model = model
        self._user_factors = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self._item_factors_t = np.ascontiguousarray(model.item_factors.T, dtype=np.float32)

    def fit(self, ctx: FitContext) -> _ImplicitMF:
        self._remember(ctx)
        self._fit_fallback(ctx)
        if not hasattr(self, "_given"):  # what create_recommender fixed (kept across refits)
            self._given = {k: v for k, v in self.params.items() if k != "tuning"}
        fixed = dict(self._given)
        params = {**self.defaults, **fixed}
        search = {k: v for k, v in self.grid.items() if k not in fixed}
        if ctx.tuning() is None:
            self._train(params, ctx)
            self.params = dict(params)
            return self
        monitor = self.early_stopping and "iterations" not in fixed
        keys = list(search)
        trials = [dict(zip(keys, combo)) for combo in itertools.product(*search.values())]
        results: list[dict[str, Any]] = []
        kept: dict[int, tuple] = {}  # trial index -> (model, factors), only near the best
        self._run_trials(trials or [{}], params, ctx, monitor, results, kept)
        scores = [r["ndcg@10"] for r in results]
        widened: dict[str, list[Any]] = {}
        if len(results) > 1 and max(scores) > 0 and max(scores) - min(scores) <= TIE_TOLERANCE:
            widened = {k: [v for v in vals if v not in search[k]]
                       for k, vals in self.widen.items() if k in search}
            widened = {k: v for k, v in widened.items() if v}
            if widened:  # flat over the grid: try the widened values with every other value
                grid = {**search, **widened}
                extra = [dict(zip(keys, combo)) for combo in itertools.product(*grid.values())
                         if any(combo[keys.index(k)] in v for k, v in widened.items())]
                ctx.emit("tune", f"validation of {self.name} is flat over the grid; also "
                                 f"trying {widened}")
                self._run_trials(extra, params, ctx, monitor, results, kept)
        tied = self._tied(results)
        chosen = min(tied, key=lambda i: (self._complexity({**params, **results[i]}), i))
        trial = {k: v for k, v in results[chosen].items() if k != "ndcg@10"}
        model, factors = kept[chosen]
        self._model = model
        self._user_factors, self._item_factors_t = factors
        order = ", ".join(f"{'fewer' if sign > 0 else 'more'} {k}" for k, sign in self.simpler)
        self.params = {**params, **trial, "tuning": {
            "metric": "ndcg@10 on validation", "trials": results,
            "rule": TIE_RULE.format(tol=TIE_TOLERANCE, order=order or "first tried"),
            "tolerance": TIE_TOLERANCE, "tied": [results[i] for i in tied],
            "widened": widened or None}}
        return self

    def _run_trials(self, trials: list[dict[str, Any]], params: dict[str, Any], ctx: FitContext,
                    monitor: bool, results: list[dict[str, Any]], kept: dict[int, tuple]) -> None:
        """Fit and score each trial, appending to ``results``; keep the fitted factors of the
        trials that may still be chosen (within the tolerance of the best so far)."""
        job = f"tuning {self.name}"
        ctx.emit("tune", job, done=0, total=len(trials))
        for i, trial in enumerate(trials):
            run = {**params, **trial}
            if monitor:
                run["iterations"] = self.max_iterations
            model, score, epoch = self._train(run, ctx, monitor=monitor)
            if score is None:
                score = self._validation(ctx)
            if epoch is not None:
                trial = {**trial, "iterations": epoch}
            results.append({**trial, "ndcg@10": round(score, 6)})
            ctx.emit("tune", f"{self.name} trial {trial}: validation nDCG@10 {score:.4f}")
            ctx.emit("tune", job, done=i + 1, total=len(trials))
            kept[len(results) - 1] = (model, (self._user_factors, self._item_factors_t))
            for i in set(kept) - set(self._tied(results)):
                del kept[i]

    @staticmethod
    def _tied(results: list[dict[str, Any]]) -> list[int]:
        """Indices of the trials within ``TIE_TOLERANCE`` of the best validation score."""
        best = max(r["ndcg@10"] for r in results)
        return [i for i, r in enumerate(results) if r["ndcg@10"] >= best - TIE_TOLERANCE]

    def _complexity(self, run: dict[str, Any]) -> tuple[float, ...]:
        """Sort key of a trial's hyperparameters: smaller = simpler (see ``simpler``)."""
        return tuple(sign * float(run.get(k, 0.0)) for k, sign in self.simpler)

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        users = np.atleast_1d(np.asarray(user_idx, dtype=np.int64))
        scores = self._user_factors[users] @ self._item_factors_t
        return self._apply_fallback(users, scores)

    @property
    def model(self):
        """The fitted ``implicit`` model (for cross-checks against implicit's own evaluation)."""
        return self._model


@register
class ALSRecommender(_ImplicitMF):
    """Alternating least squares on implicit feedback (Hu, Koren & Volinsky 2008), via implicit."""

    name = "als"
    label = "ALS"
    grid = {"factors": [50, 100, 200], "regularization": [1.0, 10.0]}
    defaults = {"factors": 100, "regularization": 1.0, "alpha": 1.0, "iterations": 15}
    simpler = (("factors", 1), ("regularization", -1))
    widen = {"regularization": [0.1, 0.01]}

    def _build(self, params: dict[str, Any], seed: int, threads: int):
        from implicit.cpu.als import AlternatingLeastSquares

        return AlternatingLeastSquares(
            factors=int(params["factors"]), regularization=float(params["regularization"]),
            alpha=float(params["alpha"]), iterations=int(params["iterations"]),
            num_threads=threads, random_state=seed,
        )


@register
class BPRRecommender(_ImplicitMF):
    """Bayesian personalised ranking (Rendle et al. 2009) with SGD, via implicit."""

    name = "bpr"
    label = "BPR"
    grid = {"factors": [25, 50, 100]}
    defaults = {"factors": 50, "learning_rate": 0.01, "regularization": 0.01, "iterations": 100}
    early_stopping = True
    simpler = (("factors", 1), ("iterations", 1))

    def _build(self, params: dict[str, Any], seed: int, threads: int):
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        # one thread: implicit's multithreaded SGD is lock-free (Hogwild), hence not reproducible
        return BayesianPersonalizedRanking(
            factors=int(params["factors"]), learning_rate=float(params["learning_rate"]),
            regularization=float(params["regularization"]), iterations=int(params["iterations"]),
            num_threads=1, random_state=seed,
        )
