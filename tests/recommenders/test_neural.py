"""The torch BPR backbones (lightgcn, vbpr, freedom, fusion): graphs against hand computations,
negative sampling, early stopping, ablations, and training that learns."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from toy_data import all_users, heldout_item, make_context

from core.errors import TechniqueUnavailable
from core.recommenders import create_recommender, get_technique
from core.recommenders.freedom import fused_item_graph, knn_graph, pruned_adjacency
from core.recommenders.neural import normalized_adjacency, sample_negatives

torch = pytest.importorskip("torch")

BACKBONES = ["lightgcn", "vbpr", "freedom", "fusion"]


def test_normalized_adjacency_matches_the_dense_formula():
    # 2 users x 3 items: u0-i0, u0-i1, u1-i1, u1-i2
    r = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1]], dtype=np.float32))
    a = np.zeros((5, 5))
    a[:2, 2:] = r.toarray()
    a[2:, :2] = r.toarray().T
    d = a.sum(1)
    expected = a / np.sqrt(np.outer(d, d))
    got = normalized_adjacency(r).toarray()
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    # by hand: u0 (degree 2) – i1 (degree 2) = 1/2; u0 – i0 (degree 1) = 1/sqrt(2)
    assert got[0, 3] == pytest.approx(0.5) and got[0, 2] == pytest.approx(2 ** -0.5)


def test_lightgcn_propagation_is_the_mean_of_powers():
    from core.recommenders.lightgcn import propagate
    from core.recommenders.neural import torch_sparse

    r = sp.random(6, 5, density=0.5, random_state=0, format="csr")
    r.data[:] = 1
    adj = normalized_adjacency(r)
    ego = np.random.default_rng(0).normal(size=(11, 4)).astype(np.float32)
    got = propagate(torch, torch_sparse(torch, adj, "cpu"), torch.from_numpy(ego), 3).numpy()
    dense = adj.toarray()
    expected = (ego + dense @ ego + dense @ dense @ ego + dense @ dense @ dense @ ego) / 4
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_spmm_value_and_gradient_match_the_dense_product():
    from core.recommenders.neural import spmm, torch_sparse

    m = sp.random(7, 5, density=0.4, random_state=2, format="csr", dtype=np.float32)
    x = torch.randn(5, 3, dtype=torch.float32, requires_grad=True)
    w = torch.randn(7, 3)
    (spmm(torch_sparse(torch, m, "cpu"), x) * w).sum().backward()
    dense = torch.from_numpy(m.toarray())
    x2 = x.detach().clone().requires_grad_(True)
    ((dense @ x2) * w).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), x2.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_knn_graph_keeps_k_neighbours_and_normalises_symmetrically():
    feats = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.0, 0.0]], np.float32)
    g = knn_graph(feats, k=2).toarray()
    # rows 0-3: themselves and their nearest other item; row 4 (no features): itself only
    assert [set(np.flatnonzero(row)) for row in g] == [{0, 1}, {0, 1}, {2, 3}, {2, 3}, {4}]
    s = (g > 0).astype(float)
    deg = s.sum(1)
    np.testing.assert_allclose(g, s / np.sqrt(np.outer(deg, deg)), rtol=1e-6)
    assert g[0, 1] == pytest.approx(0.5) and g[4, 4] == pytest.approx(1.0)


def test_fused_graph_weights_the_modalities():
    text = np.eye(4, dtype=np.float32)
    image = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], np.float32)
    fused = fused_item_graph({"text": text, "image": image}, k=2, image_weight=0.1).toarray()
    expected = 0.1 * knn_graph(image, 2).toarray() + 0.9 * knn_graph(text, 2).toarray()
    np.testing.assert_allclose(fused, expected, rtol=1e-6)
    only = fused_item_graph({"image": image}, k=2, image_weight=0.1).toarray()
    np.testing.assert_allclose(only, knn_graph(image, 2).toarray())


def test_pruning_keeps_the_asked_share_and_prefers_low_degree_edges():
    # user 0 is a hub (items 0-8); user 1 has only item 9, which nobody else has
    users = np.array([0] * 9 + [1])
    items = np.array(list(range(9)) + [9])
    rng = np.random.default_rng(0)
    kept_leaf = 0
    for _ in range(400):
        adj = pruned_adjacency(users, items, 2, 10, keep=3, rng=rng)
        assert adj.nnz == 6 and (adj != adj.T).nnz == 0  # 3 edges, both directions
        kept_leaf += adj[1, 2 + 9] > 0
    # weight of the leaf edge 1/sqrt(1*1) = 1, of each hub edge 1/sqrt(9*1) = 1/3: kept far more
    # often than a hub edge's 3/10 share would give
    assert kept_leaf / 400 > 0.5
    adj = pruned_adjacency(users, items, 2, 10, keep=10, rng=rng)
    np.testing.assert_allclose(adj.toarray(), normalized_adjacency(
        sp.csr_matrix((np.ones(10), (users, items)), shape=(2, 10))).toarray(), rtol=1e-6)


def test_negatives_are_never_train_items():
    csr = sp.random(50, 30, density=0.6, random_state=1, format="csr")
    csr.data[:] = 1
    csr.sort_indices()
    users = np.repeat(np.arange(50), 40)
    neg = sample_negatives(csr, users, np.random.default_rng(0))
    assert not np.asarray(csr[users, neg]).ravel().any()
    # uniform over the unseen items: every unseen item of user 0 is drawn
    unseen = set(range(30)) - set(csr[0].indices)
    drawn = sample_negatives(csr, np.zeros(3000, np.int64), np.random.default_rng(1))
    assert set(drawn.tolist()) == unseen


@pytest.mark.parametrize("name", BACKBONES)
def test_training_lowers_the_bpr_loss(name, toy_dataset, toy_cache):
    ctx = make_context(get_technique(name), toy_dataset, toy_cache)
    model = create_recommender(name, epochs=20).fit(ctx)
    loss = model.params["loss"]
    assert len(loss) == 20 and loss[-1] < 0.7 * loss[0]


@pytest.mark.parametrize("name", BACKBONES)
def test_recall_far_above_chance_on_the_checkerboard(name, toy_dataset, toy_cache):
    ctx = make_context(get_technique(name), toy_dataset, toy_cache)
    ids, _ = create_recommender(name).fit(ctx).recommend(all_users(toy_dataset), n=1)
    hits = np.mean([ids[u, 0] == heldout_item(u) for u in range(toy_dataset.n_users)])
    assert hits >= 0.95  # chance: 1 of the 21 unseen items


class ScriptedValidator:
    """Validation scores in a fixed order, whatever the model."""

    k = 10

    def __init__(self, scores):
        self.scores = list(scores)
        self.calls = 0

    def score(self, model, max_users=5000):
        self.calls += 1
        return self.scores[min(self.calls, len(self.scores)) - 1]


def test_early_stopping_keeps_the_best_measurement(toy_dataset, toy_cache, monkeypatch):
    ctx = make_context(get_technique("lightgcn"), toy_dataset, toy_cache)
    validator = ScriptedValidator([0.1, 0.3, 0.5, 0.45, 0.5, 0.2, 0.9])
    monkeypatch.setattr(type(ctx), "tuning", lambda self: validator)
    model = create_recommender("lightgcn", layers=1, reg=1e-4, eval_every=2, patience=3,
                               max_epochs=40).fit(ctx)
    trial = model.params["tuning"]["trials"][0]
    # measured at epochs 2, 4, 6 (best, 0.5), then 3 without an improvement: stop at epoch 12
    assert trial["best_epoch"] == 6 and trial["epochs_run"] == 12
    assert trial["ndcg@10"] == pytest.approx(0.5) and validator.calls == 6


def test_grid_is_searched_and_the_best_trial_kept(toy_dataset, toy_cache, monkeypatch):
    ctx = make_context(get_technique("vbpr"), toy_dataset, toy_cache)
    # trial 1 (reg 1e-3) scores 0.2 then falls; trial 2 (reg 1e-2) scores 0.4
    validator = ScriptedValidator([0.2, 0.1, 0.1, 0.4, 0.3, 0.3])
    monkeypatch.setattr(type(ctx), "tuning", lambda self: validator)
    model = create_recommender("vbpr", eval_every=1, patience=2, max_epochs=3).fit(ctx)
    trials = model.params["tuning"]["trials"]
    assert [t["reg"] for t in trials] == [1e-3, 1e-2]
    assert model.params["reg"] == 1e-2


def test_ablation_drops_a_modality(toy_dataset, toy_cache):
    cls = get_technique("vbpr")
    ctx = make_context(cls, toy_dataset, toy_cache)
    model = create_recommender("vbpr", ablate="text", epochs=2).fit(ctx)
    assert model.params["modalities"] == ["image"]
    assert cls.row_title({"ablate": "text"}) == "VBPR w/o text"
    assert cls.row_encoders({"ablate": "text"}, ctx.encoders) == {"image": ctx.encoders["image"]}
    with pytest.raises(TechniqueUnavailable, match="ablate='audio'"):
        create_recommender("vbpr", ablate="audio").fit(ctx)
    both = create_recommender("freedom", epochs=2).fit(make_context(
        get_technique("freedom"), toy_dataset, toy_cache))
    assert both.params["modalities"] == ["image", "text"]


def test_lightgcn_reads_no_features():
    cls = get_technique("lightgcn")
    assert cls.needs == frozenset() and cls.uses == frozenset()
    assert get_technique("freedom").uses == frozenset({"text", "image"})


@pytest.mark.parametrize("name", ["fusion", "lightgcn"])
def test_same_seed_same_embeddings_bit_for_bit(name, toy_dataset, toy_cache):
    """Deterministic algorithms while training: with two CPU threads some reductions otherwise
    vary in order, and fusion's attention turned that into other rankings about one run in three."""
    fits = [create_recommender(name, epochs=15).fit(
        make_context(get_technique(name), toy_dataset, toy_cache, seed=3)) for _ in range(3)]
    for other in fits[1:]:
        assert np.array_equal(fits[0]._item_emb, other._item_emb)
        assert np.array_equal(fits[0]._user_emb, other._user_emb)
    assert not torch.are_deterministic_algorithms_enabled()  # restored after training
