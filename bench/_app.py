"""The real app for the benchmarks that drive it: ``streamlit run app.py`` on a free localhost
port, and the flags headless Chromium needs on a closed network (not a benchmark itself)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def app_server(env: Mapping[str, str], log_path: Path,
               start_timeout: float = 120.0) -> Iterator[tuple[int, subprocess.Popen]]:
    """A new app server as ``make app`` starts it (``python -m app_pages``: ``streamlit run
    app.py`` with the pages' modules imported before it listens; environment ``env``, output to
    ``log_path``):
    yields ``(port, process)`` once its port accepts connections, and stops it on leaving.

    Raises ``RuntimeError`` with the end of the log when it exits or is not up in time."""
    port = free_port()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app_pages", "--server.port", str(port),
             "--server.address", "127.0.0.1",
             "--server.headless", "true", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"],
            cwd=ROOT, env=dict(env), stdout=log, stderr=subprocess.STDOUT)
        try:
            started = time.perf_counter()
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.perf_counter() - started > start_timeout:
                        raise RuntimeError(
                            f"streamlit did not start: {log_path.read_text()[-2000:]}") from None
                    time.sleep(0.05)
            yield port, proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
