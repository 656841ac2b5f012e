"""The Embedding space page in a real browser, beyond what ``test_browser.py`` checks there (a
point of any category opens its card and the item view; a box selection shows photos):

- a first map (not cached, numba not compiled yet) is built in an open status box whose bar
  fills with the elapsed time against the estimate, and the box then says how long it took;
- with nothing selected, the *Item view* picker opens any mapped item;
- a user overlay draws the history, the recommendations and the user's star as their own traces.

Its own server on its own small demo (the fixtures are copied from ``test_browser.py``, whose
module-scoped server is not shared across files). Skips (saying why) when /usr/bin/chromium or
the playwright package is missing; never downloads a browser.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
STORED = ["popular", "als", "itemknn", "image"]

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache with a small demo whose runs are stored and no map yet."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")
    from core import lab as api
    from core.data.demo import GENERATOR_VERSION, MARKER, generate_demo

    cache = tmp_path_factory.mktemp("e2e-map-cache")
    demo = generate_demo(cache / "demo", n_businesses=40, n_users=200, n_photos=120)
    (demo / MARKER).write_text(GENERATOR_VERSION + "\n", encoding="utf-8")
    lab = api.load("demo", cache)
    api.run_comparison(lab, cache, "random", 42, STORED, dict(api.DEFAULT_ENCODERS),
                       {"tune": True})
    return cache


@pytest.fixture(scope="module")
def server(cache: Path):
    """URL of a running app on ``cache``'s demo."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MMREC_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    log = open(cache / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
         "--server.port", str(port), "--server.address", "127.0.0.1",
         "--server.headless", "true", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"streamlit did not start: {(cache / 'server.log').read_text()}")
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        yield page
        browser.close()


def _settle(page, timeout_ms: int = 240_000) -> None:
    page.wait_for_timeout(500)
    page.wait_for_selector("[data-test-script-state='notRunning']", timeout=timeout_ms)
    page.wait_for_timeout(1000)


def _no_error_box(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    assert page.locator("[data-testid='stException']").count() == 0, f"{name}: exception box"
    assert page.locator("[data-testid='stAlertContentError']").count() == 0, f"{name}: error"


def test_a_first_map_shows_its_time_bar_then_how_long_it_took(server, page):
    page.goto(f"{server}/?page=embedding")
    # the first map of this server process: numba compiles UMAP, so it takes seconds
    box = page.locator("[data-testid='stExpander']").filter(has_text="UMAP of ").first
    bar = box.locator("[data-testid='stProgress']")
    bar.first.wait_for(timeout=240_000)
    assert "a first map takes about" in box.inner_text()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "map-building.png"))
    assert " s of about " in bar.first.inner_text() or "longer than" in bar.first.inner_text()
    page.wait_for_selector("text=mapped in", timeout=240_000)
    _settle(page)
    label = page.get_by_text("mapped in").first.inner_text()
    assert "expected about" in label and "cached" in label, label
    _no_error_box(page, "map-built")


def test_the_item_picker_opens_an_item_without_a_selection(server, page):
    page.goto(f"{server}/?page=embedding")
    page.wait_for_selector("[data-testid='stPlotlyChart'] .scatterlayer .point", timeout=240_000)
    _settle(page)
    assert page.locator(".st-key-item_view").count() == 0
    picker = page.locator("[data-testid='stSelectbox']").filter(has_text="Item view")
    picker.scroll_into_view_if_needed()
    picker.click()
    option = page.get_by_role("option").nth(2)
    name, city, item_id = option.inner_text().split(" · ")
    option.click()
    _settle(page)
    view = page.locator(".st-key-item_view")
    assert view.count() == 1
    assert view.locator("h3").first.inner_text().strip() == f"{name} · {city}"
    assert item_id in view.inner_text()
    assert view.get_by_text("Nearest items in this space").first.is_visible()
    assert view.get_by_text("In the stored top-10 lists").first.is_visible()
    _no_error_box(page, "map-item-picker")


def test_a_user_overlay_draws_history_recommendations_and_star(server, page, cache):
    from core import lab as api

    lab = api.load("demo", cache)
    stored = api.run_comparison(lab, cache, "random", 42, STORED, dict(api.DEFAULT_ENCODERS),
                                {"tune": True}, compute=False)
    user = api.user_ids(stored)[0]
    page.goto(f"{server}/?page=embedding&map_user={user}")
    page.wait_for_selector("[data-testid='stPlotlyChart'] .legend", timeout=240_000)
    _settle(page)
    legend = page.locator("[data-testid='stPlotlyChart'] .legend").first.text_content()
    for role in ("history", "recommended", "user"):
        assert role in legend, legend
    _no_error_box(page, "map-overlay")
