"""Content, CLIP, multi-view and hybrid techniques on a synthetic topical dataset with fake
embeddings (no model is loaded): representations, filters, refusals, and the contract."""

from __future__ import annotations

import numpy as np
import pytest
from content_fakes import (
    LABEL_WORDS,
    FakeEncoder,
    fit_context,
    split_of,
    topical_dataset,
)

from core.encoders.base import l2_normalise
from core.errors import TechniqueUnavailable
from core.evaluation.evaluator import evaluate_model, relevant_matrix
from core.progress import ProgressEvent
from core.recommenders import create_recommender
from core.recommenders.filters import filter_info, photo_keep_mask
from core.recommenders.multiview import DEFAULT_TAU, TAU_GRID, item_views, view_weights
from core.recommenders.representations import (
    group_mean,
    item_photo_vectors,
    item_text_vectors,
    user_photo_vectors,
    user_text_vectors,
)

CONTENT = ["text", "image", "clip-t1", "clip-t2", "clip-t3", "clip-t4", "clip-t5", "multiview"]
ALL = CONTENT + ["hybrid"]
ALS = {"factors": 32, "regularization": 1.0}  # fixed, so the hybrid tests do not search ALS


@pytest.fixture(scope="module")
def ds():
    return topical_dataset()


def _ndcg10(model, ds, seed=0):
    parts = split_of(ds, seed)
    rel = relevant_matrix(parts.test, ds.n_users, ds.n_items)
    res = evaluate_model(model, ds.csr(parts.train), rel, [10], exclude=ds.csr(parts.valid))
    return res.metrics.values[("ndcg", 10)]


# --- representations ------------------------------------------------------------------------------
def test_group_mean_is_renormalised_mean_per_group():
    vecs = np.array([[1, 0], [0, 1], [3, 4], [1, 1]], dtype=np.float32)
    means, has = group_mean(vecs, np.array([0, 0, 2, 2]), 4, keep=np.array([1, 1, 1, 0], bool))
    np.testing.assert_allclose(means[0], [np.sqrt(0.5), np.sqrt(0.5)], atol=1e-6)
    np.testing.assert_allclose(means[2], [0.6, 0.8], atol=1e-6)
    assert has.tolist() == [True, False, True, False]
    assert not means[1].any() and not means[3].any()


def test_item_and_user_text_vectors_follow_the_documented_rules(ds):
    ctx = fit_context(ds)
    items, has = item_text_vectors(ctx, "text:fake")
    revs, _ = ctx.embeddings.reviews("text:fake")
    docs, _ = ctx.embeddings.item_texts("text:fake")
    train = ctx.train
    reviewed = set(train["item"])
    for j in range(ds.n_items):
        rows = train.index[train["item"] == j]
        expected = l2_normalise(revs[rows].sum(0, keepdims=True))[0] if j in reviewed else docs[j]
        np.testing.assert_allclose(items[j], expected, atol=1e-5)
    assert has.all()
    users, uhas = user_text_vectors(ctx, "text:fake")
    u = int(train["user"].iloc[0])
    rows = train.index[train["user"] == u]
    np.testing.assert_allclose(users[u], l2_normalise(revs[rows].sum(0, keepdims=True))[0],
                               atol=1e-5)


def test_without_review_text_users_use_consumed_items_documents():
    ds = topical_dataset(with_text=False)
    ctx = fit_context(ds)
    docs, _ = ctx.embeddings.item_texts("text:fake")
    items, _ = item_text_vectors(ctx, "text:fake")
    np.testing.assert_allclose(items, docs, atol=1e-6)
    users, _ = user_text_vectors(ctx, "text:fake")
    consumed = ctx.train_csr[5].indices
    expected = l2_normalise(docs[consumed].sum(0, keepdims=True))[0]
    np.testing.assert_allclose(users[5], expected, atol=1e-5)
    assert "reviews" not in ctx.embeddings.calls


def test_photo_vectors_average_photos_then_consumed_items(ds):
    ctx = fit_context(ds)
    photos, _ = ctx.embeddings.photos("cnn:fake")
    items, has = item_photo_vectors(ctx, "cnn:fake")
    rows = np.flatnonzero(ds.photos["item"].to_numpy() == 0)
    np.testing.assert_allclose(items[0], l2_normalise(photos[rows].sum(0, keepdims=True))[0],
                               atol=1e-5)
    assert not has[9] and not items[9].any()  # the last item of a topic has no photos
    users, _ = user_photo_vectors(ctx, "cnn:fake")
    consumed = [j for j in ctx.train_csr[3].indices if has[j]]
    np.testing.assert_allclose(users[3], l2_normalise(items[consumed].sum(0, keepdims=True))[0],
                               atol=1e-5)


