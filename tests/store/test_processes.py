"""Two processes on one cache: resume after a kill, readers during a write, a second writer,
the clear error when another process keeps the file locked, and the same at the dataset level
(``python -m core embed``): two embedders of one dataset, a killed embed resumed."""

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

import core.encoders as encoders
from core.errors import CacheError
from core.store import EmbeddingStore, embed_dataset
from core.store.base import ensure_database
from core.store.cache import file_hash, text_hash

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


def _kill_after_rows(proc: subprocess.Popen, root: Path, rows: int) -> int:
    """SIGKILL ``proc`` once at least ``rows`` vectors are committed under ``root`` (it must still
    be running then); returns the rows present after the kill."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not (root / "embeddings.duckdb").exists()
                                           or _rows(root) < rows):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return _rows(root)


def _inputs(tmp_path: Path, modality: str, n: int) -> list[str]:
    if modality == "text":
        return [f"review number {i} about dumplings" for i in range(n)]
    return [str(p) for p in write_images(tmp_path / "imgs", n, size=32)]


@pytest.mark.parametrize("modality", ["text", "image"])
def test_resume_after_kill_matches_an_uninterrupted_run(tmp_path, modality):
    n = 24
    inputs = _inputs(tmp_path, modality, n)
    root = tmp_path / "interrupted"
    committed = _kill_after_rows(_spawn(root, inputs, modality, delay=0.08), root, 8)
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


def test_a_long_held_lock_gives_a_clear_error(tmp_path, fake, duckdb_held):
    store = EmbeddingStore(tmp_path, lock_timeout=0.5)
    store.get_or_compute(fake, "text", ["x"])
    with duckdb_held(store.path):  # held 20 s: ignoring the 0.5 s timeout would raise nothing
        with pytest.raises(CacheError, match="another process is writing"):
            store.get_or_compute(fake, "text", ["y"])
    # once the other process is gone, the same call works
    assert store.get_or_compute(fake, "text", ["y"]).ok.all()


# --- the dataset level: `python -m core embed` in two processes ----------------------------------
EMBED = textwrap.dedent("""
    import os, sys, time
    sys.path[:0] = [{here!r}, {repo!r}]
    import core.encoders as encoders
    import core.store.cache as cache
    from core.__main__ import main
    from store_helpers import FakeEncoder
    cache.TEXT_COMMIT_ROWS = 4
    enc = encoders._cache["fake:v1"] = FakeEncoder("fake:v1", delay={delay})
    while {go!r} and not os.path.exists({go!r}):  # start together
        time.sleep(0.005)
    code = main(["embed", "--dataset", {dataset!r}, "--encoder", "fake:v1", "--cache-dir",
                 {root!r}, "--batch-size", "4"])
    print("encoded", enc.encoded_images + enc.encoded_texts, flush=True)
    sys.exit(code)
