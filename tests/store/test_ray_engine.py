"""``embed --engine ray``: the cache's misses encoded by Ray Data actors on a local in-process Ray
(2 CPUs, no dashboard, no usage stats), against the in-process path on the same tiny dataset
(photos: good, corrupt, zero-byte; texts: reviews, item texts) with the packaged encoders."""

from __future__ import annotations

import logging
import os
import sys

import numpy as np
import pytest

import core.__main__ as cli
from core.encoders import create_encoder
from core.errors import LabError
from core.store import EmbeddingProvider, EmbeddingStore, embed_dataset
from core.store.cache import text_hash
from core.store.ray_engine import (
    INSTALL_HINT,
    RayEngine,
    RayUnavailable,
    plan_pool,
    shard_folder,
)

IMAGE, TEXT = "cnn:efficientnet-lite0", "text:minilm"


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray for this module (the engine joins it and leaves it running)."""
    ray = pytest.importorskip("ray", reason=f"ray is not installed: {INSTALL_HINT}")
    saved = os.environ.get("RAY_USAGE_STATS_ENABLED")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield ray
    ray.shutdown()
    if saved is None:
        os.environ.pop("RAY_USAGE_STATS_ENABLED", None)
    else:
        os.environ["RAY_USAGE_STATS_ENABLED"] = saved


@pytest.fixture
def photos5(tmp_path):
    from store_helpers import tiny_dataset

    return tiny_dataset(tmp_path / "data", n_good=5)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1),
                                       1e-12)


def _same_vectors(ds, local_root, ray_root, spec: str, kinds: tuple[str, ...]) -> None:
    here, there = EmbeddingProvider(ds, local_root), EmbeddingProvider(ds, ray_root)
    for kind in kinds:
        (a, ok_a), (b, ok_b) = getattr(here, kind)(spec), getattr(there, kind)(spec)
        assert ok_a.tolist() == ok_b.tolist(), kind
        assert ok_a.any() and _cosines(a[ok_a], b[ok_b]).min() >= 0.9999, kind


def _bad_inputs(root, spec: str, paths) -> dict[str, str]:
    from core.store.cache import file_hash

    enc = create_encoder(spec)
    return EmbeddingStore(root).lookup(enc.id, enc.dim, "image",
                                       [h for h in map(file_hash, paths) if h])[2]


@pytest.mark.slow
def test_ray_vectors_equal_in_process_and_a_second_run_computes_nothing(
        local_ray, photos5, tmp_path, monkeypatch, capsys):
    local, remote = tmp_path / "local", tmp_path / "ray"
    here = {spec: embed_dataset(photos5, spec, local, progress=False) for spec in (IMAGE, TEXT)}

    # through the command line: its flags build the engine, which joins the Ray of this process
    monkeypatch.setattr(cli, "_load", lambda args: photos5)
    assert cli.main(["embed", "--dataset", "tiny", "--encoder", IMAGE, "--engine", "ray",
                     "--ray-batch", "2", "--ray-actors", "1", "--cache-dir", str(remote)]) == 0
    out, err = capsys.readouterr()
    assert "ray: 4 shards written, 4 imported; 5 inputs encoded on the cluster, 2 bad" in out
    assert "1 actor (2 CPU each), shards of ≤ 2" in out
    assert "shards written: 100%" in err and "shards imported: 100%" in err
    with RayEngine(actors=1) as engine:
        there = embed_dataset(photos5, TEXT, remote, progress=False, engine=engine)
    assert engine.stats["encoded_rows"] == 2 + 3  # distinct review texts + item texts
    assert local_ray.is_initialized()  # a cluster the engine joined keeps running

    _same_vectors(photos5, local, remote, IMAGE, ("photos",))
    _same_vectors(photos5, local, remote, TEXT, ("reviews", "item_texts"))
    # the corrupt and the zero-byte photo are bad inputs with the same reasons as in process
    paths = photos5.photos["path"].tolist()
    bad = _bad_inputs(remote, IMAGE, paths)
    assert len(bad) == 2 and bad == _bad_inputs(local, IMAGE, paths)
    assert any("zero-byte" in r for r in bad.values())
    counts = ("total", "distinct", "computed", "cached", "bad", "empty")
    assert ([[p.get(c) for c in counts] for p in there.parts]
            == [[p.get(c) for c in counts] for p in here[TEXT].parts])

    # everything is cached now: nothing goes to the cluster, no shard is left behind
    with RayEngine() as again:
        warm = embed_dataset(photos5, IMAGE, remote, progress=False, engine=again)
    assert all(p["computed"] == 0 for p in warm.parts) and warm.parts[0]["cached"] == 5
    assert again.stats["shards_written"] == 0 and again.pools == []
    assert warm.engine == ["ray: nothing was missing, the cluster was not used"]
    assert not list((remote / "shards").rglob("*.parquet"))


@pytest.mark.slow
def test_shards_written_but_not_imported_are_imported_on_rerun(local_ray, photos5, tmp_path,
                                                                monkeypatch):
    root = tmp_path / "ray"
    enc = create_encoder(IMAGE)
    folder = shard_folder(root, enc.id, "image")
    real_write = EmbeddingStore._write_batch
    calls = []

    def crash_on_second_import(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("simulated crash")
        return real_write(self, *args, **kwargs)

    # 7 photos in shards of 2: the first shard is imported, the job dies importing the second
    monkeypatch.setattr(EmbeddingStore, "_write_batch", crash_on_second_import)
    with pytest.raises(RuntimeError, match="simulated crash"), RayEngine(rows_per_shard=2) as e:
        embed_dataset(photos5, IMAGE, root, progress=False, engine=e)
    monkeypatch.setattr(EmbeddingStore, "_write_batch", real_write)
    left = list(folder.glob("*.parquet"))
    assert len(left) == 1 and e.stats["shards_imported"] == 1

    with RayEngine(rows_per_shard=2) as engine:
        report = embed_dataset(photos5, IMAGE, root, progress=False, engine=engine)
    s = engine.stats
    assert s["resumed_shards"] == 1 and s["resumed_rows"] == 2
    # 7 files - 2 imported before the crash - 2 in the left shard: only 3 go to the cluster
    assert s["encoded_rows"] + s["bad_rows"] == 3
    assert not list(folder.glob("*.parquet"))
    photos = report.parts[0]
    assert (photos["cached"], photos["computed"], photos["bad"]) == (2, 3, 2)
    assert "1 left by an earlier run: 2 inputs not encoded again" in "\n".join(report.lines())
    embed_dataset(photos5, IMAGE, tmp_path / "local", progress=False)
    _same_vectors(photos5, tmp_path / "local", root, IMAGE, ("photos",))


@pytest.mark.slow
def test_when_left_shards_hold_every_miss_ray_is_not_used(local_ray, tmp_path, monkeypatch):
    texts = ["fresh sushi rolls", "great pizza", "a quiet diner with pancakes"]
    enc = create_encoder(TEXT)
    store = EmbeddingStore(tmp_path)
    monkeypatch.setattr(EmbeddingStore, "_write_batch", lambda *a, **k: (_ for _ in ()).throw(
        RuntimeError("simulated crash")))
    with pytest.raises(RuntimeError), RayEngine() as engine:
        store.get_or_compute(enc, "text", texts, engine=engine)
    monkeypatch.undo()
    assert len(list(shard_folder(tmp_path, enc.id, "text").glob("*.parquet"))) == 1

    def no_cluster(self):
        raise AssertionError("the cluster was asked to encode inputs a left shard holds")

    monkeypatch.setattr(RayEngine, "_connect", no_cluster)
    with RayEngine() as engine:
        res = store.get_or_compute(enc, "text", texts, engine=engine)
    assert res.ok.all() and res.computed == 3 and engine.stats["resumed_rows"] == 3
    assert store.get_or_compute(enc, "text", texts).hits == 3
    direct = enc.encode_texts(texts)
    assert _cosines(res.vectors, direct).min() >= 0.9999
    assert store.lookup(enc.id, enc.dim, "text", [text_hash(t) for t in texts])[0].keys() == {
        text_hash(t) for t in texts}


def test_ray_is_imported_only_when_the_ray_engine_runs():
    import subprocess

    code = ("import sys, core.__main__, core.store, core.store.ray_engine; "
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_without_ray_the_error_says_what_to_install(photos5, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(RayUnavailable, match=r"pip install -e '\.\[distributed\]'"):
        embed_dataset(photos5, TEXT, tmp_path, progress=False, engine="ray")
    monkeypatch.setattr(cli, "_load", lambda args: photos5)
    argv = ["embed", "--dataset", "tiny", "--encoder", TEXT, "--cache-dir", str(tmp_path)]
    assert cli.main(argv + ["--engine", "ray"]) == 2
    assert INSTALL_HINT in capsys.readouterr().err
    assert cli.main(argv + ["--ray-batch", "8"]) == 2  # a Ray flag without --engine ray
    assert "--ray-batch only apply with --engine ray" in capsys.readouterr().err
    assert not (tmp_path / "embeddings.duckdb").exists()


def test_a_worker_with_other_weights_fails_with_the_encoders_error():
    import pyarrow as pa

    from core.errors import EncoderUnavailable
    from core.store.ray_engine import EncodeShard, _raise_fatal

    actor = EncodeShard(TEXT, "text:other-weights+fp32", "text", None)
    out = actor(pa.table({"shard": [0], "hashes": [["h"]], "payloads": [["x"]]})).to_pylist()
    assert out[0]["good"] == [] and out[0]["fatal_kind"] == "EncoderUnavailable"
    with pytest.raises(EncoderUnavailable, match="on Ray worker .* the same weights"):
        _raise_fatal(out[0]["fatal_kind"], out[0]["fatal"])


def test_the_ray_engine_refuses_encoders_it_cannot_rebuild_on_workers(tmp_path):
    from store_helpers import FakeEncoder

    with pytest.raises(LabError, match="rebuilds the encoder from its spec"):
        next(RayEngine().batches(EmbeddingStore(tmp_path), FakeEncoder(), "text", ["h"], ["x"],
                                 None, None))


def test_pool_from_the_cluster_resources():
    one = plan_pool([{"CPU": 2.0}], 7)
    assert (one.actors, one.num_cpus, one.num_gpus, one.rows_per_shard) == (1, 2.0, 0.0, 32)
    # 4 CPUs per actor, as many as fit on each node
    assert plan_pool([{"CPU": 16}, {"CPU": 6}], 10_000).actors == 4 + 1
    # GPUs: one actor per GPU, each reserving one
    gpu = plan_pool([{"CPU": 8, "GPU": 2}, {"CPU": 8, "GPU": 1}], 100)
    assert (gpu.actors, gpu.num_gpus, gpu.num_cpus) == (3, 1.0, None)
    # actors asked for: the most CPUs each that lets them all fit (2 + 1 on 4 + 2 CPUs)
    three = plan_pool([{"CPU": 4}, {"CPU": 2}], 100, actors=3)
    assert (three.actors, three.num_cpus) == (3, 2.0)
    # shards: about 4 per actor, within 32..1024 inputs, unless given
    assert plan_pool([{"CPU": 64}], 100_000).rows_per_shard == 1024
    assert plan_pool([{"CPU": 8}], 2_000).rows_per_shard == 2_000 // 8
    assert plan_pool([{"CPU": 8}], 2_000, rows_per_shard=10).rows_per_shard == 10
    for bad in ({"actors": 7}, {"actors": 0}, {"rows_per_shard": 0}):
        with pytest.raises(RayUnavailable):
            plan_pool([{"CPU": 4}, {"CPU": 2}], 100, **bad)
    with pytest.raises(RayUnavailable, match="2 GPUs"):
        plan_pool([{"CPU": 8, "GPU": 2}], 100, actors=3)
