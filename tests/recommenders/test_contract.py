"""One contract test, every technique: runs over everything ``list_techniques()`` returns.

A new technique gets these checks for free; if it needs encoders, configure ``TEST_ENCODERS`` (or
``EMBEDDINGS_FACTORY``) in ``tests/recommenders/toy_data.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from toy_data import NON_PERSONALISED, all_users, heldout_item, make_context

from core.errors import TechniqueUnavailable
from core.recommenders import create_recommender, get_technique, list_techniques

TECHNIQUES = [t["name"] for t in list_techniques()]


@pytest.fixture
def fitted(request, toy_dataset, toy_cache):
    """Factory: a technique fitted on the whole toy dataset (seeded, no tuning)."""

    def fit(name: str, seed: int = 7):
        cls = get_technique(name)
        ctx = make_context(cls, toy_dataset, toy_cache, seed=seed)
        return create_recommender(name).fit(ctx)

    return fit


def test_registry_lists_the_baselines_with_their_descriptions():
    rows = list_techniques()
    names = [r["name"] for r in rows]
    assert names[:5] == ["random", "popular", "als", "bpr", "itemknn"]
    for row in rows:
        assert set(row) == {"name", "label", "needs", "uses", "description", "fallback"}
        assert row["label"] and row["description"] and row["fallback"]
        assert set(row["needs"]) <= set(row["uses"])  # what a technique needs, it uses
    rows[0]["name"] = "changed"  # a copy: the registry is unaffected
    assert list_techniques()[0]["name"] == "random"


def test_uses_lists_the_encoder_roles_that_change_results():
    uses = {r["name"]: r["uses"] for r in list_techniques()}
    assert all(uses[t] == [] for t in ("random", "popular", "als", "bpr", "itemknn"))
    assert uses["text"] == ["text"] and uses["image"] == ["image"] and uses["clip-t3"] == ["clip"]
    assert uses["hybrid"] == ["clip", "image", "text"]  # needs none, blends whichever it picks
    assert get_technique("hybrid").needs == frozenset()


def test_unknown_technique_names_the_known_ones():
    with pytest.raises(TechniqueUnavailable, match="unknown technique 'nope'.*popular"):
        create_recommender("nope")


def test_fixed_hyperparameter_is_kept():
    assert create_recommender("als", factors=8).params["factors"] == 8


@pytest.mark.parametrize("name", TECHNIQUES)
class TestContract:
    def test_scores_are_dense_float_rows(self, name, fitted, toy_dataset):
        model = fitted(name)
        scores = np.asarray(model.score(np.array([0, 3, 5])))
        assert scores.shape == (3, toy_dataset.n_items)
        assert scores.dtype == np.float32
        assert np.isfinite(scores).all()

    def test_heldout_item_ranks_first(self, name, fitted, toy_dataset):
        if name in NON_PERSONALISED:
            pytest.skip(f"{name} ignores the user by design")
        model = fitted(name)
        ids, _ = model.recommend(all_users(toy_dataset), n=1)
        expected = np.array([heldout_item(u) for u in range(toy_dataset.n_users)])
        # raw ids equal the generating indices (sorted "it000".. / "us000..")
        assert (ids[:, 0] == expected).mean() >= 0.95

    def test_batch_equals_one_by_one(self, name, fitted, toy_dataset):
        model = fitted(name)
        users = all_users(toy_dataset)
        ids, scores = model.recommend(users, n=6)
        for u in (0, 1, 17, 38):
            one_ids, one_scores = model.recommend(np.array([u]), n=6)
            assert np.array_equal(one_ids[0], ids[u])
            np.testing.assert_allclose(one_scores[0], scores[u], rtol=1e-5, atol=1e-6)
        single_ids, _ = model.recommend(5, n=6)  # a plain int works too
        assert np.array_equal(single_ids[0], ids[5])

    def test_seen_items_are_filtered(self, name, fitted, toy_dataset):
        model = fitted(name)
        csr = toy_dataset.csr()
        n_left = toy_dataset.n_items - csr[0].nnz
        ids, scores = model.recommend(all_users(toy_dataset), n=n_left + 3)
        for u in range(toy_dataset.n_users):
            seen = set(csr[u].indices)
            real = ids[u][ids[u] >= 0]
            assert not seen & set(real.tolist())
            assert len(real) == len(set(real.tolist()))
        # more than what is left: padded with -1 / -inf
        assert (ids[:, -3:] == -1).all() and np.isneginf(scores[:, -3:]).all()
        assert (np.diff(scores[:, :n_left], axis=1) <= 0).all()

    def test_exclude_is_filtered_too(self, name, fitted, toy_dataset):
        import scipy.sparse as sp

        model = fitted(name)
        top, _ = model.recommend(np.array([2]), n=1)
        exclude = sp.csr_matrix(([1.0], ([2], [top[0, 0]])), shape=toy_dataset.csr().shape)
        again, _ = model.recommend(np.array([2]), n=3, exclude=exclude)
        assert top[0, 0] not in again[0]

    def test_same_seed_same_recommendations(self, name, fitted, toy_dataset):
        users = all_users(toy_dataset)
        a, _ = fitted(name, seed=3).recommend(users, n=5)
        b, _ = fitted(name, seed=3).recommend(users, n=5)
        assert np.array_equal(a, b)