# --- the contract, for every technique of this module ---------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_contract_scores_batches_and_masks(ds, name):
    ctx = fit_context(ds)
    params = {"cf_fixed": ALS} if name == "hybrid" else {}
    model = create_recommender(name, **params).fit(ctx)
    users = np.arange(ds.n_users)
    scores = model.score(users)
    assert scores.shape == (ds.n_users, ds.n_items) and scores.dtype == np.float32
    assert np.isfinite(scores).all()
    ids, vals = model.recommend(users[:7], n=5)
    for i, u in enumerate(users[:7]):
        one_ids, one_vals = model.recommend(u, n=5)
        assert one_ids[0].tolist() == ids[i].tolist()
        np.testing.assert_allclose(one_vals[0], vals[i], rtol=1e-5, atol=1e-6)
        assert not set(ids[i].tolist()) & set(ctx.train_csr[u].indices.tolist())
    again = create_recommender(name, **params).fit(fit_context(ds))
    np.testing.assert_array_equal(again.score(users[:5]), model.score(users[:5]))


@pytest.mark.parametrize("name", CONTENT)
def test_content_techniques_learn_the_topics(ds, name):
    ctx = fit_context(ds)
    model = create_recommender(name).fit(ctx)
    popular = create_recommender("popular").fit(ctx)
    assert _ndcg10(model, ds) > 2 * _ndcg10(popular, ds)


@pytest.mark.parametrize("name", CONTENT)
def test_cold_users_get_popularity(ds, name):
    ctx = fit_context(ds)
    cold = np.flatnonzero(np.diff(ctx.train_csr.indptr) == 0)
    model = create_recommender(name).fit(ctx)
    if len(cold) == 0:  # make one: a user whose train rows are dropped
        ctx.train = ctx.train[ctx.train["user"] != 0]
        ctx.train_csr = ds.csr(ctx.train)
        model = create_recommender(name).fit(ctx)
        cold = np.array([0])
    pop = np.asarray(ctx.train_csr.sum(axis=0)).ravel()
    order = np.argsort(-model.score(cold)[0], kind="stable")
    assert np.all(np.diff(pop[order]) <= 0)


# --- refusals -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["clip-t3", "clip-t4", "clip-t5", "multiview"])
def test_cross_modal_refuses_separate_spaces(ds, name):
    ctx = fit_context(ds, encoders={"clip": "sep:fake"})
    with pytest.raises(TechniqueUnavailable, match="shared image-text space"):
        create_recommender(name).fit(ctx)


@pytest.mark.parametrize("name", ["clip-t1", "clip-t2"])
def test_same_modal_clip_rows_accept_separate_spaces(ds, name):
    ctx = fit_context(ds, encoders={"clip": "sep:fake"})
    assert create_recommender(name).fit(ctx).score(np.array([0])).shape == (1, ds.n_items)


def test_missing_encoder_names_the_flag(ds):
    ctx = fit_context(ds, encoders={})
    with pytest.raises(TechniqueUnavailable, match="--text-encoder"):
        create_recommender("text").fit(ctx)
    with pytest.raises(TechniqueUnavailable, match="--encoder"):
        create_recommender("clip-t3").fit(ctx)


def test_param_encoder_overrides_the_run_role(ds):
    ctx = fit_context(ds, encoders={"image": "cnn:fake"})
    model = create_recommender("image", encoder="cnn:noise").fit(ctx)
    assert model.params["encoder"] == "cnn:noise"


# --- filters --------------------------------------------------------------------------------------
def test_photo_filter_uses_dataset_labels_without_clip(ds):
    ctx = fit_context(ds, encoders={"image": "cnn:fake"}, options={"photo_filter": "food"})
    keep = photo_keep_mask(ctx)
    assert keep.tolist() == (ds.photos["label"] == "food").tolist()
    items, has = item_photo_vectors(ctx, "cnn:fake")
    photos, _ = ctx.embeddings.photos("cnn:fake")
    food0 = np.flatnonzero((ds.photos["item"] == 0) & (ds.photos["label"] == "food"))
    np.testing.assert_allclose(items[0], photos[food0[0]], atol=1e-6)
    info = filter_info(ctx)
    assert info["source"] == "dataset photo labels"
    assert info["photos_kept"] == int(keep.sum()) < info["photos_total"]


