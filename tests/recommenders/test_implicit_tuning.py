"""Hyperparameter search of the implicit adapters: ties within the tolerance go to the simpler
model (ALS: fewer factors, then stronger regularization), a flat grid is widened, trials are
recorded. Scores are scripted per trial so every case is exact; one test runs the real ALS."""

from __future__ import annotations

import numpy as np
import pytest

from core.data.dataset import build_dataset
from core.evaluation.evaluator import Validator
from core.evaluation.splits import make_split
from core.recommenders.base import FitContext
from core.recommenders.implicit_models import TIE_TOLERANCE, ALSRecommender


def _dataset(n_users: int = 60, n_items: int = 30, per_user: int = 8, seed: int = 0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = [(f"u{u:03d}", f"i{j:03d}", 5.0, int(rng.integers(0, 10**6)))
            for u in range(n_users) for j in rng.choice(n_items, per_user, replace=False)]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    items = pd.DataFrame({"item_id": [f"i{j:03d}" for j in range(n_items)]})
    return build_dataset("tuning", inter, items, None)


@pytest.fixture(scope="module")
def ctx() -> FitContext:
    ds = _dataset()
    split = make_split(ds, "random", 0)
    train = ds.csr(split.train)
    return FitContext(dataset=ds, train=split.train, train_csr=train, valid=split.valid, seed=0,
                      options={"threads": 1}, validator=Validator.of(ds, train, split.valid, 0))


class _Scripted(ALSRecommender):
    """ALS whose 'training' only records the trial and whose validation score comes from a table
    ``(factors, regularization) -> nDCG@10``; the factors carry the trial so the kept model can
    be identified."""

    table: dict[tuple[int, float], float] = {}

    def _train(self, params, ctx, monitor=False):
        key = (int(params["factors"]), float(params["regularization"]))
        self._user_factors = np.full((ctx.dataset.n_users, 1), key[0] * 1000 + key[1],
                                     dtype=np.float32)
        self._item_factors_t = np.ones((1, ctx.dataset.n_items), dtype=np.float32)
        self.trained = [*getattr(self, "trained", []), key]
        return key, self.table[key], None


def _fit(ctx, table):
    model = _Scripted()
    model.table = table
    return model.fit(ctx)


def _grid(value_of):
    return {(f, r): value_of(f, r) for f in (50, 100, 200) for r in (0.01, 0.1, 1.0, 10.0)}


def _picked(model):
    return model.params["factors"], model.params["regularization"]


def test_strong_regularization_ties_go_to_fewest_factors(ctx):
    # reg 10 collapses every factor count to (nearly) one score, the best; reg 1 is worse
    table = _grid(lambda f, r: 0.30 + 1e-5 * (f // 50) if r == 10.0 else 0.2)
    model = _fit(ctx, table)
    assert _picked(model) == (50, 10.0)  # not 200, which scored 3e-5 "higher"
    assert model._user_factors[0, 0] == 50 * 1000 + 10.0  # the kept model is the chosen one
    tuning = model.params["tuning"]
    assert tuning["tolerance"] == TIE_TOLERANCE and len(tuning["tied"]) == 3
    assert "fewer factors, more regularization" in tuning["rule"]
    assert tuning["widened"] is None and len(tuning["trials"]) == 6


def test_ties_at_equal_factors_go_to_stronger_regularization(ctx):
    table = _grid(lambda f, r: 0.4 if f == 100 else 0.1)
    assert _picked(_fit(ctx, table)) == (100, 10.0)


def test_a_clear_winner_beyond_the_tolerance_is_kept(ctx):
    table = _grid(lambda f, r: 0.3 + (2 * TIE_TOLERANCE if (f, r) == (200, 1.0) else 0.0))
    model = _fit(ctx, table)
    assert _picked(model) == (200, 1.0) and len(model.params["tuning"]["tied"]) == 1


def test_flat_validation_widens_the_grid_to_weaker_regularization(ctx):
    table = _grid(lambda f, r: 0.35 if (f, r) == (100, 0.1) else 0.25)
    model = _fit(ctx, table)
    tuning = model.params["tuning"]
    assert tuning["widened"] == {"regularization": [0.1, 0.01]}
    tried = {(t["factors"], t["regularization"]) for t in tuning["trials"]}
    assert tried == set(table)  # 3 x {1, 10} and then 3 x {0.1, 0.01}
    assert _picked(model) == (100, 0.1)


def test_flat_at_zero_is_not_widened(ctx):
    model = _fit(ctx, _grid(lambda f, r: 0.0))
    assert model.params["tuning"]["widened"] is None and len(model.trained) == 6
    assert _picked(model) == (50, 10.0)


def test_real_als_records_trials_and_obeys_the_rule(ctx):
    model = ALSRecommender().fit(ctx)
    tuning = model.params["tuning"]
    scores = {(t["factors"], t["regularization"]): t["ndcg@10"] for t in tuning["trials"]}
    best = max(scores.values())
    chosen = _picked(model)
    assert scores[chosen] >= best - TIE_TOLERANCE
    simpler = [k for k, v in scores.items() if v >= best - TIE_TOLERANCE
               and (k[0], -k[1]) < (chosen[0], -chosen[1])]
    assert simpler == []
    assert [(t["factors"], t["regularization"]) for t in tuning["tied"]] == [
        k for k, v in scores.items() if v >= best - TIE_TOLERANCE]
