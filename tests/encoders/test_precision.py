"""Encoder precision: fp32 unless asked, bf16 by suffix or ``MMREC_BF16=1``, ``auto`` decided by
measurement (faked capability and timings here), the precision in every id, caches that never mix
fp32 and bf16 vectors, and a real bf16-vs-fp32 comparison on the packaged MiniLM."""

from __future__ import annotations

import numpy as np
import pytest

import core.encoders as encoders
from core.encoders import create_encoder, runtime
from core.encoders.precision import (
    AUTO_MIN_SPEEDUP,
    BF16_MIN_COSINE,
    choose_precision,
    cpuinfo_bf16_flags,
    precision_of_id,
    requested_precision,
    spec_with_precision,
    split_precision,
)
from core.encoders.runtime import TorchEncoder
from core.errors import EncoderUnavailable

TEXTS = ["pizza with cheese", "italian pizza", "sushi roll", "a quiet cafe with good espresso",
         "The service was slow but the noodles were fresh and the staff friendly."]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


class TinyEncoder(TorchEncoder):
    """A seeded two-layer torch model over character counts: real autocast, milliseconds to run."""

    kind = "text"

    def __init__(self, precision=None, name: str = "tiny") -> None:
        super().__init__(f"text:{name}", precision)
        self.base_id = f"text:{name}@test"
        self.dim = 16
        self.modalities = frozenset({"text"})

    def _build(self) -> None:
        import torch

        torch.manual_seed(0)
        self._model = torch.nn.Sequential(torch.nn.Linear(64, 48), torch.nn.GELU(),
                                          torch.nn.Linear(48, 16))

    def _forward_texts(self, texts):
        import torch

        counts = np.zeros((len(texts), 64), np.float32)
        for i, t in enumerate(texts):
            for ch in t.lower():
                counts[i, ord(ch) % 64] += 1
        return self._model(torch.from_numpy(counts))


@pytest.fixture(autouse=True)
def fresh_auto_memo(monkeypatch):
    """Each test measures afresh (``auto`` results are memoised per process per base id)."""
    monkeypatch.setattr(runtime, "_auto_reports", {})


# --- configuration, no model loaded ---------------------------------------------------------------
def test_suffixes_and_environment(monkeypatch):
    monkeypatch.delenv("MMREC_BF16", raising=False)
    assert requested_precision("text:minilm") == "fp32"  # unset: fp32
    assert requested_precision("text:minilm+bf16") == "bf16"
    assert split_precision("clip:ViT-B-32/openai+bf16+chunk") == ("clip:ViT-B-32/openai+chunk",
                                                                  "bf16")
    assert split_precision("clip:ViT-B-32/openai+chunk+bf16") == ("clip:ViT-B-32/openai+chunk",
                                                                  "bf16")
    assert split_precision("cnn:vgg16") == ("cnn:vgg16", None)
    assert requested_precision("fake:v1") is None and spec_with_precision("fake:v1") == "fake:v1"
    assert spec_with_precision("text:minilm") == "text:minilm+fp32"
    monkeypatch.setenv("MMREC_BF16", "1")
    assert requested_precision("cnn:vgg16") == "bf16"
    assert requested_precision("cnn:vgg16+fp32") == "fp32"  # the suffix wins
    assert spec_with_precision("clip:X/y+chunk") == "clip:X/y+chunk+bf16"
    monkeypatch.setenv("MMREC_BF16", "auto")
    assert spec_with_precision("text:minilm") == "text:minilm+auto"
    monkeypatch.setenv("MMREC_BF16", "0")
    assert requested_precision("text:minilm") == "fp32"
    monkeypatch.setenv("MMREC_BF16", "fast")
    with pytest.raises(EncoderUnavailable, match="MMREC_BF16='fast'"):
        requested_precision("text:minilm")
    with pytest.raises(EncoderUnavailable, match=r"both \+bf16 and \+fp32"):
        split_precision("text:minilm+bf16+fp32")
    assert split_precision("clip:X/y+int8+chunk") == ("clip:X/y+chunk", "int8")
    assert requested_precision("clip:ViT-B-32/openai+int8") == "int8"
    with pytest.raises(EncoderUnavailable, match=r"both \+fp32 and \+int8"):
        split_precision("clip:X/y+int8+fp32")
    for spec in ("text:minilm+int8", "cnn:efficientnet-lite0+int8"):
        with pytest.raises(EncoderUnavailable, match=r"\+int8 quantizes the matrix products"):
            create_encoder(spec)