def test_photo_filter_uses_clip_zero_shot_labels():
    ds = topical_dataset(photo_labels=False)  # the dataset's labels are blank
    ctx = fit_context(ds, options={"photo_filter": "food"})
    keep = photo_keep_mask(ctx)
    assert keep.tolist() == (ds.photos["visual"] == "food").tolist()
    assert filter_info(ctx)["source"].startswith("CLIP zero-shot (clip:fake)")
    assert create_recommender("image").fit(ctx).params["items_with_vector"] == 36


def test_photo_filter_without_clip_or_labels_refuses():
    ds = topical_dataset(photo_labels=False)
    ctx = fit_context(ds, encoders={"image": "cnn:fake"}, options={"photo_filter": "food"})
    with pytest.raises(TechniqueUnavailable, match="photo labels"):
        create_recommender("image").fit(ctx)


def test_review_filter_keeps_positive_reviews_only(ds):
    ctx = fit_context(ds, options={"review_filter": "positive"})
    items, _ = item_text_vectors(ctx, "text:fake")
    revs, _ = ctx.embeddings.reviews("text:fake")
    train = ctx.train
    mixed = train.groupby("item")["rating"].agg(lambda r: (r >= 4).any() and (r < 4).any())
    j = int(mixed[mixed].index[0])
    rows = train.index[(train["item"] == j) & (train["rating"] >= 4)]
    np.testing.assert_allclose(items[j], l2_normalise(revs[rows].sum(0, keepdims=True))[0],
                               atol=1e-5)
    info = filter_info(ctx)
    assert info["train_reviews_kept"] == int((train["rating"] >= 4).sum())


def test_unknown_filter_value_is_refused(ds):
    ctx = fit_context(ds, options={"review_filter": "angry"})
    with pytest.raises(TechniqueUnavailable, match="review filter"):
        create_recommender("text").fit(ctx)


# --- multi-view -----------------------------------------------------------------------------------
def test_view_weights_are_a_softmax_over_present_views():
    views = np.array([[[1, 0], [0, 1], [0, 0]], [[1, 0], [0, 1], [0.6, 0.8]]], np.float32)
    mask = np.array([[True, True, False], [True, True, True]])
    photos = np.array([[1, 0], [0, 0]], np.float32)
    w = view_weights(views, mask, photos, np.array([True, False]), tau=0.5)
    e = np.exp([1 / 0.5, 0.0])
    np.testing.assert_allclose(w[0], [e[0] / e.sum(), e[1] / e.sum(), 0.0], rtol=1e-5)
    np.testing.assert_allclose(w[1], [1 / 3, 1 / 3, 1 / 3], rtol=1e-5)  # no photo: equal
    sharp = view_weights(views, mask, photos, np.array([True, False]), tau=0.01)
    assert sharp[0, 0] > 0.999


def test_multiview_prompts_and_weights(ds):
    views = item_views(ds.items, ds.domain)[0]
    assert views["name"] == "The restaurant's name is Sushi place 0."
    assert views["categories"] == "The restaurant's categories are Restaurants, sushi."
    assert views["attributes"] == "The restaurant's attributes are price 1."
    assert views["global"].startswith("A restaurant named Sushi place 0; categories:")
    assert "description" not in views
    model = create_recommender("multiview").fit(fit_context(ds))
    w = model.params["mean_view_weights"]
    assert w["name"] > w["attributes"] and w["categories"] > w["attributes"]
    np.testing.assert_allclose(model.weights.sum(axis=1), 1.0, rtol=1e-5)


def test_multiview_picks_tau_on_validation_unless_given(ds):
    ctx = fit_context(ds)
    tuned = create_recommender("multiview").fit(ctx)
    trials = tuned.params["tuning"]["trials"]
    assert [t["tau"] for t in trials] == list(TAU_GRID)
    scores = [t["ndcg@10"] for t in trials]
    assert tuned.params["tau"] == TAU_GRID[scores.index(max(scores))]  # first of the best
    assert ctx.validator.score(tuned) == pytest.approx(max(scores), abs=1e-6)  # the kept fit
    given = create_recommender("multiview", tau=0.5).fit(fit_context(ds))
    assert given.params["tau"] == 0.5 and "tuning" not in given.params
    untuned = create_recommender("multiview").fit(fit_context(ds, options={"tune": False}))
    assert untuned.params["tau"] == DEFAULT_TAU and "tuning" not in untuned.params


