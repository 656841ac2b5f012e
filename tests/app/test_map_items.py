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


# --- the page: a click in any trace, the item view, the first map's time ----------------------
def _chart_spec(at) -> dict:
    import json

    charts = at.get("plotly_chart")
    assert len(charts) == 1
    return json.loads(charts[0].proto.spec)


def _values(values) -> list:
    """A plotly trace array (plain list, or numpy's base64 form ``{dtype, bdata, shape}``)."""
    if isinstance(values, dict) and "bdata" in values:
        import base64

        flat = np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
        shape = [int(s) for s in str(values.get("shape", len(flat))).split(",")]
        return flat.reshape(shape).tolist()
    return list(values or [])


def _select(at, points: list[dict]):
    """Run ``at`` as if the browser had selected ``points`` on the map: AppTest has no plotly
    interaction, so the chart's widget state (the JSON its frontend sends) is added to the other
    widgets' states by hand."""
    import json

    from streamlit.proto.WidgetStates_pb2 import WidgetState

    chart = at.get("plotly_chart")[0]
    states = at._tree.get_widget_states()
    state = WidgetState(id=chart.proto.id)
    state.string_value = json.dumps({"selection": {
        "points": points, "point_indices": [p["point_index"] for p in points],
        "box": [], "lasso": []}})
    states.widgets.append(state)
    return at._tree._runner._run(states, timeout=None)


def _ok(at) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_a_click_on_a_later_category_trace_opens_that_item(app, demo_cache):
    lab = api.load("demo", demo_cache)
    at = app.run()
    at.switch_page("app_pages/embedding.py").run()
    _ok(at)
    traces = _chart_spec(at)["data"]
    assert len(traces) >= 3  # colour by category: one trace per category
    trace = traces[2]
    row = int(_values(trace["customdata"])[0])  # one row number per point
    at = _select(at, [{"curve_number": 2, "point_number": 0, "point_index": 0,
                       "x": _values(trace["x"])[0], "y": _values(trace["y"])[0],
                       "customdata": row}])
    _ok(at)
    assert any(m.value.startswith("#### Selected: 1 point") for m in at.markdown)
    item_id = at.selectbox(key="map_item").value
    idx = lab.ds.item_index(item_id)
    assert lab.category[idx] == trace["name"]  # the item of that trace, not of trace 0
    name = lab.ds.items["name"].iloc[idx]
    assert any(m.value.startswith(f"### {name}") for m in at.markdown)
    assert any(f"item id `{item_id}`" in c.value for c in at.caption)


def test_an_item_chosen_without_a_selection_opens_its_view(app, demo_cache):
    lab = api.load("demo", demo_cache)
    with_photos = lab.ds.photos["item"].unique()
    item_id = str(lab.ds.items["item_id"].iloc[int(with_photos[3])])
    at = app.run()
    at.switch_page("app_pages/embedding.py").run()
    _ok(at)
    picker = at.selectbox(key="map_item")
    assert picker.value == "(none)" and any(o.endswith(item_id) for o in picker.options)
    assert not any(m.value.startswith("### ") for m in at.markdown)  # no item view yet
    picker.set_value(item_id).run()
    _ok(at)
    row = lab.ds.items.iloc[lab.ds.item_index(item_id)]
    assert any(m.value == f"### {row['name']} · {row['city']}" for m in at.markdown)
    texts = [m.value for m in at.markdown]
    assert any(t.startswith("**Document**") for t in texts)
    assert any(t.startswith("**Consumed in train by") for t in texts)
    assert any(t.startswith("**Nearest items in this space**") for t in texts)
    assert any(t.startswith("**In the stored top-10 lists**") for t in texts)
    # reviews with stars, the per-technique counts of the stored runs
    frames = [d.value for d in at.dataframe]
    assert any({"user_id", "stars", "text"} <= set(f.columns) for f in frames)
    counts = next(f for f in frames if "technique" in f.columns)
    assert list(counts["technique"]) == STORED


def test_map_estimate_uses_recorded_rates(tmp_path):
    from core.projection import (
        UMAP_BASE_S,
        UMAP_COMPILE_S,
        UMAP_POINTS_PER_S,
        estimate_map,
        project_cached,
    )
    from core.projection.store import ProjectionStore

    default = estimate_map(1000, tmp_path, first_in_process=False)
    assert default.recorded == 0 and default.points_per_s == UMAP_POINTS_PER_S
    assert default.seconds == pytest.approx(UMAP_BASE_S + 1000 / UMAP_POINTS_PER_S)
    cold = estimate_map(1000, tmp_path, first_in_process=True)
    assert cold.seconds == pytest.approx(default.seconds + UMAP_COMPILE_S)
    assert "compile" in cold.describe() and "default rate" in cold.describe()
    # three maps recorded: 1,000 points in 1+2 s, 2,000 in 1+2 s, 500 (cold) in 1+13+5 s
    store = ProjectionStore(tmp_path / "projections.duckdb")
    for key, n, seconds, first in [("a", 1000, UMAP_BASE_S + 2, False),
                                   ("b", 2000, UMAP_BASE_S + 2, False),
                                   ("c", 500, UMAP_BASE_S + UMAP_COMPILE_S + 5, True)]:
        store.put(key, np.zeros((n, 2), np.float32),
                  {"timing": {"seconds": seconds, "cold": first}})
    est = estimate_map(3000, tmp_path, first_in_process=False)
    # rates 500, 1,000 and 100 points/s: the median is 500
    assert est.recorded == 3 and est.points_per_s == pytest.approx(500.0)
    assert est.seconds == pytest.approx(UMAP_BASE_S + 3000 / 500)
    assert "median of the last 3 maps" in est.describe()
    # a computed map records its time (a tiny one, laid out without UMAP)
    project_cached(np.eye(3, dtype=np.float32), {"what": "tiny"}, tmp_path)
    assert store.timings()[0][0] == 3 and store.timings()[0][1] >= 0


def test_a_first_map_says_how_long_it_took_and_records_it(app, demo_cache):
    from core.projection.store import ProjectionStore

    store = ProjectionStore(demo_cache / "projections.duckdb")
    before = len(store.timings(1000))
    app.session_state["seed"] = 11  # UMAP's seed is part of the map's key: not cached yet
    at = app.run()
    at.switch_page("app_pages/embedding.py").run()
    _ok(at)
    label = next(s.label for s in at.status if "points" in s.label)
    assert "mapped in" in label and "expected about" in label and "cached" in label, label
    assert len(store.timings(1000)) == before + 1
    at.run()  # the same map again: from the cache
    assert any("from the cache" in s.label for s in at.status)
