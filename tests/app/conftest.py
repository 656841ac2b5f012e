"""A small synthetic demo in a private cache directory, shared by the app tests.

The demo is written where ``demo`` resolves (``$MMREC_CACHE_DIR/demo``, with the generator's
completion marker), so the app loads it exactly as it loads the full demo. Runs of a few techniques
are stored once through the facade, so page tests reload them as the app would.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app.py"
#: Techniques stored by the fixture: three collaborative ones and one content technique.
STORED = ["popular", "als", "itemknn", "image"]


@pytest.fixture(scope="session")
def demo_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Cache dir holding a 40-restaurant / 200-user / 120-photo demo, set as ``MMREC_CACHE_DIR``
    for the session, with stored runs of ``STORED`` on the app's default settings."""
    from core import lab as api
    from core.data.demo import GENERATOR_VERSION, MARKER, generate_demo

    root = tmp_path_factory.mktemp("app-cache")
    demo = generate_demo(root / "demo", n_businesses=40, n_users=200, n_photos=120)
    (demo / MARKER).write_text(GENERATOR_VERSION + "\n", encoding="utf-8")
    old = os.environ.get("MMREC_CACHE_DIR")
    os.environ["MMREC_CACHE_DIR"] = str(root)
    lab = api.load("demo", root)
    result = api.run_comparison(lab, root, "random", 42, STORED, dict(api.DEFAULT_ENCODERS),
                                {"tune": True})
    assert result.computed == STORED, result.skipped
    yield root
    if old is None:
        os.environ.pop("MMREC_CACHE_DIR", None)
    else:
        os.environ["MMREC_CACHE_DIR"] = old


@pytest.fixture()
def app(demo_cache: Path):
    """A fresh ``AppTest`` of ``app.py`` (not yet run) comparing the stored techniques."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=180)
    at.session_state["techniques"] = list(STORED)
    return at
