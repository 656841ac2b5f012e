"""The hybrid over the whole weight range: never below the better of its parts on validation, any
collaborative part, and w = 0 / w = 1 ranking exactly as the parts."""

from __future__ import annotations

import numpy as np
import pytest
from content_fakes import fit_context, topical_dataset

from core.errors import TechniqueUnavailable
from core.recommenders import create_recommender
from core.recommenders.hybrid import DEFAULT_WEIGHT, DEFAULT_WEIGHTS, HybridRecommender

ALS = {"factors": 32, "regularization": 1.0}  # fixed, so ALS is not searched here


@pytest.fixture(scope="module")
def sparse():
    """Few interactions per user: the topical text carries more than the interactions do."""
    return topical_dataset(n_users=120, per_user=5, seed=4)


def _validation(ctx, model) -> float:
    return float(ctx.validator.score(model))


def test_weights_cover_zero_to_one():
    assert DEFAULT_WEIGHTS[0] == 0.0 and DEFAULT_WEIGHTS[-1] == 1.0 and len(DEFAULT_WEIGHTS) == 11


@pytest.mark.parametrize("encoders", [{"text": "text:fake"},
                                      {"text": "text:noise", "image": "cnn:noise"}])
def test_never_below_the_better_part_on_validation(sparse, encoders):
    ctx = fit_context(sparse, encoders=encoders, seed=2)
    hybrid = create_recommender("hybrid", contents=list(encoders), cf_fixed=ALS).fit(ctx)
    parts = [create_recommender("als", **ALS).fit(ctx)]
    parts += [create_recommender(name).fit(ctx) for name in encoders]
    best_part = max(_validation(ctx, p) for p in parts)
    assert _validation(ctx, hybrid) >= best_part - 1e-9
    single = hybrid.params["best_single"]
    assert single["ndcg@10"] == pytest.approx(best_part, abs=1e-6)


def test_content_alone_wins_when_it_is_better(sparse):
    """Informative text beats ALS on sparse data: the hybrid is text alone (w = 1) or a blend
    beating text alone by more than a standard error on validation — not ALS-heavy."""
    ctx = fit_context(sparse, encoders={"text": "text:fake"}, seed=2)
    text = create_recommender("text").fit(ctx)
    als = create_recommender("als", **ALS).fit(ctx)
    assert _validation(ctx, text) > _validation(ctx, als)  # the premise of this test
    hybrid = create_recommender("hybrid", contents=["text"], cf_fixed=ALS).fit(ctx)
    assert hybrid.params["best_single"]["part"] == "text"
    if hybrid.params["weight"] == 1.0:
        assert hybrid.params["row_label"].startswith("Hybrid: text alone (")
        users = np.arange(sparse.n_users)
        np.testing.assert_array_equal(hybrid.score(users), text.score(users))
    else:
        blend = hybrid.params["best_blend"]
        assert blend["over"] == "text" and blend["gain"] > blend["standard_error"]


def test_noise_content_keeps_the_collaborative_part(sparse):
    ds = topical_dataset(n_users=120, per_user=8, seed=1)
    ctx = fit_context(ds, encoders={"text": "text:noise"}, seed=1)
    hybrid = create_recommender("hybrid", contents=["text"], cf_fixed=ALS).fit(ctx)
    assert hybrid.params["weight"] == 0.0 and hybrid.params["best_single"]["part"] == "als"
    assert hybrid.params["row_label"].startswith("Hybrid: ALS alone (no content blend: ")


def test_fixed_weights_at_the_ends_rank_as_the_parts(sparse):
    ctx = fit_context(sparse, encoders={"text": "text:fake"}, seed=2)
    users = np.arange(sparse.n_users)
    text = create_recommender("text").fit(ctx)
    als = create_recommender("als", **ALS).fit(ctx)
    one = create_recommender("hybrid", content="text", weight=1.0, cf_fixed=ALS).fit(ctx)
    zero = create_recommender("hybrid", content="text", weight=0.0, cf_fixed=ALS).fit(ctx)
    np.testing.assert_array_equal(one.recommend(users, n=10)[0], text.recommend(users, n=10)[0])
    np.testing.assert_array_equal(zero.recommend(users, n=10)[0], als.recommend(users, n=10)[0])
    with pytest.raises(TechniqueUnavailable, match="outside"):
        create_recommender("hybrid", content="text", weight=1.5, cf_fixed=ALS).fit(ctx)


