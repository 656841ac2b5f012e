"""Views as people read and share them (issue 13): one colour per technique on every chart,
named metric columns, Inspect's one cut-off, comparable scores, the run-time estimate, a
failed dataset spec not remembered, and the view in the URL's query parameters."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from core import lab as api
from core.lab.choices import PALETTE, technique_colours
from core.recommenders import list_techniques
from tests.app.conftest import STORED


def _ok(at) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _inspect(app):
    at = app.run()
    at.switch_page("app_pages/inspect.py").run()
    _ok(at)
    return at


def _markdown(at) -> list[str]:
    return [m.value for m in at.markdown]


def _lab(root) -> tuple[api.LabData, api.Comparison]:
    """The stored runs the app fixture shows."""
    lab = api.load("demo", root)
    return lab, api.run_comparison(lab, root, "random", 42, STORED, dict(api.DEFAULT_ENCODERS),
                                   {"tune": True}, compute=False)


# --- colours ------------------------------------------------------------------------------------
def _lab_colour(hex_colour: str) -> np.ndarray:
    """CIELAB (D65) of an sRGB hex colour."""
    rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]) / 255
    rgb = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                    [0.0193, 0.1192, 0.9505]]) @ rgb / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_palette_gives_up_to_twenty_labels_distinct_stable_colours():
    names = [r["name"] for r in list_techniques()]
    others = [f"row-{i}" for i in range(20 - len(names))]
    colours = technique_colours(names + others)
    assert len(set(colours.values())) == 20  # every label its own colour
    # far apart, not look-alike pairs: at least 30 ΔE*ab between any two palette colours
    lab = {c: _lab_colour(c) for c in PALETTE}
    closest = min(np.linalg.norm(lab[a] - lab[b]) for a, b in itertools.combinations(PALETTE, 2))
    assert closest > 30, closest
    # a registered technique's colour does not depend on which others are shown
    for subset in (["als"], ["image", "als"], STORED, names[::-1]):
        assert {t: technique_colours(subset)[t] for t in subset} == \
            {t: colours[t] for t in subset}
    # the default four differ from each other
    assert len({colours[t] for t in STORED}) == 4
    # other labels: stable, and not the colour of a registered technique
    again = technique_colours(["vbpr:ablate=text", "als"])
    assert again == technique_colours(["als", "vbpr:ablate=text"])
    assert again["vbpr:ablate=text"] not in {colours[n] for n in names}
    # 20 arbitrary labels are distinct as well; beyond the palette, colours repeat
    assert len(set(technique_colours([f"x{i}" for i in range(20)]).values())) == 20
    assert len(technique_colours([f"x{i}" for i in range(25)])) == 25


def _trace_colours(chart) -> dict[str, str]:
    spec = json.loads(chart.proto.spec)
    out = {}
    for trace in spec["data"]:
        colour = (trace.get("line") or {}).get("color") or (trace.get("marker") or {}).get("color")
        out[trace["name"]] = colour
    return out


def test_one_colour_per_technique_on_compare_charts_and_inspect(app):
    at = app.run()
    _ok(at)
    want = technique_colours(STORED)
    line, bars = at.get("plotly_chart")
    assert _trace_colours(line) == want
    assert _trace_colours(bars) == want
    at.switch_page("app_pages/inspect.py").run()
    _ok(at)
    shown = at.multiselect(key="inspect_techniques").value
    for technique in shown:
        header = next(m for m in _markdown(at) if "■" in m and f"**{technique}**" in m)
        assert f"color:{want[technique]}" in header


def test_chart_axes_name_the_metric_and_k(app):
    at = app.run()
    line, bars = (json.loads(c.proto.spec) for c in at.get("plotly_chart"))
    assert line["layout"]["yaxis"]["title"]["text"] == "nDCG@k"
    assert line["layout"]["xaxis"]["tickvals"] == list(api.KS)
    assert {x for t in bars["data"] for x in t["x"]} == {"nDCG@10", "MAP@10", "Recall@10"}
    assert bars["layout"]["xaxis"]["title"]["text"] == "metric@10"
    assert bars["layout"]["yaxis"]["title"]["text"] == "value at k = 10"
    at.button_group(key="metrics").set_value(["recall"]).run()
    bars = json.loads(at.get("plotly_chart")[1].proto.spec)
    assert bars["layout"]["yaxis"]["title"]["text"] == "Recall@10"


def test_metric_picker_explains_every_metric_and_k_shows_every_option(app):
    from core.evaluation.metrics import METRIC_INFO

    at = app.run()
    picker = at.button_group(key="metrics")
    assert picker.options[:3] == ["nDCG · normalised discounted cumulative gain",
                                  "MAP · mean average precision", "Recall"]
    assert "HR · hit rate" in picker.options and "Prec · precision" in picker.options
    for info in METRIC_INFO.values():
        assert info.definition in picker.help
    assert at.radio(key="k").options == [f"@{k}" for k in api.KS]


# --- the run-time estimate ---------------------------------------------------------------------
def test_estimate_uses_stored_timings_else_a_rough_rate(demo_cache):
    lab = api.load("demo", demo_cache)
    enc = dict(api.DEFAULT_ENCODERS)
    # als is stored by the fixture; no test here computes lightgcn
    est = api.estimate_runs(lab, demo_cache, "random", 42, ["als", "lightgcn"], enc,
                            {"tune": True})
    assert set(est.timed) == {"als"} and set(est.rough) == {"lightgcn"}
    assert est.rough["lightgcn"] == pytest.approx(
        api.runs.ROUGH_SECONDS_PER_10K["lightgcn"] * len(lab.ds.interactions) / 10_000)
    assert est.encoding == {}  # no encoder in these rows
    assert est.seconds > est.timed["als"] + est.rough["lightgcn"]
    assert "earlier runs" in est.describe() and "rough rate" in est.describe()
    # an encoder no stored run on this dataset used: encoding it is part of the estimate
    other = api.estimate_runs(lab, demo_cache, "random", 42, ["text"],
                              dict(enc, text="text:minilm+bf16"), {"tune": True})
    assert list(other.encoding) == ["text:minilm+bf16"] and other.encoding["text:minilm+bf16"] > 0


def test_run_button_says_how_long_and_caption_agrees_with_the_banner(app):
    at = app.run()
    at.multiselect(key="techniques").set_value(["popular", "bpr"]).run()
    _ok(at)
    button = at.button(key="run_missing")
    assert button.help.startswith("About ") and "bpr" in button.help
    assert any(c.value.startswith(":material/schedule: About") for c in at.caption)
    button.click().run()
    _ok(at)
    assert [s.value for s in at.success] == ["Computed and stored: bpr"]
    caption = next(c.value for c in at.caption if c.value.startswith("Rows: techniques"))
    assert caption.endswith("Computed just now: bpr; reused from the cache: popular.")


# --- Inspect: one cut-off, named lists, comparable cards ---------------------------------------
def test_inspect_uses_one_cut_off_for_cards_metrics_and_headers(app):
    at = _inspect(app)
    at.selectbox(key="inspect_n").set_value(20).run()
    _ok(at)
    assert at.session_state["k"] == 10  # the Compare page's k plays no role here
    metrics = at.dataframe[0].value
    assert list(metrics.columns) and all(c.endswith("@20") for c in metrics.columns)
    assert "#### Per-user metrics @20" in _markdown(at)
    assert "#### Recommendations (top 20; ✓ = a held-out item)" in _markdown(at)
    shown = at.multiselect(key="inspect_techniques").value
    headers = [m for m in _markdown(at) if "■" in m]
    assert len(headers) == len(shown) and all("top 20 · nDCG@20" in h for h in headers)
    ranks = [m for m in _markdown(at) if m.startswith(("#20 · ", ":green-background[✓ hit] #20"))]
    assert len(ranks) == len(shown)  # 20 cards each, the 20th the last
    assert not [m for m in _markdown(at) if m.startswith("#21 · ")]
    # the per-user value in the table is the stored metric@20
    user = at.subheader[0].value.removeprefix("User ")
    _, cmp = _lab(_cache())
    rows = cmp.per_user_rows(metric="ndcg", k=20, user_id=user)
    stored = dict(zip(rows["technique"], rows["value"]))
    for technique in shown:
        assert metrics.loc[technique, "nDCG@20"] == pytest.approx(stored[technique])


def _cache():
    import os
    from pathlib import Path

    return Path(os.environ["MMREC_CACHE_DIR"])


def test_inspect_lists_name_their_metric_and_rank_wins_by_margin_then_held_out(app):
    at = _inspect(app)
    at.selectbox(key="inspect_n").set_value(5).run()
    at.radio(key="inspect_mode").set_value("Worst users for a technique").run()
    _ok(at)
    worst = at.dataframe[0].value
    assert "value" not in worst.columns and "nDCG@5" in worst.columns
    at.radio(key="inspect_mode").set_value("Where A beats B most").run()
    _ok(at)
    a, b = at.selectbox(key="inspect_a").value, at.selectbox(key="inspect_b").value
    diff = at.dataframe[0].value
    margin = f"Δ nDCG@5 ({a} − {b})"
    assert list(diff.columns[:4]) == ["user_id", margin, f"{a} nDCG@5", f"{b} nDCG@5"]
    assert "held_out" in diff.columns and (diff[margin] > 0).all()
    keys = list(zip(-diff[margin].round(12), -diff["held_out"], -diff["train"]))
    assert keys == sorted(keys)  # margin first, then more held-out items, then more history


def test_cards_show_rank_comparable_score_city_and_item_id(app):
    at = _inspect(app)
    at.multiselect(key="inspect_techniques").set_value(["popular", "als"]).run()
    _ok(at)
    captions = " ".join(c.value for c in at.caption)
    assert api.SCORE_NOTE in captions
    firsts = ("#1 · ", ":green-background[✓ hit] #1 ")
    cards = [m for m in at.markdown if m.value.startswith(firsts)]
    assert len(cards) == 2 and all("item id" in (m.help or "") for m in cards)
    assert all("raw score" in m.help for m in cards)
    scores = [c.value for c in at.caption if " · score " in c.value]
    top = [s for s in scores if s.endswith("score 1.00")]
    assert len(top) >= 2  # each technique's first pick scales to 1
    lab = api.load("demo", _cache())
    cities = set(lab.ds.items["city"])
    assert all(s.split(" · ")[1] in cities for s in scores)


# --- sidebar ------------------------------------------------------------------------------------
def test_a_dataset_spec_that_failed_is_not_remembered(app):
    at = app.run()
    at.sidebar.text_input[0].input("movielens:/nonexistent/ml")
    at.sidebar.button[0].click().run()
    assert not at.exception
    assert any("nonexistent" in e.value for e in at.error)
    assert "movielens:/nonexistent/ml" not in at.session_state["recent_specs"]
    at.sidebar.selectbox(key="dataset_spec").set_value("demo").run()
    _ok(at)
    assert at.sidebar.selectbox(key="dataset_spec").options == ["demo — synthetic Yelp-layout demo"]


# --- the view in the URL ------------------------------------------------------------------------
def test_query_params_open_the_same_view_and_follow_changes(app):
    _, cmp = _lab(_cache())
    user = api.user_ids(cmp)[7]
    app.query_params.update({"page": "inspect", "user": user, "k": "20", "n": "5",
                             "techniques": "als,popular,image", "side": "image,als"})
    at = app.run()
    _ok(at)
    assert at.title[0].value == "Inspect a user"
    assert at.subheader[0].value == f"User {user}"
    assert at.session_state["k"] == 20 and at.session_state["inspect_n"] == 5
    assert at.session_state["techniques"] == ["als", "popular", "image"]
    assert at.multiselect(key="inspect_techniques").value == ["image", "als"]
    assert at.query_params == {"page": "inspect", "user": user, "k": "20", "n": "5",
                               "techniques": "als,popular,image", "side": "image,als"}
    # a change goes back into the URL
    other = at.selectbox(key="inspect_user_id").options[3]
    at.selectbox(key="inspect_user_id").set_value(other).run()
    _ok(at)
    assert at.query_params["user"] == other
    at.switch_page("app_pages/compare.py").run()
    _ok(at)
    assert "page" not in at.query_params and at.query_params["user"] == other
    at.radio(key="k").set_value(5).run()
    assert at.query_params["k"] == "5"


def test_default_view_has_a_clean_url(app):
    at = app.run()
    _ok(at)
    assert at.query_params == {}  # every setting at its default


def test_invalid_query_params_are_ignored_with_a_note(app):
    app.query_params.update({"page": "nowhere", "k": "7", "techniques": "als,nope",
                             "seed": "-3", "dataset": "bogus:thing", "colour": "red"})
    at = app.run()
    _ok(at)
    assert at.title[0].value == "Compare techniques"
    notes = " ".join(t.value for t in at.toast)
    for bad in ("page=nowhere", "k=7", "techniques=als,nope", "seed=-3", "dataset=bogus:thing",
                "colour"):
        assert bad in notes, (bad, notes)
    assert at.session_state["k"] == 10 and at.session_state["seed"] == 42
    assert at.session_state["dataset_spec"] == "demo"
    assert at.session_state["techniques"] == STORED
    assert at.query_params == {}  # what was ignored is not written back


def test_a_linked_user_without_held_out_items_is_a_note_not_an_error(app):
    app.query_params.update({"page": "inspect", "user": "no-such-user"})
    at = app.run()
    _ok(at)
    assert any("no-such-user" in w.value for w in at.warning)
    assert at.subheader[0].value.startswith("User ")


def test_user_view_scores_are_scaled_per_technique_and_items_carry_their_city(demo_cache):
    lab, cmp = _lab(demo_cache)
    split = api.split_of(lab, "random", 42)
    user = api.user_ids(cmp)[0]
    view = api.user_view(lab, split, cmp, user, ["popular", "als"], n=10)
    assert view.k == 10 and all(c.endswith("@10") for c in view.metrics.columns)
    for technique, recs in view.recs.items():
        scaled = recs["score_scaled"].to_numpy()
        assert scaled[0] == 1.0 and (np.diff(scaled) <= 1e-12).all()  # rank order kept
        assert ((0 <= scaled) & (scaled <= 1)).all()
        if technique == "popular":  # raw scores are train-user counts: not on ALS's scale
            assert recs["score"].iloc[0] > 1
        cities = lab.ds.items.set_index("item_id").loc[recs["item_id"], "city"].tolist()
        assert recs["city"].tolist() == cities
    assert "city" in view.history.columns and "city" in view.held_out.columns


def test_user_view_reads_only_the_reviews_asked_for(demo_cache):
    lab, cmp = _lab(demo_cache)
    split = api.split_of(lab, "random", 42)
    users = api.user_ids(cmp)
    counts = split.train["user"].value_counts()
    user = max(users, key=lambda u: counts.get(lab.ds.user_index(u), 0))  # the longest history
    full = api.user_view(lab, split, cmp, user, ["popular", "als"], n=10)
    some = api.user_view(lab, split, cmp, user, ["popular", "als"], n=10, reviews=3)
    assert len(full.history) > 3 and full.history["review"].str.len().gt(0).sum() > 3
    assert some.history["review"].tolist() == (full.history["review"].head(3).tolist()
                                               + [""] * (len(full.history) - 3))
    assert some.history.drop(columns="review").equals(full.history.drop(columns="review"))
    for technique in full.recs:
        assert some.recs[technique].equals(full.recs[technique])
    assert some.metrics.equals(full.metrics) and some.held_out.equals(full.held_out)
