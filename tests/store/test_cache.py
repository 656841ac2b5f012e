"""The embedding cache: hits and misses, bad inputs, schema version, stats/clear, the provider."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest
from store_helpers import FakeEncoder

import core.encoders as encoders
from core.errors import CacheError, EncoderUnavailable
from core.progress import ProgressEvent
from core.store import (
    SCHEMA_VERSION,
    EmbeddingProvider,
    EmbeddingStore,
    cache_clear,
    cache_stats,
    embed_dataset,
)
from core.store.cache import text_hash


@pytest.fixture
def registered(monkeypatch):
    """Make ``create_encoder("fake:v1")`` return one FakeEncoder instance."""
    enc = FakeEncoder()
    monkeypatch.setitem(encoders._cache, enc.spec, enc)
    return enc


def test_miss_then_hit_encodes_only_misses(tmp_path, fake):
    store = EmbeddingStore(tmp_path)
    first = store.get_or_compute(fake, "text", ["apple pie", "banana split", "apple pie"])
    assert fake.encoded_texts == 2  # the duplicate is encoded once
    assert first.hits == 0 and first.computed == 3 and first.ok.all()
    np.testing.assert_allclose(first.vectors[0], first.vectors[2])
    np.testing.assert_allclose(np.linalg.norm(first.vectors, axis=1), 1.0, rtol=1e-6)

    second = store.get_or_compute(fake, "text", ["banana split", "cherry tart", "apple pie"])
    assert fake.encoded_texts == 3  # only "cherry tart" was new
    assert second.hits == 2 and second.computed == 1
    np.testing.assert_allclose(second.vectors[0], first.vectors[1], rtol=1e-6)
    np.testing.assert_allclose(second.vectors[2], first.vectors[0], rtol=1e-6)
    # the vector stored is exactly what the encoder returned
    np.testing.assert_allclose(second.vectors[1], fake.encode_texts(["cherry tart"])[0], rtol=1e-6)


def test_encoder_id_and_modality_are_part_of_the_key(tmp_path):
    store = EmbeddingStore(tmp_path)
    a, b = FakeEncoder("fake:a"), FakeEncoder("fake:b")
    store.get_or_compute(a, "text", ["x"])
    store.get_or_compute(b, "text", ["x"])
    assert a.encoded_texts == 1 and b.encoded_texts == 1
    rows = {(r["encoder"], r["modality"]): r["rows"] for r in store.stats()}
    assert rows == {("fake:a", "text"): 1, ("fake:b", "text"): 1}


def test_images_by_content_hash_and_bad_files(tmp_path, tiny, fake):
    store = EmbeddingStore(tmp_path / "cache")
    paths = tiny.photos["path"].tolist()
    res = store.get_or_compute(fake, "image", paths)
    names = [p.rsplit("/", 1)[-1] for p in paths]
    assert dict(zip(names, res.ok.tolist())) == {
        "img0.jpg": True, "img1.jpg": True, "img2.jpg": True, "img3.jpg": True,
        "corrupt.jpg": False, "empty.jpg": False,
    }
    reasons = " | ".join(res.bad.values())
    assert "zero-byte" in reasons and "corrupt" in reasons and "empty.jpg" in reasons
    assert (res.vectors[~res.ok] == 0).all()
    assert fake.encoded_images == 4
    # bad files are remembered: a second run decodes nothing
    again = store.get_or_compute(fake, "image", paths)
    assert fake.encoded_images == 4 and again.hits == 4 and len(again.bad) == 2
    # a copy of an image under another name is a hit (keyed by content)
    copy = tmp_path / "copy.jpg"
    copy.write_bytes(open(paths[0], "rb").read())
    third = store.get_or_compute(fake, "image", [str(copy)])
    assert third.hits == 1 and fake.encoded_images == 4
    np.testing.assert_allclose(third.vectors[0], res.vectors[0])


def test_provider_aligns_counts_and_memoises(tmp_path, tiny, registered):
    prov = EmbeddingProvider(tiny, tmp_path / "cache")
    vecs, ok = prov.photos("fake:v1")
    assert vecs.shape == (6, 8) and ok.sum() == 4
    rev, rok = prov.reviews("fake:v1")
    # texts: "great pizza", "", "great pizza", None, "fresh sushi rolls" (sorted by timestamp)
    assert rok.tolist() == [True, False, True, False, True]
    np.testing.assert_allclose(rev[0], rev[2])
    assert (rev[1] == 0).all()
    items, iok = prov.item_texts("fake:v1")
    assert items.shape == (3, 8) and iok.all()
    np.testing.assert_allclose(items[0], registered.encode_texts([tiny.item_text()[0]])[0],
                               rtol=1e-6)
    counts = prov.report["fake:v1"]
    assert counts["bad_images"] == 2 and counts["empty_texts"] == 2
    calls = (registered.encoded_images, registered.encoded_texts)
    again, _ = prov.photos("fake:v1")
    assert again is vecs  # memoised, no store round trip
    assert not again.flags.writeable
    q1, qok = prov.texts("fake:v1", ["a query", ""])
    q2, _ = prov.texts("fake:v1", ["a query", ""])
    assert q1 is q2 and qok.tolist() == [True, False]
    assert registered.encoded_images == calls[0]
    assert registered.encoded_texts == calls[1] + 1

    # a fresh provider (another process, say) reads everything from the cache
    fresh = FakeEncoder()
    encoders._cache["fake:v1"] = fresh
    prov2 = EmbeddingProvider(tiny, tmp_path / "cache")
    np.testing.assert_allclose(prov2.photos("fake:v1")[0], vecs)
    np.testing.assert_allclose(prov2.reviews("fake:v1")[0], rev)
    assert fresh.encoded_images == 0 and fresh.encoded_texts == 0


def test_embed_dataset_report_stats_and_clear(tmp_path, tiny, registered):
    root = tmp_path / "cache"
    bars: dict[str, list[int]] = {}
    cold = embed_dataset(tiny, "fake:v1", root,
                         progress=lambda ev: bars.setdefault(ev.message, []).append(
                             ev.total) if ev.done == 0 else None)
    parts = {p["part"]: p for p in cold.parts}
    # each progress bar's total is what the summary calls "encoded" (distinct inputs)
    assert bars["fake:v1 texts"] == [parts["reviews"]["computed"], parts["item texts"]["computed"]]
    assert parts["photos"]["computed"] == 4 and parts["photos"]["bad"] == 2
    assert parts["reviews"]["empty"] == 2 and parts["item texts"]["computed"] == 3
    # counts are distinct inputs, like the progress bar: "great pizza" twice is encoded once
    assert parts["reviews"]["computed"] == 2 and parts["reviews"]["distinct"] == 2
    text = "\n".join(cold.lines())
    assert "2 bad (skipped)" in text and "zero-byte" in text
    assert "5 reviews (2 without text, skipped) → 2 distinct texts: 0 cached, 2 encoded" in text
    warm = embed_dataset(tiny, "fake:v1", root, progress=False)
    assert all(p["computed"] == 0 for p in warm.parts)
    assert {p["part"]: p["cached"] for p in warm.parts} == {
        "photos": 4, "reviews": 2, "item texts": 3}

    stats = cache_stats(root)
    assert "fake:v1" in stats and "image" in stats and "on disk" in stats
    # 4 image rows, 2 + 3 distinct text rows
    assert cache_clear(root, "fake:v1") == 4 + 5
    assert EmbeddingStore(root).stats() == []


def test_embed_report_says_when_a_dataset_has_no_review_text(tmp_path, tiny, registered):
    import dataclasses

    bare = dataclasses.replace(tiny, texts=None)  # no text column either: no texts at all
    seen: list[tuple[int, int, str]] = []
    report = embed_dataset(bare, "fake:v1", tmp_path / "cache", modality="text",
                           progress=lambda ev: seen.append((ev.done, ev.total, ev.message)))
    parts = {p["part"]: p for p in report.parts}
    assert parts["reviews"]["empty"] == 5 and parts["reviews"]["distinct"] == 0
    text = "\n".join(report.lines())
    assert "no review text in this dataset" in text and "empty" not in text
    # the progress bar and the summary count the same thing: distinct texts encoded
    assert seen[-1][:2] == (parts["item texts"]["computed"], parts["item texts"]["computed"])


def test_embed_dataset_refuses_a_missing_modality(tmp_path, tiny, monkeypatch):
    enc = FakeEncoder("fake:textonly")
    enc.modalities = frozenset({"text"})
    monkeypatch.setitem(encoders._cache, enc.spec, enc)
    with pytest.raises(EncoderUnavailable, match="text only"):
        embed_dataset(tiny, "fake:textonly", tmp_path, modality="image", progress=False)


def test_progress_callback(tmp_path, fake):
    seen = []
    EmbeddingStore(tmp_path).get_or_compute(
        fake, "image", [], progress=seen.append)
    assert seen == []  # nothing to encode, nothing reported
    from store_helpers import write_images

    paths = write_images(tmp_path / "img", 6)
    EmbeddingStore(tmp_path).get_or_compute(
        fake, "image", paths, progress=seen.append, batch_size=4)
    assert {ev.phase for ev in seen} == {"embed"} and {ev.technique for ev in seen} == {None}
    assert [(ev.done, ev.total) for ev in seen] == [(0, 6), (4, 6), (6, 6)]
    assert {ev.message for ev in seen} == {f"{fake.spec} images"}  # one job, one name


def test_incompatible_schema_version_is_a_clear_error(tmp_path, fake):
    store = EmbeddingStore(tmp_path)
    store.get_or_compute(fake, "text", ["x"])
    con = duckdb.connect(str(store.path))
    con.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(CacheError, match=rf"schema version 999.*needs {SCHEMA_VERSION}"):
        store.get_or_compute(fake, "text", ["x"])
    with pytest.raises(CacheError, match="move or delete"):
        cache_stats(tmp_path)


def test_not_a_database_is_a_clear_error(tmp_path, fake):
    (tmp_path / "embeddings.duckdb").write_bytes(b"garbage" * 1000)
    with pytest.raises(CacheError, match="cannot open the embedding cache"):
        EmbeddingStore(tmp_path).get_or_compute(fake, "text", ["x"])


def test_text_hash_is_content_only():
    assert text_hash("abc") == text_hash("abc") != text_hash("abd")
    assert len(text_hash("")) == 32


def test_cache_cli_stats_and_clear(tmp_path, tiny, registered, capsys):
    from core.__main__ import main

    root = tmp_path / "cache"
    assert main(["cache", "stats", "--cache-dir", str(root)]) == 0
    assert "no embedding cache yet" in capsys.readouterr().out
    embed_dataset(tiny, "fake:v1", root, progress=False)
    assert main(["cache", "stats", "--cache-dir", str(root)]) == 0
    out = capsys.readouterr().out
    from core.store import _human

    store = EmbeddingStore(root)
    assert f"{_human(store.size_bytes())} on disk" in out  # whatever unit this DuckDB needs
    stats = store.stats()
    assert sum(r["rows"] for r in stats) == 9
    for r in stats:  # one printed line per (encoder, modality) with its row count
        assert any(line.split()[:2] == [r["encoder"], r["modality"]]
                   and str(r["rows"]) in line.split() for line in out.splitlines()), out
    assert main(["cache", "clear", "--encoder", "fake:v1", "--cache-dir", str(root)]) == 0
    assert "removed 9 embedding rows" in capsys.readouterr().out
    assert main(["cache", "clear", "--cache-dir", str(root)]) == 2  # needs --encoder or --all


def test_provider_reports_embed_events(tmp_path, tiny, registered):
    events: list[ProgressEvent] = []
    prov = EmbeddingProvider(tiny, tmp_path / "cache", progress=events.append)
    prov.item_texts("fake:v1")
    assert events == [ProgressEvent("embed", None, 0, 3, "fake:v1 texts"),
                      ProgressEvent("embed", None, 3, 3, "fake:v1 texts")]
    assert events[-1].line() == "fake:v1 texts 3/3" and events[-1].fraction == 1.0
    events.clear()
    prov.item_texts("fake:v1")  # memoised: nothing encoded, nothing reported
    assert events == []


def test_console_progress_draws_bars_and_lines(tmp_path, tiny, registered):
    import io

    from core.progress import ConsoleProgress

    out = io.StringIO()
    console = ConsoleProgress(file=out)
    EmbeddingProvider(tiny, tmp_path / "cache", progress=console).item_texts("fake:v1")
    console(ProgressEvent("skipped", "clip-t1", message="needs a clip encoder"))
    console(ProgressEvent("audit", message="protocol audit: 2 pairs", warning=True))
    text = out.getvalue()
    assert "fake:v1 texts" in text and "3/3" in text  # the bar
    assert "clip-t1: skipped: needs a clip encoder\n" in text
    assert "warning: protocol audit: 2 pairs\n" in text
    assert console.bars == {}  # the finished job's bar is closed


class SharedEncoder(FakeEncoder):
    """An encoder every session of a process shares: once in use, its ``batch_size`` must not
    change (another session's encoding would run with this one's batch size)."""

    in_use = False

    @property
    def batch_size(self) -> int:
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        if self.in_use:
            raise AssertionError(f"batch_size of a shared encoder set to {value}")
        self._batch_size = value


def test_batch_size_is_an_argument_never_set_on_the_shared_encoder(tmp_path):
    enc = SharedEncoder()
    enc.in_use = True
    store = EmbeddingStore(tmp_path)
    store.get_or_compute(enc, "text", ["a", "b", "c"], batch_size=2)
    assert enc.text_batch_sizes == [2] and enc.batch_size == 4
    store.get_or_compute(enc, "text", ["d"])  # no batch size asked: the encoder's own
    assert enc.text_batch_sizes == [2, None]
    from store_helpers import write_images

    res = store.get_or_compute(enc, "image", write_images(tmp_path / "img", 3), batch_size=2)
    assert res.ok.all() and enc.batch_size == 4


def test_torch_encoders_take_the_batch_size_per_call(tmp_path):
    torch = pytest.importorskip("torch")
    from core.encoders.runtime import TorchEncoder

    class Stub(TorchEncoder):
        """A model-free torch encoder that records the size of every forward pass."""

        base_id = "stub"
        dim = 4
        modalities = frozenset({"text"})

        def __init__(self) -> None:
            super().__init__("stub", precision="fp32")
            self.forward_sizes: list[int] = []
            self.own_batch_sizes: list[int] = []

        def _build(self) -> None:
            self._model = object()

        def _forward_texts(self, texts):
            self.forward_sizes.append(len(texts))
            self.own_batch_sizes.append(self.batch_size)  # the encoder's, during the call
            return torch.ones(len(texts), self.dim)

    enc = Stub()
    EmbeddingStore(tmp_path).get_or_compute(enc, "text", [f"t{i}" for i in range(7)], batch_size=3)
    assert enc.forward_sizes == [3, 3, 1]
    assert set(enc.own_batch_sizes) == {TorchEncoder.batch_size}  # never changed, not even briefly
    enc.forward_sizes.clear()
    enc.encode_texts([f"u{i}" for i in range(7)])
    assert enc.forward_sizes == [7]  # the default (32) again: nothing was left behind