def test_validation_table_holds_every_part_and_every_blend(sparse):
    ctx = fit_context(sparse, encoders={"text": "text:fake", "image": "cnn:fake"}, seed=2)
    hybrid = create_recommender("hybrid", contents=["text", "image"], cf_fixed=ALS).fit(ctx)
    table = hybrid.params["validation_ndcg@10"]
    assert set(table) == {"als_only", "text", "image"} and list(table["als_only"]) == ["0.0"]
    blends = [str(w) for w in DEFAULT_WEIGHTS if w > 0]
    assert list(table["text"]) == blends and list(table["image"]) == blends
    single = hybrid.params["best_single"]
    parts = {"als": table["als_only"]["0.0"], "text": table["text"]["1.0"],
             "image": table["image"]["1.0"]}
    assert single["ndcg@10"] == max(parts.values()) and parts[single["part"]] == single["ndcg@10"]
    best = hybrid.params["best_blend"]  # recorded whether or not it won
    inner = {(c, float(w)): v for c in ("text", "image") for w, v in table[c].items()
             if float(w) < 1.0}
    assert best["ndcg@10"] == max(inner.values()) == inner[(best["content"], best["weight"])]
    assert best["over"] == single["part"]
    assert best["gain"] == pytest.approx(best["ndcg@10"] - single["ndcg@10"], abs=2e-6)
    assert best["standard_error"] > 0


def test_untuned_blends_the_first_content_at_the_default_weight(sparse):
    ctx = fit_context(sparse, encoders={"text": "text:fake"}, seed=2, options={"tune": False})
    hybrid = create_recommender("hybrid", cf_fixed=ALS).fit(ctx)
    assert (hybrid.params["content"], hybrid.params["weight"]) == ("text", DEFAULT_WEIGHT)
    assert hybrid.params["row_label"] == f"Hybrid ALS + text (w={DEFAULT_WEIGHT:g})"
    assert "validation_ndcg@10" not in hybrid.params


def test_a_fixed_weight_of_one_says_so(sparse):
    ctx = fit_context(sparse, encoders={"text": "text:fake"}, seed=2)
    one = create_recommender("hybrid", content="text", weight=1, cf_fixed=ALS).fit(ctx)
    assert one.params["row_label"] == "Hybrid: text alone (no blend: the weight was fixed at 1)"


def test_any_collaborative_part(sparse):
    ctx = fit_context(sparse, encoders={"text": "text:noise"}, seed=2)
    hybrid = create_recommender("hybrid", cf="bpr", contents=["text"],
                                cf_fixed={"factors": 16, "iterations": 20}).fit(ctx)
    assert "bpr_only" in hybrid.params["validation_ndcg@10"]
    label = hybrid.params["row_label"]
    assert label.startswith(("Hybrid BPR + text (w=", "Hybrid: BPR alone (",
                             "Hybrid: text alone ("))
    fixed = create_recommender("hybrid", cf="bpr", content="text", weight=0.0,
                               cf_fixed={"factors": 16, "iterations": 20}).fit(ctx)
    assert fixed.params["row_label"] == (
        "Hybrid: BPR alone (no content blend: the weight was fixed at 0)")
    with pytest.raises(TechniqueUnavailable, match="unknown technique 'nope'"):
        create_recommender("hybrid", cf="nope").fit(ctx)


def test_bpr_as_the_collaborative_part_is_tuned_as_its_own_row_and_named():
    """Noise text and a BPR that learns: the hybrid keeps BPR, tuned as the ``bpr`` row is, and
    every label says BPR (none says ALS)."""
    ds = topical_dataset(n_users=120, per_user=8, seed=1)
    ctx = fit_context(ds, encoders={"text": "text:noise"}, seed=1)
    hybrid = create_recommender("hybrid", cf="bpr", contents=["text"]).fit(ctx)
    bpr = create_recommender("bpr").fit(ctx)
    assert hybrid.params["cf_params"]["tuning"] == bpr.params["tuning"]  # bpr's own search
    assert hybrid.params["best_single"]["part"] == "bpr" and hybrid.params["weight"] == 0.0
    assert hybrid.params["row_label"].startswith("Hybrid: BPR alone (no content blend: ")
    users = np.arange(ds.n_users)
    np.testing.assert_array_equal(hybrid.score(users), bpr.score(users))
    assert _validation(ctx, hybrid) == _validation(ctx, bpr)
    assert HybridRecommender.row_title({"cf": "bpr"}) == "Hybrid BPR + content"
    assert HybridRecommender.row_title({}) == "Hybrid ALS + content"
    assert "ALS" not in hybrid.params["row_label"]


def test_an_unknown_collaborative_part_is_the_registrys_error(sparse):
    ctx = fit_context(sparse, encoders={"text": "text:fake"}, seed=2)
    with pytest.raises(TechniqueUnavailable, match=r"unknown technique 'nope': choose from .*als"):
        create_recommender("hybrid", cf="nope", contents=["text"]).fit(ctx)
