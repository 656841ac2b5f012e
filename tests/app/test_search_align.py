"""The CLIP role's default and the Search page with the ``align:`` space (issue 10, point 5):
the picker defaults to a real CLIP whose weights are here, else to the space aligned on the
dataset (whether weights are here is faked both ways, so the tests do not depend on this
machine's hub cache); the Search page searches photos in a trained shared space and item texts
with an untrained CLIP, whose warning offers a one-click switch to the aligned space; training
progress is drawn from ``train`` events; ``python -m core search`` prints the same search."""

from __future__ import annotations

from pathlib import Path

import pytest

import core.encoders
from core import lab as api
from core.__main__ import main
from core.errors import TechniqueUnavailable
from core.lab import choices
from core.lab.choices import DEFAULT_ALIGN
from core.lab.search import default_search_mode, mode_label

UNTRAINED = "clip:ViT-B-32/untrained"


def _ok(at) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


@pytest.fixture()
def weights_here(monkeypatch: pytest.MonkeyPatch):
    """``set(bool)``: fake whether CLIP weights are on this machine (the sidebar's cached encoder
    list is cleared before and after, so no other test sees the fake)."""
    from app_pages import _ui as ui

    def set_(here: bool) -> None:
        monkeypatch.setattr(core.encoders, "clip_weights_here", lambda spec: here)
        ui.encoder_choices.clear()

    yield set_
    ui.encoder_choices.clear()


# --- the engine's choices -----------------------------------------------------------------------
def test_default_clip_is_align_without_weights_and_real_clip_with_them(weights_here):
    weights_here(False)
    rows = choices.encoder_choices()["clip"]
    assert choices.default_encoders()["clip"] == DEFAULT_ALIGN == rows[0]["spec"]
    assert "aligned on this dataset" in rows[0]["label"]
    untrained = [r for r in rows if r["spec"] == UNTRAINED]
    assert untrained and "untrained: random weights" in untrained[0]["label"]
    weights_here(True)
    rows = choices.encoder_choices()["clip"]
    default = choices.default_encoders()["clip"]
    assert default == rows[0]["spec"] and default.startswith("clip:") and rows[0]["available"]
    assert "untrained" not in default and "<" not in default
    assert DEFAULT_ALIGN in [r["spec"] for r in rows]  # still offered


def test_trained_shared_space(weights_here):
    weights_here(False)
    assert choices.trained_shared_space(DEFAULT_ALIGN)
    assert not choices.trained_shared_space(UNTRAINED)
    assert not choices.trained_shared_space("clip:ViT-B-32/openai")  # weights not here
    assert not choices.trained_shared_space("text:minilm")
    assert not choices.trained_shared_space(None)
    weights_here(True)
    assert choices.trained_shared_space("clip:ViT-B-32/openai")
    assert not choices.trained_shared_space(UNTRAINED)


def test_default_search_mode_and_labels(demo_cache: Path):
    lab = api.load("demo", demo_cache)
    aligned = {"clip": DEFAULT_ALIGN, "text": "text:minilm"}
    assert default_search_mode(lab, aligned) == "photos"
    assert default_search_mode(lab, {"clip": UNTRAINED, "text": "text:minilm"}) == "text"
    assert default_search_mode(lab, {"clip": UNTRAINED, "text": None}) == "photos"
    assert mode_label("photos", aligned) == "Shared space: text → photos"
    assert "CLIP" not in mode_label("shared-text", aligned)
    assert mode_label("photos", {"clip": UNTRAINED}).startswith("CLIP")
    with pytest.raises(TechniqueUnavailable, match="CLIP"):
        default_search_mode(lab, {"clip": None, "text": None})


# --- the app ------------------------------------------------------------------------------------
def test_clip_picker_defaults_to_align_when_no_clip_weights_are_here(app, weights_here):
    weights_here(False)
    at = app.run()
    _ok(at)
    picker = at.sidebar.selectbox(key="enc_clip")
    assert picker.value == DEFAULT_ALIGN
    labels = picker.options  # AppTest lists the options as they read (format_func)
    assert labels[0].startswith(f"{DEFAULT_ALIGN} — aligned on this dataset")
    assert f"{UNTRAINED} (untrained: random weights)" in labels  # still offered, labelled


def test_clip_picker_defaults_to_a_real_clip_when_its_weights_are_here(app, weights_here):
    weights_here(True)
    at = app.run()
    _ok(at)
    value = at.sidebar.selectbox(key="enc_clip").value
    assert value.startswith("clip:") and "untrained" not in value


