"""The image and text fast paths give the vectors of the plain paths (issue 12, part 5).

* pixels: the PIL steps per image + ``ToTensor``/``Normalize`` per batch in numpy hold the values of
  the encoder's whole torchvision transform (to float rounding);
* runtime: the image tower under ONNX Runtime (``MMREC_RUNTIME=auto``, fp32) against torch on the
  old per-image transform, and batch == one by one;
* JPEG draft decoding (DCT downscale at decode) against a full decode, on a large photo;
* CLIP text: the context trimmed to the batch's longest text against ``encode_text`` on all 77
  positions, plain and ``+chunk``.

Vectors are compared by cosine: ``FAST_MIN_COS`` where only float rounding differs (fp32) and
``reference_min_cos(enc)`` where the encoder may run in bf16 (``MMREC_BF16=1``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.encoders import create_encoder
from core.encoders.precision import INT8_MIN_COSINE
from core.encoders.runtime import read_image, split_transform
from core.errors import EncoderUnavailable
from tests.encoders.test_encoders import (
    SAME_INPUT_MIN_COS,
    _images,
    assert_rows_agree,
    reference_min_cos,
)

#: The same arithmetic in another order or runtime (fp32): float rounding only.
FAST_MIN_COS = 0.9999
#: A JPEG decoded at 1/2, 1/4 or 1/8 scale then resized, against a full decode then resized.
DRAFT_MIN_COS = 0.999


def _photo_like(folder: Path, size: tuple[int, int] = (1600, 1200)) -> Path:
    """A large JPEG with smooth shapes, edges and noise (what a phone photo looks like to a
    resampler), so draft decoding has something to lose."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(7)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([128 + 90 * np.sin(xx / 97), 110 + 80 * np.cos(yy / 71),
                     90 + 60 * np.sin((xx + yy) / 150)], -1)
    noisy = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    img = Image.fromarray(noisy)
    d = ImageDraw.Draw(img)
    for _ in range(40):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.integers(20, 200))
        d.ellipse([x - r, y - r, x + r, y + r],
                  fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    img = img.filter(ImageFilter.GaussianBlur(1.2))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "photo.jpg"
    img.save(path, quality=90)
    return path


def _old_path(enc, paths) -> np.ndarray:
    """The plain path: the whole transform per image on a full decode, stacked, torch, fp32."""
    import torch
    from PIL import Image

    batch = torch.stack([enc._preprocess(Image.open(p).convert("RGB")) for p in paths])
    return enc._run(enc._forward_images, batch, bf16=False)


@pytest.mark.parametrize("spec", ["cnn:efficientnet-lite0", "clip:ViT-S-32-alt/untrained"])
def test_pixel_pipeline_holds_the_transforms_values(tmp_path, spec):
    from PIL import Image

    enc = create_encoder(spec)
    enc.load()
    pipe = split_transform(enc._image_transform())
    assert pipe is not None, "the fast path no longer recognises this encoder's transform"
    paths = [*_images(tmp_path), _photo_like(tmp_path, (333, 517))]
    images = [Image.open(p).convert("RGB") for p in paths]
    want = np.stack([enc._preprocess(im).numpy() for im in images])  # (n, C, H, W)
    got = pipe.batch([pipe.pixels(im) for im in images]).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_split_transform_declines_what_it_does_not_know():
    from torchvision import transforms as T

    assert split_transform(None) is None
    assert split_transform(T.Compose([T.ToTensor()])) is None
    assert split_transform(T.Compose([T.ToTensor(), T.Resize(8), T.ToTensor(),
                                      T.Normalize((0.5,) * 3, (0.5,) * 3)])) is None


@pytest.mark.parametrize("spec", ["cnn:efficientnet-lite0", "clip:ViT-S-32-alt/untrained"])
def test_fast_path_equals_the_old_path_and_batch_equals_single(tmp_path, spec):
    enc = create_encoder(spec)
    paths = [*_images(tmp_path), _photo_like(tmp_path, (300, 260))]
    got = enc.encode_images(paths)
    report = enc.runtime_report
    assert report["runtime"] in ("onnxruntime", "torch") and report["reason"]
    if enc.precision == "bf16":
        assert report["runtime"] == "torch"
    assert_rows_agree(got, _old_path(enc, paths), reference_min_cos(enc))
    single = np.concatenate([enc.encode_images([p]) for p in paths])
    assert_rows_agree(got, single, SAME_INPUT_MIN_COS)
    torch_enc = enc.with_runtime("torch")
    assert torch_enc is not enc and torch_enc.id == enc.id  # same vectors, same cache rows
    assert_rows_agree(torch_enc.encode_images(paths), got, SAME_INPUT_MIN_COS)
    assert torch_enc.runtime_report["runtime"] == "torch"


@pytest.mark.parametrize("spec", ["cnn:efficientnet-lite0", "clip:ViT-S-32-alt/untrained"])
def test_onnxruntime_agrees_with_torch(tmp_path, spec):
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed: torch runs the towers")
    pytest.importorskip("onnx", reason="onnx not installed: the tower cannot be exported")
    enc = create_encoder(spec + "+fp32").with_runtime("onnx")
    paths = _images(tmp_path)
    got = enc.encode_images(paths)
    assert enc.runtime_report["runtime"] == "onnxruntime"
    assert enc.runtime_report["min_cosine"] >= FAST_MIN_COS
    assert_rows_agree(got, _old_path(enc, paths), FAST_MIN_COS)
    # batches of another size through the same session
    parts = [b.vectors for b in enc.image_batches(paths, batch_size=2)]
    assert_rows_agree(np.concatenate(parts), got, FAST_MIN_COS)


@pytest.mark.parametrize("spec", ["cnn:efficientnet-lite0", "clip:ViT-S-32-alt/untrained"])
def test_full_batches_run_in_a_fixed_batch_session_that_agrees(tmp_path, spec):
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed: torch runs the towers")
    pytest.importorskip("onnx", reason="onnx not installed: the tower cannot be exported")
    enc = create_encoder(spec + "+fp32").with_runtime("onnx")
    enc.ort_image_batch = 2  # a fresh encoder (with_runtime): nothing else shares it
    paths = list(_images(tmp_path))
    paths = paths[:len(paths) - 1 + len(paths) % 2]  # an odd count: full batches, then one
    assert len(paths) >= 3
    batches = list(enc.image_batches(paths))
    assert [len(b.positions) for b in batches][-1] == 1
    report = enc.runtime_report
    assert report["fixed_batch"] == 2 and report["fixed_batch_min_cosine"] >= FAST_MIN_COS
    got = np.concatenate([b.vectors for b in batches])
    assert_rows_agree(got, _old_path(enc, paths), FAST_MIN_COS)


def test_int8_image_tower_agrees_with_fp32_and_is_its_own_identity(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed: +int8 needs it")
    pytest.importorskip("onnx", reason="onnx not installed: the tower cannot be exported")
    monkeypatch.delenv("MMREC_RUNTIME", raising=False)
    spec = "clip:ViT-S-32-alt/untrained"
    fp32, int8 = create_encoder(spec + "+fp32"), create_encoder(spec + "+int8")
    assert int8.id == fp32.id.removesuffix("+fp32") + "+int8"  # never the fp32 cache rows
    paths = _images(tmp_path)
    got, want = int8.encode_images(paths), fp32.encode_images(paths)
    report = int8.runtime_report
    assert report["runtime"] == "onnxruntime" and report["min_cosine"] >= INT8_MIN_COSINE
    assert_rows_agree(got, want, INT8_MIN_COSINE)
    # quantized, not fp32 under another name
    assert np.abs(got - want).max() > 1e-4
    # the text tower is not quantized: its vectors are fp32's
    texts = ["a bowl of ramen", "a red brick house"]
    assert_rows_agree(int8.encode_texts(texts), fp32.encode_texts(texts), SAME_INPUT_MIN_COS)


def test_int8_refuses_what_it_cannot_honour(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed: +int8 needs it")
    pytest.importorskip("onnx", reason="onnx not installed: the tower cannot be exported")
    from core.encoders import runtime

    paths = _images(tmp_path)[:1]
    spec = "clip:ViT-S-32-alt/untrained+int8"
    # vectors that disagree with fp32 beyond the threshold: refused, with the measured cosine
    monkeypatch.setattr(runtime, "INT8_MIN_COSINE", 1.5)
    vit = create_encoder(spec).with_runtime("auto")
    with pytest.raises(EncoderUnavailable, match=r"disagree with fp32 here \(smallest probe"):
        vit.encode_images(paths)
    # a tower where nothing was quantized: refused, not fp32 under another name
    monkeypatch.setattr(runtime, "quantize_int8", lambda model: (model, 0))
    with pytest.raises(EncoderUnavailable, match="this tower has none"):
        create_encoder(spec).with_runtime("auto").encode_images(paths)
    with pytest.raises(EncoderUnavailable, match="MMREC_RUNTIME=torch"):
        vit.with_runtime("torch").encode_images(paths)


def test_runtime_setting_is_read_and_checked(monkeypatch):
    monkeypatch.setenv("MMREC_RUNTIME", "torch")
    enc = create_encoder("cnn:efficientnet-lite0").with_runtime("torch")
    assert enc.image_runtime() == "torch"
    assert enc.runtime_report["reason"] == "MMREC_RUNTIME=torch"
    with pytest.raises(ValueError, match="runtime must be one of"):
        enc.with_runtime("tensorrt")
    monkeypatch.setenv("MMREC_RUNTIME", "fast please")
    with pytest.raises(EncoderUnavailable, match="MMREC_RUNTIME='fast please'"):
        create_encoder("cnn:efficientnet-lite0").with_runtime("auto")
    monkeypatch.setenv("MMREC_RUNTIME", "auto")
    bf16 = create_encoder("cnn:efficientnet-lite0+bf16").with_runtime("auto")
    assert bf16.image_runtime() == "torch" and "bf16" in bf16.runtime_report["reason"]
    with pytest.raises(EncoderUnavailable, match="only fp32"):
        bf16.with_runtime("onnx").image_runtime()


@pytest.mark.parametrize("spec", ["cnn:efficientnet-lite0", "clip:ViT-S-32-alt/untrained"])
def test_draft_decoding_keeps_the_vectors_of_a_full_decode(tmp_path, spec):
    enc = create_encoder(spec)
    path = _photo_like(tmp_path)
    draft = read_image(path, enc.image_draft)
    assert draft.size[0] < 1600 and min(draft.size) >= enc.image_draft  # it did scale down
    assert_rows_agree(enc.encode_images([path]), _old_path(enc, [path]),
                      min(DRAFT_MIN_COS, reference_min_cos(enc)))


@pytest.mark.parametrize("spec", ["clip:ViT-S-32-alt/untrained",
                                  "clip:ViT-S-32-alt/untrained+chunk"])
def test_clip_text_trimmed_context_equals_the_full_context(spec):
    import torch

    enc = create_encoder(spec)
    texts = ["ramen", "a bowl of ramen with a soft egg and too much salt",
             "the noodles were great " * 30, "", "sushi " * 12]
    got = enc.encode_texts(texts)
    assert enc._trim_ok, "the trimmed context no longer matches this open_clip's encode_text"
    tok = enc._tokenizer
    if enc.chunk_long_texts:
        rows, owner = enc._chunk_tokens(texts)
        with torch.inference_mode():
            feats = torch.nn.functional.normalize(enc._model.encode_text(rows).float(), dim=-1)
        want = torch.zeros((len(texts), feats.shape[1])).index_add_(0, owner, feats).numpy()
    else:
        with torch.inference_mode():
            want = enc._model.encode_text(tok(texts)).numpy()
    assert_rows_agree(got, want, reference_min_cos(enc))
    # order kept although the encoder sorts by length; one by one gives the same rows
    single = np.concatenate([enc.encode_texts([t]) for t in texts])
    assert_rows_agree(got, single, SAME_INPUT_MIN_COS)
