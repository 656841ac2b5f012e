"""The embedding map's selections and the item view (engine side, on the small app demo)."""

from __future__ import annotations

import numpy as np
import pytest

from core import lab as api
from core.lab.maps import selected_rows
from tests.app.conftest import STORED


def test_selected_rows_come_from_every_trace():
    # category colouring: one trace per category, point numbers restart in each trace
    selection = [
        {"curve_number": 2, "point_number": 0, "customdata": [17]},
        {"curve_number": 0, "point_number": 0, "customdata": [3]},
        {"curve_number": 5, "point_number": 1, "customdata": [-1]},  # the user's star
        {"curve_number": 4, "point_number": 0, "customdata": [17]},  # a history ring on row 17
        {"curve_number": 1, "point_number": 3},  # no customdata
        {"curve_number": 1, "point_number": 4, "customdata": 99},  # out of range
    ]
    assert selected_rows(selection, n_points=40) == [17, 3]
    assert selected_rows(selection, n_points=40, limit=1) == [17]


@pytest.fixture(scope="module")
def mapped(demo_cache):
    lab = api.load("demo", demo_cache)
    ctx = api.fit_context(lab, api.split_of(lab, "random", 42),
                          api.provider(lab, demo_cache), dict(api.DEFAULT_ENCODERS), {}, 42)
    emap = api.embedding_map(lab, ctx, demo_cache, "cnn:efficientnet-lite0", "photos")
    cmp = api.run_comparison(lab, demo_cache, "random", 42, STORED,
                             dict(api.DEFAULT_ENCODERS), {"tune": True})
    return lab, ctx, emap, cmp


def test_item_view_shows_the_item_and_its_context(mapped):
    lab, ctx, emap, cmp = mapped
    item_id = str(emap.points["item_id"].iloc[0])
    view = api.item_view(lab, ctx, item_id, emap=emap, comparison=cmp)
    idx = lab.ds.item_index(item_id)
    assert view.name == lab.ds.items["name"].iloc[idx] and view.city
    assert len(view.photos) == int((lab.ds.photos["item"] == idx).sum()) > 0
    assert view.document == lab.ds.item_text()[idx]
    train_users = ctx.train.loc[ctx.train["item"] == idx, "user"].nunique()
    assert view.consumers == train_users and len(view.reviews) == min(5, train_users)
    assert set(view.reviews.columns) == {"user_id", "stars", "text"}
    # neighbours: the nearest items by cosine between the items' mean mapped (photo) vectors
    items = emap.points["item"].to_numpy()
    means = {i: emap.vectors[items == i].mean(0) for i in np.unique(items)}
    means = {i: v / np.linalg.norm(v) for i, v in means.items()}
    sims = {i: float(v @ means[idx]) for i, v in means.items() if i != idx}
    best = max(sims, key=sims.get)
    assert view.neighbours["item_id"].iloc[0] == lab.ds.items["item_id"].iloc[best]
    assert view.neighbours["similarity"].iloc[0] == pytest.approx(sims[best], abs=1e-3)
    assert item_id not in set(view.neighbours["item_id"])
    # recommended_by: users whose stored top 10 holds the item, per technique
    recs = cmp.recs_rows(item_id=item_id)
    for row in view.recommended_by.itertuples():
        mine = recs[(recs["technique"] == row.technique) & (recs["rank"] <= 10)]
        assert row.users == mine["user_id"].nunique()
    assert list(view.recommended_by["technique"]) == cmp.available


def test_item_view_of_an_unknown_item_is_a_clear_error(mapped):
    from core.errors import LabError

    lab, ctx, _, _ = mapped
    with pytest.raises(LabError, match="unknown item id 'nope'"):
        api.item_view(lab, ctx, "nope")


def test_overlay_points_carry_their_map_rows(mapped, demo_cache):
    lab, ctx, _, cmp = mapped
    user = api.user_ids(cmp)[0]
    recs = cmp.top_item_ids(user, "als", n=10)
    emap = api.embedding_map(lab, ctx, demo_cache, "cnn:efficientnet-lite0", "items-photo",
                             user_id=user, recommended=recs)
    marked = emap.overlay[emap.overlay["role"] != "user"]
    assert len(marked)
    rows = marked["point"].astype(int).to_numpy()
    assert (emap.points["item_id"].to_numpy()[rows] == marked["item_id"].to_numpy()).all()


def test_first_search_estimate_counts_the_catalogue(mapped):
    from core.lab.runs import ENCODE_SECONDS
    from core.lab.search import ALIGN_TRAIN_S, first_search_seconds

    lab = mapped[0]
    photos = first_search_seconds(lab, "photos", "clip:ViT-B-32/untrained")
    assert photos == pytest.approx(ENCODE_SECONDS["load"]
                                   + len(lab.ds.photos) * ENCODE_SECONDS["photo"])
    aligned = first_search_seconds(lab, "photos", "align:text:minilm+cnn:efficientnet-lite0")
    assert aligned == pytest.approx(photos + ALIGN_TRAIN_S)
    texts = first_search_seconds(lab, "text", "text:minilm")
    n_texts = len(lab.ds.interactions) + lab.ds.n_items
    assert texts == pytest.approx(ENCODE_SECONDS["load"] + n_texts * ENCODE_SECONDS["text"])
