"""Suite-wide settings: offline model hubs and a private cache directory per test session.

Encoders run in fp32 unless the caller's environment says otherwise: ``MMREC_BF16=1 make test``
runs every torch encoder of the suite in bf16."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MMREC_BF16", "0")


@pytest.fixture
def concurrently() -> Callable[[int, Callable[[int], None]], list[BaseException]]:
    """``run(n, session)``: ``session(i)`` in ``n`` threads released at once (as Streamlit runs
    sessions); returns what they raised."""
    def run(n: int, session: Callable[[int], None]) -> list[BaseException]:
        start = threading.Barrier(n)
        errors: list[BaseException] = []

        def body(i: int) -> None:
            start.wait()
            try:
                session(i)
            except BaseException as exc:  # noqa: BLE001 - returned to the test
                errors.append(exc)

        threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return errors

    return run


@pytest.fixture
def duckdb_held() -> Callable[[Path], contextmanager]:
    """``with duckdb_held(path):`` another process keeps the DuckDB file ``path`` open for
    writing (for 20 s at most) until the block ends."""
    @contextmanager
    def hold(path: Path) -> Iterator[subprocess.Popen]:
        holder = subprocess.Popen(
            [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
             "print('locked', flush=True); time.sleep(20)", str(path)],
            stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "locked"
            yield holder
        finally:
            holder.kill()
            holder.wait()

    return hold
