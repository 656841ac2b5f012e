"""Every page through Streamlit's AppTest on the small demo: no exception, the key elements
present (table rows, photos, plots), and the main interactions (change technique, run a missing
technique on demand, pick a user, run a search) working."""

from __future__ import annotations

import json

import pytest

from core.lab import choices as api
from tests.app.conftest import STORED


def _ok(at) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _images(at) -> int:
    return len(at.get("image"))


def _n(values) -> int:
    """Length of a plotly trace array (plain list, or numpy's base64 form ``{dtype, bdata}``)."""
    if isinstance(values, dict) and "bdata" in values:
        import base64

        import numpy as np

        return len(np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]))
    return len(values or [])


def _table_index(at, n: int = 0) -> list[str]:
    return [str(i) for i in at.dataframe[n].value.index]


def test_frame_sidebar_shows_counts_encoders_and_synthetic_label(app):
    at = app.run()
    _ok(at)
    counts = {m.label: m.value for m in at.sidebar.metric}
    assert counts == {"Users": "200", "Items": "40", "Interactions": counts["Interactions"],
                      "Photos": "120"}
    assert int(counts["Interactions"].replace(",", "")) > 1000
    assert any("Synthetic demo" in c.value for c in at.sidebar.caption)
    assert at.sidebar.selectbox(key="enc_text").value == "text:minilm"
    assert at.sidebar.selectbox(key="enc_image").value == "cnn:efficientnet-lite0"
    # a real CLIP whose weights are here, else the align: space (tests/app/test_search_align.py
    # fakes both cases)
    assert at.sidebar.selectbox(key="enc_clip").value == api.default_encoders()["clip"]
    # unavailable encoders are listed with their reason, not silently dropped
    expanders = [e.label for e in at.sidebar.expander]
    assert any(label.startswith("Unavailable encoders") for label in expanders)


def test_compare_table_charts_and_download(app):
    at = app.run()
    _ok(at)
    assert at.title[0].value == "Compare techniques"
    assert _table_index(at) == STORED
    table = at.dataframe[0].value
    assert {"nDCG@10", "MAP@10", "Recall@10"} <= set(table.columns)
    ci = [c for c in table.columns if c.startswith("Δ nDCG@10 vs popular")]
    assert ci and table.loc["popular", ci[0]] == "baseline"
    assert table.loc["als", "nDCG@10"] > table.loc["popular", "nDCG@10"]
    assert len(at.get("plotly_chart")) == 2
    assert len(at.get("download_button")) == 1
    assert not at.warning  # everything was stored: nothing to run


def test_compare_change_technique_and_k(app):
    at = app.run()
    at.multiselect(key="techniques").set_value(["als", "popular"]).run()
    _ok(at)
    assert _table_index(at) == ["als", "popular"]
    at.radio(key="k").set_value(20).run()
    _ok(at)
    assert "nDCG@20" in at.dataframe[0].value.columns


def test_compare_runs_a_missing_technique_on_demand_and_stores_it(app):
    at = app.run()
    at.multiselect(key="techniques").set_value(["popular", "random"]).run()
    _ok(at)
    assert any("random" in w.value for w in at.warning)
    at.button(key="run_missing").click().run()
    _ok(at)
    assert _table_index(at) == ["popular", "random"]
    assert not at.warning
    # a fresh session reloads it from runs.duckdb: no warning, same table
    from streamlit.testing.v1 import AppTest

    again = AppTest.from_file(str(app._script_path), default_timeout=60)
    again.session_state["techniques"] = ["popular", "random"]
    again.run()
    _ok(again)
    assert not again.warning and _table_index(again) == ["popular", "random"]


def test_inspect_user_by_id_shows_history_recs_and_because(app):
    at = app.run()
    at.switch_page("app_pages/inspect.py").run()
    _ok(at)
    at.multiselect(key="inspect_techniques").set_value(["als", "image"]).run()
    _ok(at)
    assert _table_index(at) == ["als", "image"]  # per-user metrics, one row per technique
    assert _images(at) >= 10  # photo cards: recommendations, history, held-out items
    markdown = " ".join(m.value for m in at.markdown)
    assert "Train history" in markdown and "Held out" in markdown
    captions = " ".join(c.value for c in at.caption)
    assert "because you liked" in captions  # the content technique explains its picks
    first = at.selectbox(key="inspect_user_id").value
    users = at.selectbox(key="inspect_user_id").options
    at.selectbox(key="inspect_user_id").set_value(users[1]).run()
    _ok(at)
    assert at.subheader[0].value == f"User {users[1]}" != f"User {first}"