# --- hybrid ---------------------------------------------------------------------------------------
def test_hybrid_uses_informative_content_and_beats_als():
    ds = topical_dataset(n_users=120, per_user=8, seed=1)
    ctx = fit_context(ds, encoders={"text": "text:fake"}, seed=1)
    hybrid = create_recommender("hybrid", contents=["text"], cf_fixed=ALS).fit(ctx)
    assert hybrid.params["content"] == "text" and hybrid.params["weight"] > 0
    assert hybrid.params["row_label"] == f"Hybrid ALS + text (w={hybrid.params['weight']:g})"
    assert "no_blend_reason" not in hybrid.params
    blend = hybrid.params["best_blend"]  # the one-standard-error rule let the blend in
    assert blend["gain"] > blend["standard_error"] > 0
    table = hybrid.params["validation_ndcg@10"]
    assert max(table["text"].values()) > table["als_only"]["0.0"]
    als = create_recommender("als", **ALS).fit(fit_context(ds, seed=1))
    assert _ndcg10(hybrid, ds, seed=1) > _ndcg10(als, ds, seed=1)


def test_hybrid_ignores_noise_content_and_equals_als():
    ds = topical_dataset(n_users=120, per_user=8, seed=1)
    ctx = fit_context(ds, encoders={"text": "text:noise", "image": "cnn:noise"}, seed=1)
    hybrid = create_recommender("hybrid", contents=["text", "image"], cf_fixed=ALS).fit(ctx)
    assert hybrid.params["weight"] == 0.0 and hybrid.params["content"] is None
    blend = hybrid.params["best_blend"]  # recorded even when it lost: within noise or below
    assert blend["over"] == "als" and blend["gain"] <= blend["standard_error"]
    label = hybrid.params["row_label"]
    assert label.startswith("Hybrid: ALS alone (no content blend: ")
    assert ("within one standard error" in label) == (blend["gain"] > 0)
    als = create_recommender("als", **ALS).fit(fit_context(ds, seed=1))
    users = np.arange(ds.n_users)
    np.testing.assert_array_equal(hybrid.score(users), als.score(users))


def test_hybrid_lists_contents_it_could_not_run(ds):
    ctx = fit_context(ds, encoders={"text": "text:fake"})
    hybrid = create_recommender("hybrid", cf_fixed=ALS).fit(ctx)
    assert "text" not in hybrid.params["skipped_contents"]
    assert "image encoder" in hybrid.params["skipped_contents"]["image"]


def test_hybrid_without_content_says_so_in_its_label_and_on_the_console(ds):
    messages: list[ProgressEvent] = []
    ctx = fit_context(ds, encoders={})
    ctx.progress = messages.append
    hybrid = create_recommender("hybrid", cf_fixed=ALS).fit(ctx)
    assert hybrid.params["weight"] == 0.0
    assert hybrid.params["row_label"] == (
        "Hybrid: ALS alone (no content blend: no content technique could run)")
    reason = hybrid.params["no_blend_reason"]
    assert "text needs a text encoder" in reason and "clip-t1 needs a clip encoder" in reason
    assert ProgressEvent("note", message=f"ALS alone, no content blend: {reason}") in messages


def test_hybrid_row_label_reaches_the_table(ds):
    from core.evaluation.experiment import run_experiment
    from core.recommenders.spec import TechniqueSpec

    row = TechniqueSpec("hybrid", {"cf_fixed": ALS}, label="hybrid")
    result = run_experiment(ds, "random", [row], ks=[5], seed=0)
    assert result.meta["labels"]["hybrid"].startswith("Hybrid: ALS alone (no content blend")
    assert result.meta["rows"]["hybrid"] == {"technique": "hybrid",
                                             "params": {"cf_fixed": dict(ALS)}}


def test_fake_encoder_spaces_differ():
    shared, separate = FakeEncoder("a", shared_space=True), FakeEncoder("b")
    assert LABEL_WORDS["food"] == "food"
    food = shared.embed_text("food")
    assert shared.embed_photo(0, "food", "x") @ food > 0.5
    assert abs(separate.embed_photo(0, "food", "x") @ food) < 0.2