def test_ids_end_in_the_precision_without_loading(monkeypatch):
    monkeypatch.delenv("MMREC_BF16", raising=False)
    fp32 = create_encoder("text:minilm")
    bf16 = create_encoder("text:minilm+bf16")
    base = fp32.id.removesuffix("+fp32")
    assert fp32.id.endswith("+fp32") and bf16.id == base + "+bf16"
    assert create_encoder("text:minilm+fp32").id == fp32.id
    fresh = encoders._build("cnn:efficientnet-lite0+bf16")  # an instance nobody used yet
    assert fresh.id.endswith("+bf16") and not fresh.loaded
    monkeypatch.setenv("MMREC_BF16", "1")  # the environment is part of the instance cache key
    env_bf16 = create_encoder("text:minilm")
    assert env_bf16 is not fp32 and env_bf16.id == bf16.id
    assert create_encoder("text:minilm+fp32").id == fp32.id
    monkeypatch.setenv("MMREC_BF16", "0")
    assert create_encoder("text:minilm") is fp32
    for spec in ("clip:ViT-S-32-alt/untrained+bf16+chunk",
                 "clip:ViT-S-32-alt/untrained+chunk+bf16"):
        enc = create_encoder(spec)
        assert enc.chunk_long_texts and enc.id == "clip:ViT-S-32-alt/untrained-seed0+chunk+bf16"
    cnn = create_encoder("cnn:efficientnet-lite0+bf16")
    assert cnn.id.startswith("cnn:efficientnet-lite0@sha256=") and cnn.id.endswith("+bf16")
    assert precision_of_id(cnn.id) == "bf16" and precision_of_id("fake:v1") is None


def test_capability_is_the_cpus_not_onednns(monkeypatch, tmp_path):
    import torch

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512bw amx_tile amx_bf16\n"
                       "processor\t: 1\nflags\t\t: fpu sse2 avx512f avx512bw amx_tile amx_bf16\n")
    assert cpuinfo_bf16_flags(str(cpuinfo)) == ["amx_bf16"]
    assert cpuinfo_bf16_flags(str(tmp_path / "missing")) == []
    # torch's own CPU feature probes decide when present, whatever oneDNN says it can run
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    monkeypatch.setattr(runtime, "cpuinfo_bf16_flags", lambda: ["avx512_bf16"])
    assert runtime.cpu_has_native_bf16() is False
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert runtime.cpu_has_native_bf16() is True
    # without them (older torch): the kernel's flags
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    assert runtime.cpu_has_native_bf16() is True
    monkeypatch.setattr(runtime, "cpuinfo_bf16_flags", lambda: [])
    assert runtime.cpu_has_native_bf16() is False


# --- MMREC_BF16=auto with faked capability and timings --------------------------------------------
def test_choose_precision_needs_all_three_conditions():
    ok = (True, AUTO_MIN_SPEEDUP, BF16_MIN_COSINE)  # the bars themselves pass
    assert choose_precision(*ok)[0] == "bf16"
    assert choose_precision(False, 3.0, 1.0)[0] == "fp32"
    assert choose_precision(True, AUTO_MIN_SPEEDUP - 0.01, 1.0)[0] == "fp32"
    assert choose_precision(True, 3.0, BF16_MIN_COSINE - 0.001)[0] == "fp32"
    assert choose_precision(True, None, None)[0] == "fp32"