def test_search_defaults_to_photos_in_the_aligned_space_and_finds_the_dish(app, weights_here,
                                                                           demo_cache: Path):
    weights_here(False)
    at = app.run()
    at.switch_page("app_pages/search.py").run()
    _ok(at)
    mode = at.selectbox(key="search_mode")
    assert mode.value == "photos"
    assert "Shared space: text → photos" in mode.options
    assert not any("CLIP" in o for o in mode.options if o.startswith("Shared"))
    assert not at.warning
    lab = api.load("demo", demo_cache)
    trained_before = core.encoders.create_encoder(
        DEFAULT_ALIGN, dataset=lab.ds, cache_root=demo_cache).stored_heads() is not None
    at.text_input(key="search_query").input("pizza")
    at.button[0].click().run()  # the form's Search button (trains the heads on first use)
    _ok(at)
    if not trained_before:  # training was drawn in a status box, which now shows the recall
        assert [s.label.startswith(f"{DEFAULT_ALIGN} — aligned on this dataset (t→i R@10")
                for s in at.status] == [True], [s.label for s in at.status]
    assert any("Shared space: text → photos" in m.value for m in at.markdown)
    cards = [c.value for c in at.caption if "score" in c.value]  # "category · score 0.612"
    assert len(cards) == 10
    # 5 of the small demo's 39 items with photos are Italian or Pizza (chance: 0.6 of 5)
    assert sum(c.split(" · ")[0] in ("Italian", "Pizza") for c in cards[:5]) >= 3, cards
    # the heads are stored now: the picker shows their held-out recall
    at.run()
    picker = at.sidebar.selectbox(key="enc_clip")
    assert any(o.startswith(DEFAULT_ALIGN) and "t→i R@10" in o for o in picker.options)


def test_untrained_clip_searches_text_and_one_click_switches_to_align(app, weights_here):
    weights_here(False)
    app.session_state["enc_clip"] = UNTRAINED
    at = app.run()
    at.switch_page("app_pages/search.py").run()
    _ok(at)
    assert at.sidebar.selectbox(key="enc_clip").value == UNTRAINED
    assert at.selectbox(key="search_mode").value == "text"
    assert any("random weights" in w.value for w in at.warning)
    at.button(key="use_aligned").click().run()
    _ok(at)
    assert at.sidebar.selectbox(key="enc_clip").value == DEFAULT_ALIGN
    assert at.selectbox(key="search_mode").value == "photos"
    assert not at.warning


def _train_progress_script():
    """``ui.progress_box`` fed ``train`` events as an ``align:`` space emits them."""
    import streamlit as st

    from app_pages import _ui as ui
    from core.progress import ProgressEvent

    job = "aligning text:minilm + cnn:efficientnet-lite0 (180 pairs)"
    with ui.progress_box("Aligning …", lambda: "aligned") as progress:
        progress(ProgressEvent("embed", done=0, total=4, message="text:minilm texts"))
        progress(ProgressEvent("embed", done=4, total=4, message="text:minilm texts"))
        for epoch in (0, 60, 120):
            progress(ProgressEvent("train", done=epoch, total=120, message=job))
        progress(ProgressEvent("note", message="aligned space abc: held-out t→i R@10 0.7"))
    with ui.progress_box("Nothing to report …", lambda: "never shown"):
        pass
    st.session_state["ran"] = True


def test_training_progress_is_drawn_like_other_counted_phases(demo_cache):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_train_progress_script, default_timeout=30).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["ran"]
    assert [s.label for s in at.status] == ["aligned"]  # a box only where events came
    bars = at.get("progress")
    assert len(bars) == 1  # one bar per job at hand, redrawn in place
    assert bars[0].proto.value == 100
    assert "aligning text:minilm + cnn:efficientnet-lite0 (180 pairs) 120/120" in bars[0].proto.text
    assert "aligned space abc: held-out t→i R@10 0.7" in [m.value for m in at.markdown]


# --- the CLI ------------------------------------------------------------------------------------
def test_cli_search_prints_the_aligned_photo_search(demo_cache: Path, weights_here, capsys):
    weights_here(False)
    argv = ["search", "--dataset", "demo", "tacos", "-n", "5", "--cache-dir", str(demo_cache)]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (f"5 results for 'tacos' — Shared space: text → photos with "
                      f"{DEFAULT_ALIGN}")
    assert out[1].split() == ["rank", "item_id", "name", "category", "score", "caption"]
    rows = out[2:]
    assert [r.split()[0] for r in rows] == ["1", "2", "3", "4", "5"]
    lab = api.load("demo", demo_cache)
    categories = dict(zip(lab.ds.items["item_id"].astype(str), lab.ds.items["categories"]))
    ids = [r.split()[1] for r in rows]
    assert sum("Mexican" in categories[i] or "Tacos" in categories[i] for i in ids) >= 3, out


def test_cli_search_reports_engine_errors_in_one_line(demo_cache: Path, capsys):
    base = ["search", "--dataset", "demo", "--cache-dir", str(demo_cache)]
    assert main(base + ["   "]) == 2
    assert "type a few words" in capsys.readouterr().err
    assert main(base + ["tacos", "--encoder", "clip:nope/none", "--mode", "photos"]) == 2
    assert capsys.readouterr().err.startswith("error: ")


@pytest.mark.slow
def test_cli_search_shared_space_over_item_texts(demo_cache: Path, weights_here, capsys):
    weights_here(False)
    argv = ["search", "--dataset", "demo", "ramen", "--mode", "shared-text", "-n", "3",
            "--cache-dir", str(demo_cache)]
    assert main(argv) == 0  # item texts: the mean of train reviews, in the aligned space
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"3 results for 'ramen' — Shared space: text → item text with {DEFAULT_ALIGN}"
    assert len(out) == 5
