"""End to end in a real browser: `streamlit run app.py` on a free localhost port with a small
synthetic demo in a private cache, driven by headless Chromium through Playwright.

Each page is opened, checked for visible content and for the absence of Streamlit's exception box,
and screenshotted into ``tests/e2e/artifacts/``. Skips (saying why) when /usr/bin/chromium or the
playwright package is missing; never downloads a browser.
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

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """URL of a running app on a small demo whose CF runs and photo embeddings are stored."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")
    from core import lab as api
    from core.data.demo import GENERATOR_VERSION, MARKER, generate_demo

    cache = tmp_path_factory.mktemp("e2e-cache")
    demo = generate_demo(cache / "demo", n_businesses=40, n_users=200, n_photos=120)
    (demo / MARKER).write_text(GENERATOR_VERSION + "\n", encoding="utf-8")
    lab = api.load("demo", cache)
    api.run_comparison(lab, cache, "random", 42, ["popular", "als", "itemknn", "image"],
                       dict(api.DEFAULT_ENCODERS), {"tune": True})
    port = _free_port()
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
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def _open(page, url: str, title: str, timeout_ms: int = 240_000) -> None:
    page.goto(url)
    page.wait_for_selector(f"h1:has-text('{title}')", timeout=timeout_ms)
    _settle(page, timeout_ms)


def _settle(page, timeout_ms: int = 240_000) -> None:
    page.wait_for_timeout(500)
    page.wait_for_selector("[data-test-script-state='notRunning']", timeout=timeout_ms)
    page.wait_for_timeout(1000)


def _no_error_box(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    assert page.locator("[data-testid='stException']").count() == 0, f"{name}: exception box"
    assert page.locator("[data-testid='stAlertContentError']").count() == 0, f"{name}: error"


def _at_least(page, selector: str, n: int, timeout_ms: int = 60_000) -> None:
    """Wait until ``selector`` matches at least ``n`` elements (charts and images render late)."""
    page.wait_for_function(
        "([sel, n]) => document.querySelectorAll(sel).length >= n", arg=[selector, n],
        timeout=timeout_ms)


def test_every_page_in_chromium(server, browser):
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    _open(page, server, "Compare techniques")
    assert page.get_by_text("Synthetic demo data").is_visible()
    assert page.locator("[data-testid='stDataFrame']").count() >= 1
    _at_least(page, "[data-testid='stPlotlyChart']", 2)
    assert page.get_by_text("Download metrics (CSV)").is_visible()
    _no_error_box(page, "compare")

    page.get_by_role("link", name="Inspect a user").click()
    page.wait_for_selector("h1:has-text('Inspect a user')", timeout=240_000)
    _settle(page)
    _at_least(page, "[data-testid='stImage']", 10)
    assert page.get_by_text("because you liked").first.is_visible()
    _no_error_box(page, "inspect")

    page.get_by_role("link", name="Embedding space").click()
    page.wait_for_selector("h1:has-text('Embedding space')", timeout=240_000)
    _settle(page)
    _at_least(page, "[data-testid='stPlotlyChart'] .scatterlayer .point", 30)
    _no_error_box(page, "embedding")

    page.get_by_role("link", name="Search").click()
    page.wait_for_selector("h1:has-text('Search')", timeout=240_000)
    _settle(page)
    page.get_by_label("Describe what you are looking for").fill("a bowl of ramen noodles")
    page.get_by_role("button", name="Search").click()
    page.wait_for_selector("text=results for", timeout=240_000)
    _settle(page)
    _at_least(page, "[data-testid='stImage']", 5)
    _no_error_box(page, "search")
    page.close()