def _fake_timings(monkeypatch, enc: TinyEncoder, fp32_s: float, bf16_s: float,
                  bf16_cos: float = 1.0) -> list[int]:
    """Make ``enc._timed`` report fixed seconds; bf16 vectors are the real fp32 ones, turned
    towards a fixed orthogonal direction until their cosine with fp32 is ``bf16_cos``. Returns
    the list of calls (one per probe input set)."""
    calls: list[int] = []

    def timed(fn, x, repeats):
        calls.append(repeats)
        v = enc._run(fn, x, bf16=False)
        noise = np.random.default_rng(0).standard_normal(v.shape).astype(np.float32)
        noise -= np.sum(noise * v, axis=1, keepdims=True) * v
        noise /= np.linalg.norm(noise, axis=1, keepdims=True)
        return (v, fp32_s), (bf16_cos * v + np.sqrt(1 - bf16_cos ** 2) * noise, bf16_s)

    monkeypatch.setattr(enc, "_timed", timed)
    return calls


@pytest.mark.parametrize("native, fp32_s, bf16_s, cos, expected", [
    (True, 1.0, 0.5, 0.999, "bf16"),  # native, 2x faster, agrees
    (True, 1.2, 1.0, 0.999, "bf16"),  # exactly the 1.2x bar
    (False, 1.0, 0.5, 0.999, "fp32"),  # emulated bf16: never
    (True, 1.0, 0.9, 0.999, "fp32"),  # only 1.11x faster
    (True, 1.0, 0.5, 0.98, "fp32"),  # fast but disagrees with fp32
])
def test_auto_decides_by_measurement(monkeypatch, native, fp32_s, bf16_s, cos, expected):
    monkeypatch.setenv("MMREC_BF16", "auto")
    monkeypatch.setattr(runtime, "native_bf16", lambda device="cpu": native)
    enc = TinyEncoder()
    calls = _fake_timings(monkeypatch, enc, fp32_s, bf16_s, cos)
    assert enc.requested_precision == "auto" and not enc.loaded
    assert enc.id == f"text:tiny@test+{expected}"  # the first access to id measures
    rep = enc.precision_report
    assert rep["precision"] == expected and rep["native_bf16"] is native
    if native:
        assert calls == [runtime.AUTO_REPEATS]  # one probe input set (texts)
        assert rep["speedup"] == pytest.approx(fp32_s / bf16_s)
        assert rep["min_cosine"] == pytest.approx(cos, abs=1e-5)
    else:  # nothing is timed without native bf16
        assert calls == [] and rep["speedup"] is None and rep["min_cosine"] is None
    out = enc.encode_texts(["x"])  # encodes in the chosen precision without measuring again
    assert out.shape == (1, 16) and len(calls) == (1 if native else 0)


def test_auto_is_measured_once_per_base_id(monkeypatch):
    monkeypatch.setenv("MMREC_BF16", "auto")
    monkeypatch.setattr(runtime, "native_bf16", lambda device="cpu": True)
    first = TinyEncoder()
    calls = _fake_timings(monkeypatch, first, 1.0, 0.5)
    first.load()  # load() decides too
    assert first.precision == "bf16" and len(calls) == 1
    again = TinyEncoder()  # same base id: reuses the decision, loads nothing
    assert again.id == first.id and not again.loaded and again.precision_report["speedup"] == 2.0
    other = TinyEncoder(name="other")
    other_calls = _fake_timings(monkeypatch, other, 1.0, 0.99)
    assert other.id == "text:other@test+fp32" and len(other_calls) == 1


def test_timed_alternates_and_keeps_the_best_repetition(monkeypatch):
    # clock readings around the timed runs, fp32 and bf16 alternating after the two warm-ups:
    # fp32 takes 5, 2, 3 s; bf16 4, 1, 6 s
    ticks = iter([0, 5, 10, 14, 20, 22, 30, 31, 40, 43, 50, 56])
    monkeypatch.setattr(runtime, "_clock", lambda: float(next(ticks)))
    enc = TinyEncoder("fp32")
    enc.load()
    (v32, s32), (v16, s16) = enc._timed(enc._forward_texts, TEXTS, 3)
    assert (s32, s16) == (2.0, 1.0)
    assert v32.shape == v16.shape == (len(TEXTS), 16) and not np.array_equal(v32, v16)
    assert np.all(cosines(v32, v16) >= BF16_MIN_COSINE)  # real autocast on the tiny model


