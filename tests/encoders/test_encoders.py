"""Encoders: specs and ids, normalisation, real packaged weights, CLIP checkpoints, missing weights,
long-text chunking (precision: test_precision.py).

Vectors from real encoders are compared by cosine, never element by element, so the suite passes in
fp32 (the default) and with ``MMREC_BF16=1``: the same input through the same encoder in another
batch must agree to ``SAME_INPUT_MIN_COS``; an encoder against an fp32 reference computed here to
``reference_min_cos(enc)``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.encoders import create_encoder, list_encoders
from core.encoders.precision import BF16_MIN_COSINE
from core.encoders.runtime import read_image
from core.errors import EncoderUnavailable

REPO = Path(__file__).resolve().parents[2]
#: Same input, same encoder and precision, different batch: fp32 agrees to ~1e-7; bf16 may round
#: differently with another batch shape. A row swapped with another input falls far below this.
SAME_INPUT_MIN_COS = 0.999


def reference_min_cos(enc) -> float:
    """How close ``enc``'s vectors must be to an fp32 reference: fp32 matches to float rounding;
    bf16 to ``BF16_MIN_COSINE`` (the same bar ``MMREC_BF16=auto`` uses)."""
    return 0.9999 if enc.precision == "fp32" else BF16_MIN_COSINE


def assert_rows_agree(a: np.ndarray, b: np.ndarray, min_cos: float) -> None:
    """Every row of ``a`` has cosine ≥ ``min_cos`` with the same row of ``b``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert np.all(cos >= min_cos), f"cosines {cos.round(6).tolist()} < {min_cos}"