""")


@pytest.fixture(scope="module")
def yelp(tmp_path_factory):
    """A small Yelp-layout dataset (the demo generator's output): 24 photos, 128 reviews, 10
    items, every photo and text distinct."""
    from core.data import load_dataset
    from core.data.demo import generate_demo

    folder = generate_demo(tmp_path_factory.mktemp("yelp") / "yelp", n_businesses=10,
                           n_users=20, n_photos=24)
    spec = f"yelp:{folder}"
    return spec, load_dataset(spec)


def _embed(root: Path, spec: str, delay: float, go: Path | None = None) -> subprocess.Popen:
    code = EMBED.format(here=str(HERE), repo=str(REPO), delay=delay, go=str(go or ""),
                        dataset=spec, root=str(root))
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _contents(ds) -> dict[tuple[str, str], object]:
    """(modality, content hash) → the photo path or text, for everything ``embed`` encodes."""
    out: dict[tuple[str, str], object] = {}
    for p in ds.photos["path"]:
        out[("image", file_hash(p))] = p
    for t in [*ds.texts.to_list(), *ds.item_text()]:
        if t is not None and str(t).strip():
            out[("text", text_hash(str(t)))] = str(t)
    return out


def _dump(root: Path) -> tuple[list, list]:
    """Every stored vector (encoder, modality, hash, vec) and dataset map row, sorted."""
    con = duckdb.connect(str(root / "embeddings.duckdb"), read_only=True)
    try:
        vecs = con.execute("SELECT encoder, modality, hash, vec FROM vectors_8 "
                           "ORDER BY ALL").fetchall()
        rows = con.execute("SELECT dataset, kind, key, hash, path, size, mtime_ns "
                           "FROM dataset_map ORDER BY ALL").fetchall()
    finally:
        con.close()
    return vecs, rows


def _check_complete(root: Path, ds) -> list:
    """Assert the cache holds each of ``ds``'s contents exactly once, as the encoder computes it,
    with a complete dataset map; returns the vector rows."""
    vecs, mapped = _dump(root)
    contents = _contents(ds)
    keys = [(mod, h) for _, mod, h, _ in vecs]
    assert len(keys) == len(set(keys)), "a vector is stored twice"
    assert set(keys) == set(contents)  # rows == distinct content hashes
    enc = FakeEncoder()
    for _, mod, h, vec in vecs:  # whole rows, each the encoder's vector of that content
        content = contents[(mod, h)]
        want = (enc.encode_images([content]) if mod == "image" else enc.encode_texts([content]))
        assert len(vec) == 8
        np.testing.assert_allclose(vec, want[0], rtol=1e-5, atol=1e-6)
    by_kind: dict[str, dict[str, str]] = {}
    for _, kind, key, h, *_ in mapped:
        by_kind.setdefault(kind, {})[key] = h
    texts = ds.texts.to_list()
    assert by_kind["photo"] == {str(k): file_hash(p) for k, p in zip(ds.photos["photo_id"],
                                                                    ds.photos["path"])}
    assert by_kind["review"] == {str(r): text_hash(str(t)) for r, t in
                                 zip(ds.interactions["review_id"], texts) if t and str(t).strip()}
    assert by_kind["item"] == {str(i): text_hash(t) for i, t in
                               zip(ds.items["item_id"], ds.item_text()) if t.strip()}
    return vecs


def test_two_processes_embedding_one_dataset_store_each_vector_once(tmp_path, yelp):
    spec, ds = yelp
    root = tmp_path / "cache"
    go = tmp_path / "go"
    procs = [_embed(root, spec, delay=0.002, go=go) for _ in range(2)]
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert "encoded" in out, err
    _check_complete(root, ds)


def test_embed_killed_mid_run_resumes_with_only_the_missing_inputs(tmp_path, yelp, monkeypatch):
    spec, ds = yelp
    total = len(_contents(ds))
    positions = len(ds.photos) + sum(1 for t in [*ds.texts.to_list(), *ds.item_text()]
                                     if t is not None and str(t).strip())
    assert positions == total, "fixture: every photo and text is distinct"
    root = tmp_path / "interrupted"
    committed = _kill_after_rows(_embed(root, spec, delay=0.02), root, 8)
    assert 8 <= committed < total, "the kill should land mid-run"

    rerun = FakeEncoder()
    monkeypatch.setitem(encoders._cache, "fake:v1", rerun)
    report = embed_dataset(ds, "fake:v1", root, progress=False, batch_size=4)
    computed = sum(p["computed"] for p in report.parts)
    assert rerun.encoded_images + rerun.encoded_texts == total - committed  # only what was missing
    assert computed == total - committed
    assert sum(p["cached"] for p in report.parts) == committed
    resumed = _check_complete(root, ds)  # no torn or duplicate rows, map complete

    clean = tmp_path / "clean"
    monkeypatch.setitem(encoders._cache, "fake:v1", FakeEncoder())
    embed_dataset(ds, "fake:v1", clean, progress=False, batch_size=4)
    want, want_map = _dump(clean)
    assert [r[:3] for r in resumed] == [r[:3] for r in want]
    np.testing.assert_allclose(np.array([r[3] for r in resumed]), np.array([r[3] for r in want]),
                               rtol=1e-6)
    assert _dump(root)[1] == want_map


def test_an_empty_cache_file_left_by_a_kill_is_a_fresh_cache(tmp_path, fake):
    # killed between creating the file and committing the schema: a database with no tables
    duckdb.connect(str(tmp_path / "embeddings.duckdb")).close()
    store = EmbeddingStore(tmp_path)
    assert store.stats() == [] and store.counts() == {"bad_inputs": 0, "dataset_map": 0}
    res = store.get_or_compute(fake, "text", ["a", "b"])
    assert res.computed == 2 and res.ok.all()
    assert store.get_or_compute(fake, "text", ["a", "b"]).hits == 2


def test_a_new_database_file_appears_whole(tmp_path, monkeypatch):
    # DuckDB writes a new file's header after creating it; a process opening it in between got
    # "not a valid DuckDB database file" (seen with two embedders starting together). The file
    # is now built aside and linked into place; a database another process links first is kept.
    path = tmp_path / "runs.duckdb"
    real_link = os.link
    seen = []

    def link(src, dst):
        seen.append(Path(dst).exists())  # nothing at the final name while ours is being built
        with duckdb.connect(str(dst)) as con:  # another process wins the race, with data
            con.execute("CREATE TABLE theirs AS SELECT 42 AS answer")
        real_link(src, dst)

    monkeypatch.setattr(os, "link", link)
    ensure_database(path)
    assert seen == [False]
    with duckdb.connect(str(path)) as con:
        assert con.execute("SELECT answer FROM theirs").fetchall() == [(42,)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.duckdb"]  # no temporary left
    monkeypatch.setattr(os, "link", real_link)
    ensure_database(tmp_path / "embeddings.duckdb")
    with duckdb.connect(str(tmp_path / "embeddings.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM information_schema.tables").fetchall() == [(0,)]
    assert EmbeddingStore(tmp_path).stats() == []  # an empty database reads as no cache yet