# --- the cache keeps fp32 and bf16 apart ------------------------------------------------------
def test_cache_never_mixes_precisions(tmp_path):
    from core.store import EmbeddingStore, cache_stats
    from core.store.cache import text_hash

    store = EmbeddingStore(tmp_path)
    fp32, bf16 = TinyEncoder("fp32"), TinyEncoder("bf16")
    assert fp32.base_id == bf16.base_id and fp32.id != bf16.id
    first = store.get_or_compute(fp32, "text", TEXTS)
    assert first.computed == len(TEXTS)
    index, rows, _ = store.lookup(bf16.id, 16, "text", [text_hash(t) for t in TEXTS])
    assert index == {} and rows.shape == (0, 16)  # fp32 rows are not bf16 rows
    second = store.get_or_compute(bf16, "text", TEXTS)
    assert second.hits == 0 and second.computed == len(TEXTS)
    assert store.get_or_compute(fp32, "text", TEXTS).hits == len(TEXTS)
    stats = {r["encoder"]: r for r in store.stats()}
    assert {r["precision"] for r in stats.values()} == {"fp32", "bf16"}
    assert stats[bf16.id]["rows"] == stats[fp32.id]["rows"] == len(TEXTS)
    table = cache_stats(tmp_path)
    assert "precision" in table.splitlines()[1]
    assert any(line.split()[0] == bf16.id and "bf16" in line.split()[1:]
               for line in table.splitlines())


# --- real weights ---------------------------------------------------------------------------------
def test_minilm_bf16_agrees_with_fp32():
    """Real autocast on the packaged MiniLM (native or emulated bf16: on any x86-64 the vectors are
    the same to a cosine of at least BF16_MIN_COSINE = 0.99, the bar ``auto`` applies)."""
    fp32 = create_encoder("text:minilm+fp32")
    bf16 = create_encoder("text:minilm+bf16")
    assert fp32.precision == "fp32" and bf16.precision == "bf16" and fp32.id != bf16.id
    a, b = fp32.encode_texts(TEXTS), bf16.encode_texts(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    cos = cosines(a, b)
    assert np.all(cos >= BF16_MIN_COSINE), cos
    assert not np.array_equal(a, b)  # bf16 really ran: its rounding shows in the last digits


def test_minilm_auto_report_is_consistent(monkeypatch):
    """``auto`` on this machine: whatever it picks, the id, the report and the rule agree."""
    monkeypatch.setenv("MMREC_BF16", "auto")
    enc = encoders._build("text:minilm")
    rep = dict(enc.precision_report)
    assert rep == {}  # nothing measured before the id is asked for
    precision = enc.precision
    rep = enc.precision_report
    assert enc.id.endswith("+" + precision) and rep["precision"] == precision
    assert precision == choose_precision(rep["native_bf16"], rep["speedup"], rep["min_cosine"])[0]
    if rep["native_bf16"]:
        assert rep["speedup"] > 0 and 0.9 < rep["min_cosine"] <= 1.0 + 1e-6


def test_runs_record_each_roles_precision(monkeypatch):
    """``run.json`` gets ``encoder_ids`` with the precision and ``precision`` per role."""
    from types import SimpleNamespace

    import pandas as pd

    from core.evaluation.presets import finish_run

    monkeypatch.setenv("MMREC_BF16", "0")
    result = SimpleNamespace(meta={"encoders": {"text": "text:minilm+bf16",
                                                "image": "cnn:efficientnet-lite0",
                                                "clip": "clip:ViT-Z-99/openai"}},
                             params={}, metrics=pd.DataFrame())
    assert finish_run(result) is None
    meta = result.meta
    assert meta["precision"] == {"text": "bf16", "image": "fp32"}  # clip cannot be built
    assert meta["encoder_ids"]["text"]["id"].endswith("+bf16")
    assert meta["encoder_ids"]["clip"]["id"] is None