def _images(folder: Path) -> list[Path]:
    """Three photos: a red-ish gradient, the same scene slightly shifted and recompressed, and a
    blue checkerboard."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:240, 0:320]
    warm = np.stack([200 + xx % 56, 60 + yy % 80, 40 + (xx + yy) % 30], -1).astype(np.uint8)
    board = (((xx // 20) + (yy // 20)) % 2 * 200).astype(np.uint8)
    cold = np.stack([board // 4, board // 2, 55 + board], -1).astype(np.uint8)
    paths = [folder / "warm.jpg", folder / "warm2.jpg", folder / "board.png"]
    Image.fromarray(warm).save(paths[0], quality=95)
    Image.fromarray(np.roll(warm, 3, axis=1)).save(paths[1], quality=70)
    Image.fromarray(cold).save(paths[2])
    return paths


def test_unknown_specs_fail_with_the_spec_named():
    with pytest.raises(EncoderUnavailable, match="unknown encoder spec 'nope'"):
        create_encoder("nope")
    with pytest.raises(EncoderUnavailable, match="unknown open_clip model"):
        create_encoder("clip:ViT-Z-99/openai")
    with pytest.raises(EncoderUnavailable, match="not a pretrained tag"):
        create_encoder("clip:ViT-B-32/no-such-tag")
    with pytest.raises(EncoderUnavailable, match="does not exist"):
        create_encoder("clip:ViT-B-32/file=/no/such/file.pt")
    with pytest.raises(EncoderUnavailable, match="unknown CNN"):
        create_encoder("cnn:alexnet")


def test_ids_carry_weights_identity_without_loading(monkeypatch):
    monkeypatch.setenv("MMREC_BF16", "0")
    clip = create_encoder("clip:ViT-B-32/openai")
    assert clip.id == "clip:ViT-B-32/openai+fp32" and clip.dim == 512 and clip.shared_space
    assert not clip.loaded
    unt = create_encoder("clip:ViT-B-32/untrained")
    assert unt.untrained and "untrained" in unt.id
    assert create_encoder("clip:ViT-S-32-alt/untrained+chunk").id != unt.id
    mini = create_encoder("text:minilm")
    assert mini.id.startswith("text:all-MiniLM-L6-v2@sha256=") and mini.id.endswith("+fp32")
    assert mini.dim == 384
    assert mini.modalities == {"text"} and not mini.shared_space
    eff = create_encoder("cnn:efficientnet-lite0")
    assert eff.id.startswith("cnn:efficientnet-lite0@sha256=5793442") and eff.dim == 1280
    assert create_encoder("text:minilm") is mini  # one instance per spec per process


def test_list_encoders_marks_what_is_here():
    rows = {r["spec"]: r for r in list_encoders(check=True)}
    assert rows["text:minilm"]["available"] is True
    assert rows["cnn:efficientnet-lite0"]["available"] is True
    assert rows["clip:ViT-B-32/untrained"]["available"] is True
    assert "UNTRAINED" in rows["clip:ViT-B-32/untrained"]["description"]
    for spec in ("clip:ViT-B-32/openai", "bert:bert-large-uncased", "cnn:resnet101"):
        assert spec in rows and isinstance(rows[spec]["available"], bool)
    assert set(rows["clip:ViT-B-32/openai"]["modalities"]) == {"image", "text"}
    unchecked = list_encoders(check=False)
    assert all(r["available"] is None for r in unchecked)
    assert {r["spec"] for r in unchecked} <= set(rows)


def test_minilm_real_weights_are_sensible_and_normalised():
    enc = create_encoder("text:minilm")
    v = enc.encode_texts(["pizza with cheese", "italian pizza", "sushi roll"])
    assert v.dtype == np.float32 and v.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2
    # order-independent (the encoder sorts by length internally)
    w = enc.encode_texts(["sushi roll", "pizza with cheese"])
    assert_rows_agree(w, v[[2, 0]], SAME_INPUT_MIN_COS)


def test_efficientnet_real_weights_batch_equals_single(tmp_path):
    enc = create_encoder("cnn:efficientnet-lite0")
    paths = _images(tmp_path)
    v = enc.encode_images(paths)
    assert v.shape == (3, 1280) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    # the same scene, shifted and recompressed, is closer than a different picture
    assert v[0] @ v[1] > 0.9 and v[0] @ v[1] > v[0] @ v[2] + 0.1
    single = np.concatenate([enc.encode_images([p]) for p in paths])
    assert_rows_agree(v, single, SAME_INPUT_MIN_COS)


def test_corrupt_image_raises_value_error_naming_the_file(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff junk")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="bad.jpg"):
        read_image(bad)
    with pytest.raises(ValueError, match="zero-byte"):
        read_image(empty)
    enc = create_encoder("cnn:efficientnet-lite0")
    with pytest.raises(ValueError, match="bad.jpg"):
        enc.encode_images([bad])
    good = _images(tmp_path / "ok")[0]
    batches = list(enc.image_batches([good, bad, empty], batch_size=8))
    assert [b.positions.tolist() for b in batches] == [[0]]
    assert [i for i, _ in batches[0].bad] == [1, 2]


def test_untrained_clip_is_deterministic_and_shared_space(tmp_path):
    enc = create_encoder("clip:ViT-S-32-alt/untrained")  # small; same code as ViT-B-32
    img = enc.encode_images(_images(tmp_path)[:1])
    txt = enc.encode_texts(["a photo of food"])
    assert img.shape == (1, enc.dim) and txt.shape == (1, enc.dim)
    np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1.0, atol=1e-5)
    # seeded: another process gets the same vectors (the cache relies on it)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import numpy as np; "
            "from core.encoders import create_encoder; "
            "v = create_encoder('clip:ViT-S-32-alt/untrained').encode_texts(['a photo of food']); "
            "print(' '.join(f'{x:.7f}' for x in v[0]))")
    out = subprocess.run([sys.executable, "-c", code, str(REPO)], capture_output=True, text=True,
                         check=True).stdout.split()  # inherits MMREC_BF16: the same precision
    assert_rows_agree(np.array([[float(x) for x in out]]), txt, SAME_INPUT_MIN_COS)


def test_clip_chunking_of_long_texts():
    plain = create_encoder("clip:ViT-S-32-alt/untrained")
    chunked = create_encoder("clip:ViT-S-32-alt/untrained+chunk")
    short = "a bowl of ramen"
    assert_rows_agree(plain.encode_texts([short]), chunked.encode_texts([short]),
                      SAME_INPUT_MIN_COS)
    head = "the noodles were great " * 20  # > 77 tokens
    long_a = head + "and the dessert was terrible " * 20
    long_b = head + "and the parking was easy " * 20
    p = plain.encode_texts([long_a, long_b])
    c = chunked.encode_texts([long_a, long_b])
    # truncation sees only the shared beginning; chunking sees the different endings
    assert p[0] @ p[1] > 0.9999
    assert c[0] @ c[1] < p[0] @ p[1] - 1e-4
    np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_local_checkpoint_through_file_spec(tmp_path):
    import open_clip
    import torch

    torch.manual_seed(123)
    model = open_clip.create_model("ViT-S-32-alt")
    ckpt = tmp_path / "tiny_clip.pt"
    torch.save(model.state_dict(), ckpt)
    enc = create_encoder(f"clip:ViT-S-32-alt/file={ckpt}")
    from core.encoders.weights import file_sha256

    assert enc.id == f"clip:ViT-S-32-alt/sha256={file_sha256(ckpt)[:16]}+{enc.precision}"
    assert not enc.untrained
    texts = ["grilled fish", "a bowl of ramen with a soft egg"]
    got = enc.encode_texts(texts)
    tokens = open_clip.get_tokenizer("ViT-S-32-alt")(texts)
    with torch.inference_mode():  # the reference: the checkpoint's model, fp32, no autocast
        want = model.eval().encode_text(tokens).numpy()
    # the checkpoint's weights, not random ones (those give unrelated vectors, cosine near 0)
    assert_rows_agree(got, want, reference_min_cos(enc))


@pytest.mark.slow
def test_missing_weights_error_names_model_and_both_remedies(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"),
               XDG_CACHE_HOME=str(tmp_path / "xdg"), TORCH_HOME=str(tmp_path / "torch"))
    code = ("import sys; sys.path.insert(0, sys.argv[1])\n"
            "from core.encoders import create_encoder\n"
            "from core.errors import EncoderUnavailable\n"
            "for spec in ('clip:ViT-B-32/openai', 'text:all-mpnet-base-v2', 'cnn:resnet101'):\n"
            "    try:\n"
            "        create_encoder(spec).load()\n"
            "        print('LOADED', spec)\n"
            "    except EncoderUnavailable as exc:\n"
            "        print('ERR', exc)\n")
    out = subprocess.run([sys.executable, "-c", code, str(REPO)], capture_output=True, text=True,
                         env=env, timeout=120).stdout
    lines = [x for x in out.splitlines() if x.startswith(("ERR", "LOADED"))]
    assert len(lines) == 3 and all(x.startswith("ERR") for x in lines), out
    clip_msg = lines[0]
    assert "ViT-B-32/openai" in clip_msg and "network access" in clip_msg
    assert "clip:ViT-B-32/file=" in clip_msg and "No random-weight fallback" in clip_msg
    assert "text:/path/to/" in lines[1] and "resnet101" in lines[2]
