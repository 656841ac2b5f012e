"""Metrics against values computed by hand on a tiny example."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from core.evaluation.metrics import evaluate_topk, hit_matrix, self_information

# Two users, six items.
# A ranks [0, 1, 2, 3], relevant {1, 3, 5}: hits at ranks 2 and 4.
# B ranks [4, 2, -, -] (only two items left), relevant {4}: hit at rank 1.
RANKED = np.array([[0, 1, 2, 3], [4, 2, -1, -1]])
RELEVANT = sp.csr_matrix(np.array([[0, 1, 0, 1, 0, 1], [0, 0, 0, 0, 1, 0]], dtype=np.float32))
# distinct train users per item, and 7 users with train history
POPULARITY = np.array([3, 1, 0, 7, 1, 0])
L3, L5 = 1 / np.log2(3), 1 / np.log2(5)  # discounts of ranks 2 and 4


@pytest.fixture(scope="module")
def result():
    return evaluate_topk(RANKED, RELEVANT, [2, 4], POPULARITY, n_items=6, n_train_users=7)


def test_hit_matrix():
    assert hit_matrix(RANKED, RELEVANT).tolist() == [
        [False, True, False, True], [True, False, False, False]]


def test_per_user_values_by_hand(result):
    pu = result.per_user
    # user A
    assert pu["precision"][2][0] == pytest.approx(1 / 2)
    assert pu["precision"][4][0] == pytest.approx(2 / 4)
    assert pu["recall"][2][0] == pytest.approx(1 / 3)
    assert pu["recall"][4][0] == pytest.approx(2 / 3)
    assert pu["map"][2][0] == pytest.approx((1 / 2) / 2)          # P@2 at the hit / min(3, 2)
    assert pu["map"][4][0] == pytest.approx((1 / 2 + 2 / 4) / 3)  # / min(3, 4)
    assert pu["ndcg"][2][0] == pytest.approx(L3 / (1 + L3))       # 0.386853
    assert pu["ndcg"][4][0] == pytest.approx((L3 + L5) / (1 + L3 + 0.5))  # 0.498189
    assert pu["mrr"][2][0] == pytest.approx(0.5)
    assert pu["hit_rate"][2][0] == 1.0
    # user B: a short list; precision still divides by k
    assert pu["precision"][4][1] == pytest.approx(1 / 4)
    assert pu["recall"][4][1] == 1.0 and pu["map"][4][1] == 1.0 and pu["ndcg"][4][1] == 1.0
    assert pu["mrr"][4][1] == 1.0


def test_aggregates_by_hand(result):
    v = result.values
    assert v[("precision", 2)] == pytest.approx(0.5)
    assert v[("precision", 4)] == pytest.approx(0.375)
    assert v[("recall", 2)] == pytest.approx(0.666667, abs=1e-6)
    assert v[("recall", 4)] == pytest.approx(0.833333, abs=1e-6)
    assert v[("map", 2)] == pytest.approx(0.625)
    assert v[("map", 4)] == pytest.approx(0.666667, abs=1e-6)
    assert v[("ndcg", 2)] == pytest.approx(0.693426, abs=1e-6)
    assert v[("ndcg", 4)] == pytest.approx(0.749095, abs=1e-6)
    assert v[("mrr", 4)] == pytest.approx(0.75)
    assert v[("hit_rate", 4)] == 1.0
    assert result.n_users == 2


def test_coverage_and_novelty_by_hand(result):
    v = result.values
    assert v[("coverage", 2)] == pytest.approx(4 / 6)  # {0, 1, 4, 2}
    assert v[("coverage", 4)] == pytest.approx(5 / 6)  # {0, 1, 2, 3, 4}
    # self-information -log2((c+1)/8): item0 1, item1 2, item2 3, item3 0, item4 2
    assert self_information(POPULARITY, 7).tolist() == pytest.approx([1, 2, 3, 0, 2, 3])
    assert result.per_user["novelty"][2].tolist() == pytest.approx([1.5, 2.5])
    assert result.per_user["novelty"][4].tolist() == pytest.approx([1.5, 2.5])  # padding ignored
    assert v[("novelty", 4)] == pytest.approx(2.0)
    assert "coverage" not in result.per_user


def test_perfect_and_empty_rankings():
    rel = sp.csr_matrix(np.array([[1, 1, 0, 0, 0]], dtype=np.float32))
    best = evaluate_topk(np.array([[0, 1, 2]]), rel, [1, 3])
    assert best.values[("ndcg", 3)] == 1.0 and best.values[("map", 3)] == 1.0
    assert best.values[("recall", 1)] == 0.5 and best.values[("ndcg", 1)] == 1.0
    worst = evaluate_topk(np.array([[2, 3, 4]]), rel, [3])
    assert all(worst.values[(m, 3)] == 0 for m in ("map", "ndcg", "recall", "mrr", "hit_rate"))


def test_too_few_columns_is_an_error():
    with pytest.raises(ValueError, match="need 5"):
        evaluate_topk(np.zeros((1, 3), dtype=int), RELEVANT[:1], [5])