def test_inspect_worst_users_and_a_beats_b(app):
    at = app.run()
    at.switch_page("app_pages/inspect.py").run()
    at.radio(key="inspect_mode").set_value("Worst users for a technique").run()
    _ok(at)
    worst = at.dataframe[0].value
    assert len(worst) == 20 and list(worst["nDCG@10"]) == sorted(worst["nDCG@10"])
    chosen = at.selectbox(key="inspect_user_worst").value
    assert at.subheader[0].value == f"User {chosen}"
    at.radio(key="inspect_mode").set_value("Where A beats B most").run()
    _ok(at)
    diff = at.dataframe[0].value
    margin = next(c for c in diff.columns if c.startswith("Δ nDCG@10"))
    assert list(diff[margin]) == sorted(diff[margin], reverse=True) and (diff[margin] > 0).all()


def test_embedding_map_with_user_overlay(app, demo_cache):
    from core import lab as api

    with_photos = api.load("demo", demo_cache).ds.photos["item"].nunique()
    at = app.run()
    at.switch_page("app_pages/embedding.py").run()
    _ok(at)
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    spec = json.loads(charts[0].proto.spec)
    n_points = sum(_n(t.get("x")) for t in spec["data"])
    assert n_points == with_photos  # one point per item with photos
    user = at.selectbox(key="map_user").options[1]
    at.selectbox(key="map_user").set_value(user).run()
    _ok(at)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    names = {t.get("name") for t in spec["data"]}
    assert {"user", "history", "recommended"} <= names


@pytest.mark.slow
def test_search_text_to_text_finds_matching_cuisine(app):
    at = app.run()
    at.switch_page("app_pages/search.py").run()
    _ok(at)
    at.selectbox(key="search_mode").set_value("text")
    at.text_input(key="search_query").input("pizza margherita with a crispy crust")
    at.button[0].click().run()
    _ok(at)
    assert _images(at) + len([m for m in at.markdown if "no photo" in m.value]) >= 10
    cards = [c.value for c in at.caption if "score" in c.value]  # "category · score 0.612"
    assert len(cards) == 10
    assert all(c.split(" · ")[0] in ("Italian", "Pizza") for c in cards[:3]), cards[:3]


def test_engine_error_shows_message_not_traceback(app):
    at = app.run()
    at.sidebar.text_input[0].input("movielens:/nonexistent/ml")
    at.sidebar.button[0].click().run()  # the "Load" button of the dataset form
    assert at.sidebar.selectbox(key="dataset_spec").value == "movielens:/nonexistent/ml"
    assert not at.exception
    messages = [e.value for e in at.error]
    assert messages and all("Traceback" not in m for m in messages)
    assert any("nonexistent" in m for m in messages)


def _status_script():
    """``run_with_status`` on a fake engine that emits a scripted sequence of events."""
    import streamlit as st

    from app_pages import _ui as ui
    from core import lab as api
    from core.progress import ProgressEvent

    events = [
        ProgressEvent("audit", message="protocol audit: 3 pairs split apart", warning=True),
        ProgressEvent("fit", "als", message="fitting"),
        ProgressEvent("tune", "als", 0, 2, "tuning als"),
        ProgressEvent("tune", "als", message="als trial {'factors': 50}: validation 0.1"),
        ProgressEvent("tune", "als", 2, 2, "tuning als"),
        ProgressEvent("done", "als", message="fit 0.1s, evaluation 0.0s"),
        ProgressEvent("skipped", "image", message="image needs photos"),
    ]

    def run_comparison(*args, progress=None, **kwargs):
        for event in events:
            progress(event)
        return api.Comparison(techniques=["als", "image"], metrics=None, truth=None, store=None,
                              keys={}, split_key="", computed=["als"],
                              skipped={"image": "image needs photos"})

    # AppTest runs this script in the test process: put the engine back afterwards
    saved = api.run_comparison
    api.run_comparison = run_comparison
    try:
        cfg = ui.Settings(spec="demo", cache_root=ui.cache_root(), split="random", seed=1,
                          encoders={}, options={})
        result = ui.run_with_status(None, cfg, ["als", "image"], ["als", "image"])
    finally:
        api.run_comparison = saved
    st.session_state["computed"] = result.computed


def test_run_status_is_drawn_from_events(demo_cache):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_status_script, default_timeout=30).run()
    assert not at.exception, [e.value for e in at.exception]
    assert [w.value for w in at.warning] == ["protocol audit: 3 pairs split apart"]
    assert at.session_state["run_warnings"] == ["protocol audit: 3 pairs split apart"]
    lines = [m.value for m in at.markdown]
    assert "als: fitting" in lines and "image: skipped: image needs photos" in lines
    assert "als: als trial {'factors': 50}: validation 0.1" in lines
    assert at.session_state["computed"] == ["als"]
    assert at.status[0].label.startswith("Computed als; stored in runs.duckdb (see the warning)")
