"""First page load of a new app server on the demo with stored runs: time to a visible heading.

Target (issue 12): the first page of a new app server shows its heading within 3 s.

    python -m bench.first_load [--cache-dir DIR] [--no-browser]

The default techniques' runs (popular, als, itemknn, image) are computed first if missing (timed
apart), as ``bench.app_speed`` does. Then a fresh server, as ``make app`` starts it (``python
-m app_pages``: ``streamlit run app.py`` with the pages' modules imported before it listens),
starts on a free localhost port and headless Chromium (``/usr/bin/chromium`` through Playwright,
launched before the server so its start is not counted; the server's start, spawn to open port,
is printed apart) opens the Compare page: the time from the request to the
visible ``Compare techniques`` heading, and to the script finishing, for the server's first session
and for a second one. Without Chromium or Playwright (or with ``--no-browser``) only the AppTest
measure runs: a fresh interpreter importing Streamlit and running ``app.py`` once. Both say
whether the process imported torch (the server: ``libtorch`` in ``/proc/<pid>/maps``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench._app import BROWSER_ARGS, CHROMIUM, ROOT, app_server

TECHNIQUES = ["popular", "als", "itemknn", "image"]
HEADING = "Compare techniques"
TARGET_S = 3.0
_APPTEST = f"""
import json, sys, time
t0 = time.perf_counter()
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({str(ROOT / "app.py")!r}, default_timeout=600)
t1 = time.perf_counter()
at.run()
t2 = time.perf_counter()
assert not at.exception, at.exception
assert any(t.value == {HEADING!r} for t in at.title), [t.value for t in at.title]
print(json.dumps({{"import": t1 - t0, "run": t2 - t1, "torch": "torch" in sys.modules}}))
"""


def _torch_mapped(pid: int) -> bool | None:
    """Whether process ``pid`` has libtorch loaded (None where /proc cannot say)."""
    try:
        return "libtorch" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return None


def _prepare(root: Path) -> None:
    from core import lab as api

    t0 = time.perf_counter()
    lab = api.load("demo", root)
    cmp = api.run_comparison(lab, root, "random", 42, TECHNIQUES, dict(api.DEFAULT_ENCODERS),
                             {"tune": True})
    print(f"preparation: demo loaded, runs computed {cmp.computed or 'none'}, reused "
          f"{cmp.reused or 'none'} ({time.perf_counter() - t0:.1f} s, not counted)")


def _apptest(env: dict[str, str]) -> dict:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _APPTEST], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=600)
    if done.returncode:
        raise RuntimeError(f"AppTest run failed: {done.stderr[-2000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["process"] = time.perf_counter() - t0
    return out


def _browser(env: dict[str, str], log_path: Path) -> list[tuple[str, float, float | None]]:
    from playwright.sync_api import sync_playwright

    rows: list[tuple[str, float, float | None]] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        t_spawn = time.perf_counter()
        with app_server(env, log_path) as (port, proc):
            rows.append(("server start (spawn → port open)", time.perf_counter() - t_spawn, None))
            for session in ("first session of the server", "second session"):
                page = browser.new_context().new_page()
                t0 = time.perf_counter()
                page.goto(f"http://127.0.0.1:{port}/")
                page.wait_for_selector(f"h1:has-text('{HEADING}')", timeout=600_000)
                heading = time.perf_counter() - t0
                page.wait_for_selector("[data-test-script-state='notRunning']", timeout=600_000)
                done = time.perf_counter() - t0
                assert page.locator("[data-testid='stException']").count() == 0
                rows.append((f"{session}: request → heading visible", heading, TARGET_S))
                rows.append((f"{session}: request → page complete", done, None))
                page.context.close()
            torch = _torch_mapped(proc.pid)
            rows.append(("server imported torch" + (" (unknown)" if torch is None else
                                                    f": {'yes' if torch else 'no'}"),
                         float("nan"), None))
        browser.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--no-browser", action="store_true", help="only the AppTest measure")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from core.config import cache_dir

    root = cache_dir(args.cache_dir)
    _prepare(root)
    env = {**os.environ, "MMREC_CACHE_DIR": str(root), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}

    rows: list[tuple[str, float, float | None]] = []
    at = _apptest(env)
    rows += [("AppTest, fresh interpreter: import streamlit", at["import"], None),
             ("AppTest, fresh interpreter: first run of app.py", at["run"], TARGET_S),
             ("AppTest, fresh interpreter: whole process", at["process"], None),
             (f"AppTest process imported torch: {'yes' if at['torch'] else 'no'}",
              float("nan"), None)]
    browser_note = ""
    if args.no_browser:
        browser_note = "browser measure skipped (--no-browser)"
    elif not CHROMIUM.exists():
        browser_note = f"browser measure skipped: {CHROMIUM} not found"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            browser_note = "browser measure skipped: playwright is not installed"
    if not browser_note:
        rows += _browser(env, root / "first_load_server.log")

    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'seconds':>8}  target")
    status = 0
    for name, seconds, target in rows:
        verdict = "" if target is None else (f"≤ {target:g} s " + (
            "ok" if seconds <= target else "MISSED"))
        status |= int(target is not None and seconds > target)
        shown = "" if seconds != seconds else f"{seconds:8.2f}"  # NaN: a yes/no line
        print(f"{name:<{width}}  {shown:>8}  {verdict}")
    if browser_note:
        print(browser_note)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
