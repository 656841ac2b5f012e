"""Two processes on one cache: resume after a kill, readers during a write, a second writer,
and the clear error when another process keeps the file locked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import numpy as np
import pytest
from store_helpers import FakeEncoder, write_images

from core.errors import CacheError
from core.store import EmbeddingStore

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

WRITER = textwrap.dedent("""
    import sys
    sys.path[:0] = [{here!r}, {repo!r}]
    import core.store.cache as cache
    from store_helpers import FakeEncoder
    cache.TEXT_COMMIT_ROWS = 4
    inputs = {inputs!r}
    enc = FakeEncoder({spec!r}, delay={delay})
    cache.EmbeddingStore({root!r}).get_or_compute(enc, {modality!r}, inputs, batch_size=4)
    print("finished", flush=True)
""")


def _spawn(root: Path, inputs: list[str], modality: str, delay: float,
           spec: str = "fake:v1") -> subprocess.Popen:
    code = WRITER.format(here=str(HERE), repo=str(REPO), inputs=inputs, spec=spec, delay=delay,
                         root=str(root), modality=modality)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _rows(root: Path) -> int:
    return sum(r["rows"] for r in EmbeddingStore(root).stats())


def _inputs(tmp_path: Path, modality: str, n: int) -> list[str]:
    if modality == "text":
        return [f"review number {i} about dumplings" for i in range(n)]
    return [str(p) for p in write_images(tmp_path / "imgs", n, size=32)]


@pytest.mark.parametrize("modality", ["text", "image"])
def test_resume_after_kill_matches_an_uninterrupted_run(tmp_path, modality):
    n = 24
    inputs = _inputs(tmp_path, modality, n)
    root = tmp_path / "interrupted"
    proc = _spawn(root, inputs, modality, delay=0.08)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not (root / "embeddings.duckdb").exists()
                                           or _rows(root) < 8):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    committed = _rows(root)
    assert 8 <= committed < n, "the kill should land mid-run"
    assert committed % 4 == 0, "only whole batches are committed"

    rerun = FakeEncoder()
    res = EmbeddingStore(root).get_or_compute(rerun, modality, inputs, batch_size=4)
    done = rerun.encoded_texts if modality == "text" else rerun.encoded_images
    assert done == n - committed  # resumed: only what was missing
    assert res.hits == committed and res.ok.all()

    clean = EmbeddingStore(tmp_path / "clean").get_or_compute(FakeEncoder(), modality, inputs)
    np.testing.assert_allclose(res.vectors, clean.vectors, rtol=1e-6)
    # no torn rows: every stored vector is complete and unit-length
    con = duckdb.connect(str(root / "embeddings.duckdb"), read_only=True)
    norms = con.execute("SELECT len(vec::FLOAT[]), sqrt(list_dot_product(vec::FLOAT[], "
                        "vec::FLOAT[])) FROM vectors_8").fetchall()
    con.close()
    assert len(norms) == n
    assert all(c == 8 and abs(s - 1) < 1e-5 for c, s in norms)


def test_reader_and_second_writer_while_a_job_writes(tmp_path):
    root = tmp_path / "cache"
    inputs = _inputs(tmp_path, "text", 40)
    proc = _spawn(root, inputs, "text", delay=0.03)
    seen = []
    other = FakeEncoder("fake:other")
    store = EmbeddingStore(root, lock_timeout=30)
    while proc.poll() is None:
        if store.path.exists():
            seen.append(_rows(root))  # a reader: never fails, sees whole batches only
            # a second writer (another encoder) interleaves its batches with the job's
            store.get_or_compute(other, "text", [f"other {len(seen)}"])
        time.sleep(0.02)
    out, err = proc.communicate()
    assert proc.returncode == 0 and "finished" in out, err
    assert len(seen) >= 3
    job_rows = [r["rows"] for r in store.stats() if r["encoder"] == "fake:v1"]
    assert job_rows == [40]
    assert other.encoded_texts == len(seen)
    assert seen == sorted(seen)  # monotone: committed batches never disappear


def test_a_long_held_lock_gives_a_clear_error(tmp_path, fake):
    store = EmbeddingStore(tmp_path, lock_timeout=0.5)
    store.get_or_compute(fake, "text", ["x"])
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('locked', flush=True); time.sleep(20)", str(store.path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        t0 = time.monotonic()
        with pytest.raises(CacheError, match="another process is writing"):
            store.get_or_compute(fake, "text", ["y"])
        assert time.monotonic() - t0 < 10
    finally:
        holder.kill()
        holder.wait()
    # once the other process is gone, the same call works
    assert store.get_or_compute(fake, "text", ["y"]).ok.all()
