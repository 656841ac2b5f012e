"""The evaluator: masking, users evaluated, batching, top-k ties, and implicit's own numbers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from core.evaluation.evaluator import Validator, evaluate_model, relevant_matrix
from core.evaluation.splits import make_split
from core.ranking import top_k
from core.recommenders import FitContext, create_recommender


@pytest.fixture(scope="module")
def setup(taste):
    split = make_split(taste, "random", seed=3)
    train = taste.csr(split.train)
    ctx = FitContext(dataset=taste, train=split.train, train_csr=train, valid=None, seed=3,
                     options={"tune": False, "threads": 1})
    rel = relevant_matrix(split.test, taste.n_users, taste.n_items)
    return split, train, ctx, rel


def test_top_k_breaks_ties_by_lower_index_and_masks():
    scores = np.array([[1, 3, 3, 3, 0, -np.inf], [2, 2, 2, 2, 2, 2]], dtype=np.float32)
    ids, vals = top_k(scores, 2)
    assert ids.tolist() == [[1, 2], [0, 1]]
    ids, vals = top_k(scores[:1], 7)
    assert ids.tolist() == [[1, 2, 3, 0, 4, -1, -1]]
    assert np.isneginf(vals[0, 5:]).all()


@pytest.mark.parametrize("method", ["chunked", "partition"])
def test_top_k_matches_a_full_sort_with_many_ties(method, monkeypatch):
    monkeypatch.setenv("MMREC_TOPK", method)
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 50, size=(30, 5_000)).astype(np.float32)
    scores[3] = 1.0  # a row of equal scores
    scores[4, ::2] = -np.inf
    ids, vals = top_k(scores, 25)
    order = np.lexsort((np.broadcast_to(np.arange(5_000), scores.shape), -scores), axis=1)
    assert np.array_equal(ids, order[:, :25])
    assert np.array_equal(vals, np.take_along_axis(scores, order[:, :25], axis=1))


def test_users_masking_and_batches(setup, taste):
    split, train, ctx, rel = setup
    model = create_recommender("popular").fit(ctx)
    valid = taste.csr(split.valid)
    res = evaluate_model(model, train, rel, [5, 10], exclude=valid)
    users_with_test = np.nonzero(np.diff(rel.indptr))[0]
    assert np.array_equal(res.users, users_with_test)
    assert res.n_users == len(users_with_test)
    for row, u in zip(res.ranked, res.users):
        masked = set(train[u].indices.tolist()) | set(valid[u].indices.tolist())
        assert not set(row.tolist()) & masked
    # tiny blocks (one user per batch) give the same result
    small = evaluate_model(model, train, rel, [5, 10], exclude=valid, block_bytes=1)
    assert np.array_equal(small.ranked, res.ranked)
    assert small.metrics.values == pytest.approx(res.metrics.values)


def test_min_rating_and_cold_users(taste):
    split = make_split(taste, "random", seed=3)
    rel_all = relevant_matrix(split.test, taste.n_users, taste.n_items)
    rel_4 = relevant_matrix(split.test, taste.n_users, taste.n_items, min_rating=4)
    assert rel_4.nnz == (split.test["rating"] >= 4).sum() < rel_all.nnz
    # a user whose train history is removed is evaluated with the fallback and counted
    train = taste.csr(split.train).tolil()
    user = int(np.nonzero(np.diff(rel_all.indptr))[0][0])
    train.rows[user], train.data[user] = [], []
    train = train.tocsr()
    ctx = FitContext(dataset=taste, train=split.train, train_csr=train, seed=0,
                     options={"tune": False})
    model = create_recommender("als", factors=8, iterations=3).fit(ctx)
    res = evaluate_model(model, train, rel_all, [10])
    assert res.cold_users == 1
    pop = create_recommender("popular").fit(ctx)
    assert np.array_equal(model.recommend(user, 10)[0], pop.recommend(user, 10)[0])


def test_agrees_with_implicit_ranking_metrics(setup, taste):
    """Same ALS model and split: implicit's map and ndcg equal ours; its precision is
    hits / min(k, |relevant|) summed over users, which we rebuild from our per-user hits."""
    from implicit.evaluation import ranking_metrics_at_k

    split, train, ctx, rel = setup
    model = create_recommender("als", factors=16, iterations=10).fit(ctx)
    for k in (5, 10):
        ours = evaluate_model(model, train, rel, [k])
        theirs = ranking_metrics_at_k(model.model, train, rel, K=k, show_progress=False)
        v = ours.metrics.values
        assert v[("map", k)] == pytest.approx(theirs["map"], rel=1e-6)
        assert v[("ndcg", k)] == pytest.approx(theirs["ndcg"], rel=1e-6)
        hits = ours.metrics.per_user["precision"][k] * k
        n_rel = np.diff(rel[ours.users].indptr)
        assert hits.sum() / np.minimum(n_rel, k).sum() == pytest.approx(theirs["precision"])


def test_exclude_changes_nothing_when_empty(setup, taste):
    split, train, ctx, rel = setup
    model = create_recommender("itemknn").fit(ctx)
    a = evaluate_model(model, train, rel, [10])
    b = evaluate_model(model, train, rel, [10], exclude=sp.csr_matrix(train.shape))
    assert np.array_equal(a.ranked, b.ranked)


def test_tuning_records_trials_and_keeps_the_best(taste):
    split = make_split(taste, "random", seed=1)
    train = taste.csr(split.train)
    ctx = FitContext(dataset=taste, train=split.train, train_csr=train, valid=split.valid, seed=1,
                     options={"threads": 1}, validator=Validator.of(taste, train, split.valid, 1))
    bpr = create_recommender("bpr", factors=25).fit(ctx)  # factors fixed: only epochs searched
    trials = bpr.params["tuning"]["trials"]
    assert bpr.params["factors"] == 25 and len(trials) == 1
    assert bpr.params["iterations"] == trials[0]["iterations"] <= 200
    # the implicit model holds the kept epoch's factors
    ours = bpr.score(np.arange(5))
    theirs = bpr.model.user_factors[:5] @ bpr.model.item_factors.T
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    als = create_recommender("als").fit(ctx)
    scores = {(t["factors"], t["regularization"]): t["ndcg@10"]
              for t in als.params["tuning"]["trials"]}
    assert len(scores) == 6
    assert scores[(als.params["factors"], als.params["regularization"])] == max(scores.values())


def test_validator_users_are_the_relevant_ones_sampled_with_the_seed(taste):
    split = make_split(taste, "random", seed=2)
    train = taste.csr(split.train)
    val = Validator.of(taste, train, split.valid, seed=5, min_rating=4)
    relevant = split.valid[split.valid["rating"] >= 4]["user"].unique()
    assert val.users().tolist() == sorted(relevant.tolist())
    few = val.users(max_users=20)
    assert len(few) == 20 and set(few) <= set(relevant) and np.all(np.diff(few) > 0)
    assert np.array_equal(few, Validator.of(taste, train, split.valid, 5, 4).users(20))
    assert not np.array_equal(few, Validator.of(taste, train, split.valid, 6, 4).users(20))


def test_validator_scores_a_model_and_a_score_block_alike(taste):
    """Both tuner paths (a model: implicit; a score block: hybrid's blends) are one yardstick."""
    split = make_split(taste, "random", seed=2)
    train = taste.csr(split.train)
    val = Validator.of(taste, train, split.valid, seed=2)
    ctx = FitContext(dataset=taste, train=split.train, train_csr=train, seed=2,
                     options={"tune": False})
    model = create_recommender("itemknn").fit(ctx)
    users = val.users(max_users=100)
    scores = model.score(users)
    before = scores.copy()
    per_user = val.per_user(scores, users)
    assert np.array_equal(scores, before)  # masked on a copy
    assert per_user.dtype == np.float64 and per_user.shape == (len(users),)
    assert val.score(model, max_users=100) == pytest.approx(per_user.mean(), abs=1e-12)
    # the same number as evaluating the validation part like a test part
    rel = relevant_matrix(split.valid, taste.n_users, taste.n_items)
    direct = evaluate_model(model, train, rel, [10], users=users).metrics.values[("ndcg", 10)]
    assert val.score(model, max_users=100) == direct
    empty = Validator.of(taste, train, split.valid.iloc[:0], seed=2)
    assert len(empty.users()) == 0 and empty.score(model) == 0.0
