"""The Embedding page on a dataset's own item features (an ``mmrec:`` folder): the sidebar offers
``features:text`` exactly when the loaded dataset carries them, and a map of more than 1,000
points is drawn as WebGL traces whose points carry their row, including as a landmark map."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest

from tests.app.conftest import APP

N_ITEMS = 1200  # above the 1,000 points where the map switches to WebGL


def _write_mmrec(folder: Path) -> Path:
    """1,200 items in 4 feature clusters, 300 users of 8 items each (last two held out)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    cluster = np.arange(N_ITEMS) % 4
    feats = np.eye(8, dtype=np.float32)[cluster] * 4 + rng.normal(scale=0.3, size=(N_ITEMS, 8))
    np.save(folder / "text_feat.npy", feats.astype(np.float32))
    lines = ["userID\titemID\tx_label"]
    for u in range(300):
        items = [(4 * u + j) % N_ITEMS for j in range(4)] + list(
            rng.choice(np.flatnonzero(cluster == u % 4), 4, replace=False))
        for j, it in enumerate(dict.fromkeys(int(i) for i in items)):
            lines.append(f"{u}\t{it}\t{0 if j < 5 else 1 if j == 5 else 2}")
    (folder / "items.inter").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def features_spec(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"mmrec:{_write_mmrec(tmp_path_factory.mktemp('mmrec') / 'items')}"


def _values(values) -> np.ndarray:
    if isinstance(values, dict) and "bdata" in values:
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
    return np.asarray(values)


def _run_map(spec: str):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=300)
    at.session_state["dataset_spec"] = spec
    at.run()
    assert not at.exception, at.exception
    picker = at.sidebar.selectbox(key="enc_text")
    assert "features:text" in picker.options
    picker.set_value("features:text").run()
    at.session_state["map_role"], at.session_state["map_what"] = "text", "items-text"
    at.switch_page("app_pages/embedding.py").run()
    assert not at.exception, at.exception
    return at


def _traces(at) -> list[dict]:
    import json

    charts = at.get("plotly_chart")
    assert len(charts) == 1
    return json.loads(charts[0].proto.spec)["data"]


def test_features_are_offered_only_where_the_dataset_has_them(app):
    at = app.run()  # the demo: reviews and photos, no item features
    assert not at.exception, at.exception
    assert "features:text" not in at.sidebar.selectbox(key="enc_text").options


def test_a_map_of_the_datasets_features_is_drawn_in_webgl_with_each_points_row(
        demo_cache, features_spec):
    at = _run_map(features_spec)
    traces = [t for t in _traces(at) if t["type"] == "scattergl"]
    rows = np.concatenate([_values(t["customdata"]) for t in traces])
    assert sorted(rows.tolist()) == list(range(N_ITEMS))  # every item once, by its row
    assert not any("landmarks" in c.value for c in at.caption)


def test_a_landmark_map_says_so(demo_cache, features_spec, monkeypatch):
    import core.projection as projection

    monkeypatch.setattr(projection, "LANDMARKS", 400)
    at = _run_map(features_spec)
    assert sum(len(_values(t["customdata"])) for t in _traces(at)) == N_ITEMS
    assert any("seeded sample of 400 (landmarks)" in c.value for c in at.caption)
