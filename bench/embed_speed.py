"""Embedding speed: a naive loop against our pipeline, and a cold against a warm cache.

On the same 256 photos (the demo generator's, and the first 256 MovieLens posters of
``../shared/datasets/movielens-100k-posters`` when present, skipped otherwise):

* images, for ``clip:ViT-B-32/untrained`` (same compute as the real ViT-B-32) and
  ``cnn:efficientnet-lite0``: naive = one image at a time, fp32, ``Image.open`` inside the loop,
  the model built the plain way under ``torch.no_grad()`` with torch's defaults; ours =
  ``Encoder.image_batches`` (PIL steps in decode threads, ``ToTensor``/``Normalize`` once per batch,
  the tower in ONNX Runtime when installed, else torch; fp32 unless ``MMREC_BF16`` says otherwise,
  see ``core.encoders.runtime``), and the same pipeline with ``MMREC_RUNTIME=torch`` (on the first
  ``--naive`` photos) to show what the runtime adds; and ``spec+int8`` (the image tower's matrix
  products quantized, ``core.encoders.runtime.quantize_int8``) where the encoder takes it, with its
  smallest cosine against fp32 over the set (a refusal is printed with its reason). Naive and ours
  alternate for ``--rounds``
  rounds; the best round of each counts (background load hits both alike);
* beside them: the model's GFLOP per image (counted by torch's ``FlopCounterMode``, 2 per
  multiply-add), the achieved GFLOP/s, and that as a share of the machine's fp32 matmul GFLOP/s
  (2048², measured in each round beside them, best kept) — the distance to the hardware;
* texts (256 demo reviews), for the CLIP text tower and MiniLM: one text at a time against
  ``encode_texts`` (longest first, so batches hold texts of one length; CLIP's context trimmed to
  the batch's longest text);
* ``embed_dataset`` over the demo (photos with EfficientNet-Lite0, reviews and item texts with
  MiniLM): cold cache, then the same command again (warm).

Prints items/s and ratios; targets on a 2-core CPU: images ≥ 3× naive, texts ≥ 2× naive, warm ≥ 50×
cold. The 1-minute load average is printed: above ~2 on 2 cores other processes share the CPU.

    python -m bench.embed_speed [--naive 48] [--rounds 2] [--demo mini|full] [--skip-posters]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

N_PHOTOS = 256
POSTERS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / \
    "movielens-100k-posters" / "posters"


def _demo_photos(folder: Path) -> tuple[list[str], list[str], Path]:
    from core.data.demo import generate_demo

    root = generate_demo(folder, seed=42, n_businesses=60, n_users=200, n_photos=N_PHOTOS)
    photos = sorted(str(p) for p in (root / "photos").glob("*.jpg"))[:N_PHOTOS]
    texts = []
    with open(root / "yelp_academic_dataset_review.json", encoding="utf-8") as f:
        for line in f:
            texts.append(json.loads(line)["text"])
            if len(texts) == N_PHOTOS:
                break
    return photos, texts, root


def _naive_model(spec: str):
    """The model built the plain way, with its preprocessing: (forward(x), preprocess)."""
    import torch

    if spec.startswith("clip:"):
        import open_clip

        torch.manual_seed(0)
        model, _, pre = open_clip.create_model_and_transforms("ViT-B-32", pretrained=None)
        model.eval()
        return model.encode_image, pre, model
    import timm
    from torchvision import transforms as T

    from core.encoders.cnn import convert_lite0_state_dict, efficientnet_lite0_file

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
    sd = torch.load(efficientnet_lite0_file(), map_location="cpu", weights_only=True)
    model.load_state_dict(convert_lite0_state_dict(sd, model.state_dict()))
    model.eval()
    pre = T.Compose([T.Resize(256, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224),
                     T.ToTensor(), T.Normalize((0.5,) * 3, (0.5,) * 3)])
    return model, pre, model


def naive_images(spec: str, paths: list[str], model=None) -> float:
    """items/s of the naive loop over ``paths`` (``model``: a ``_naive_model`` to reuse)."""
    import torch
    from PIL import Image

    forward, pre, _ = model or _naive_model(spec)
    with torch.no_grad():
        forward(pre(Image.open(paths[0]).convert("RGB")).unsqueeze(0))  # warm-up
        t0 = time.perf_counter()
        for p in paths:
            v = forward(pre(Image.open(p).convert("RGB")).unsqueeze(0))
            v = v / v.norm(dim=-1, keepdim=True)
    return len(paths) / (time.perf_counter() - t0)


def gflop_per_image(spec: str, model=None) -> float:
    """The image tower's GFLOP for one 224² image (torch's ``FlopCounterMode``: convolutions and
    matmuls, 2 FLOP per multiply-add; elementwise work not counted)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    forward, _, _ = model or _naive_model(spec)
    counter = FlopCounterMode(display=False)
    with counter:  # autograd on: nn.MultiheadAttention's fused path would hide its matmuls
        forward(torch.zeros(1, 3, 224, 224))
    return counter.get_total_flops() / 1e9


def _encoder(spec: str, runtime: str | None = None):
    """A fresh encoder, loaded, its runtime chosen (ONNX export included) and warmed up."""
    from core.encoders import create_encoder

    enc = create_encoder(spec).with_runtime(runtime or "auto")
    enc.image_runtime()
    return enc


def ours_images(enc, paths: list[str]) -> float:
    for _ in enc.image_batches(paths[:32]):  # warm-up (oneDNN primitives, ORT arenas)
        pass
    t0 = time.perf_counter()
    n = 0
    for batch in enc.image_batches(paths):
        n += len(batch.positions) + len(batch.bad)
    return n / (time.perf_counter() - t0)


def naive_texts(spec: str, texts: list[str]) -> float:
    import torch

    if spec.startswith("clip:"):
        import open_clip

        torch.manual_seed(0)
        model = open_clip.create_model("ViT-B-32", pretrained=None).eval()
        tok = open_clip.get_tokenizer("ViT-B-32")
        fn = lambda t: model.encode_text(tok([t]))  # noqa: E731
    else:
        from sentence_transformers import SentenceTransformer

        from core.encoders.text import minilm_folder

        st = SentenceTransformer(str(minilm_folder()), device="cpu")
        fn = lambda t: st.encode([t], convert_to_numpy=True)  # noqa: E731
    with torch.no_grad():
        fn(texts[0])
        t0 = time.perf_counter()
        for t in texts:
            fn(t)
    return len(texts) / (time.perf_counter() - t0)


def ours_texts(spec: str, texts: list[str]) -> float:
    from core.encoders import create_encoder

    enc = create_encoder(spec)
    enc.encode_texts(texts[:64])  # load + warm-up
    t0 = time.perf_counter()
    enc.encode_texts(texts)
    return len(texts) / (time.perf_counter() - t0)


def _row(label: str, naive: float, ours: float, unit: str = "/s") -> str:
    return (f"  {label:<42} naive {naive:7.1f}{unit}   ours {ours:7.1f}{unit}   "
            f"ratio {ours / naive:5.1f}x")


def _load() -> str:
    try:
        return f"load {os.getloadavg()[0]:.1f}"
    except OSError:  # pragma: no cover - not Unix
        return "load ?"


def _best_of(rounds: int, *timers) -> list[float]:
    """Run the timers in turn, ``rounds`` times; the best rate of each."""
    best = [0.0] * len(timers)
    for _ in range(max(1, rounds)):
        for i, timer in enumerate(timers):
            best[i] = max(best[i], timer())
    return best


def images(sets, n_naive: int, rounds: int) -> tuple[list[float], list[float]]:
    """Print the image rows; return ours/naive per (encoder, set), fp32 then ``+int8`` (where
    the encoder takes it)."""
    from bench._machine import matmul_gflops

    ratios: list[float] = []
    int8_ratios: list[float] = []
    for spec in ("clip:ViT-B-32/untrained", "cnn:efficientnet-lite0"):
        model = _naive_model(spec)
        gflop = gflop_per_image(spec, model)
        enc, torch_enc = _encoder(spec), _encoder(spec, "torch")
        int8 = _int8_encoder(spec)
        print(f"  {spec}: {gflop:.2f} GFLOP/image; ours runs in {enc.image_runtime()} "
              f"({enc.runtime_report.get('reason')}), {enc.precision}", flush=True)
        for label, paths in sets:
            # the matmul probe runs in every round too, so the share is taken under the same load
            timers = [lambda: naive_images(spec, paths[:n_naive], model),
                      lambda: ours_images(enc, paths),
                      lambda: ours_images(torch_enc, paths[:n_naive]),
                      lambda: matmul_gflops(2048, 2048, 2048)]
            if int8 is not None:
                timers.append(lambda: ours_images(int8, paths))
            naive, ours, ours_torch, matmul, *rest = _best_of(rounds, *timers)
            ratios.append(ours / naive)
            print(_row(f"{spec} · {label}", naive, ours, " img/s") +
                  f"   (torch pipeline {ours_torch:.1f} img/s, {ours_torch / naive:.1f}x; "
                  f"{_load()})", flush=True)
            print(f"  {'':<42} GFLOP/s: naive {naive * gflop:6.1f} = {naive * gflop / matmul:4.0%}"
                  f", ours {ours * gflop:6.1f} = {ours * gflop / matmul:4.0%} of the fp32 matmul "
                  f"({matmul:.0f} GFLOP/s at 2048², best of the same rounds)", flush=True)
            if int8 is not None:
                cosine = _min_cosine(int8, enc, paths)
                int8_ratios.append(rest[0] / naive)
                print(_row(f"{spec}+int8 · {label}", naive, rest[0], " img/s") +
                      f"   (min cosine with fp32 over the {len(paths)} photos {cosine:.4f})",
                      flush=True)
    return ratios, int8_ratios


def _int8_encoder(spec: str):
    """``spec+int8`` ready to time, or None where it is refused (printed with the reason)."""
    from core.errors import EncoderUnavailable

    try:
        return _encoder(spec + "+int8")
    except EncoderUnavailable as exc:
        print(f"  {spec}+int8: refused ({exc})", flush=True)
        return None


def _min_cosine(a, b, paths: list[str]) -> float:
    """Smallest cosine between the vectors two encoders give the same photos."""
    from core.encoders.runtime import min_row_cosine

    return min_row_cosine(a.encode_images(paths), b.encode_images(paths))


def cold_warm(ds, cache: Path) -> list[str]:
    """``embed_dataset`` cold then warm, for the two default encoders; lines to print."""
    from core.store import embed_dataset

    lines = []
    total_cold = total_warm = 0.0
    for spec in ("cnn:efficientnet-lite0", "text:minilm"):
        t0 = time.perf_counter()
        embed_dataset(ds, spec, cache, progress=False)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        rep = embed_dataset(ds, spec, cache, progress=False)
        warm = time.perf_counter() - t0
        assert all(p["computed"] == 0 for p in rep.parts), "warm run encoded something"
        total_cold += cold
        total_warm += warm
        lines.append(f"  embed {spec:<30} cold {cold:8.2f} s   warm {warm:6.3f} s   "
                     f"ratio {cold / warm:7.1f}x")
    lines.append(f"  embed (both encoders)                 cold {total_cold:8.2f} s   warm "
                 f"{total_warm:6.3f} s   ratio {total_cold / total_warm:7.1f}x  (target ≥ 50x)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.embed_speed", description=__doc__)
    parser.add_argument("--naive", type=int, default=48,
                        help="images/texts timed in the naive loop (a rate; fewer = faster)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="naive and ours alternate this many times; the best of each counts")
    parser.add_argument("--demo", choices=["mini", "full"], default="mini",
                        help="cold/warm embed over the 256-photo mini demo or the full demo")
    parser.add_argument("--skip-posters", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from bench._machine import matmul_gflops
    from core.encoders.precision import env_precision
    from core.encoders.runtime import cpu_has_native_bf16, env_runtime, n_cpus, setup_torch

    setup_torch()  # the threads the encoders use, so the matmul figure is measured alike
    matmul = matmul_gflops(2048, 2048, 2048, seconds=2.0)
    print(f"embed_speed: {n_cpus()} CPU cores, native bf16: {cpu_has_native_bf16()}, "
          f"precision: {env_precision()} (MMREC_BF16), runtime: {env_runtime()} (MMREC_RUNTIME); "
          f"fp32 matmul {matmul:.0f} GFLOP/s at 2048²; {_load()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="embed-bench-") as tmp:
        tmp_path = Path(tmp)
        photos, texts, demo_root = _demo_photos(tmp_path / "demo")
        sets = [("demo photos", photos)]
        if not args.skip_posters and POSTERS.is_dir():
            posters = sorted(str(p) for p in POSTERS.glob("*.jpg"))[:N_PHOTOS]
            sets.append(("movielens posters", posters))
        else:
            print(f"  (posters skipped: {POSTERS} not found)")
        print(f"images ({N_PHOTOS} per set; naive loop timed on the first {args.naive}; best of "
              f"{args.rounds} alternating rounds):")
        ratios, int8_ratios = images(sets, args.naive, args.rounds)
        print(f"texts ({len(texts)} demo reviews; naive loop timed on the first {args.naive}):")
        text_ratios = []
        for spec in ("clip:ViT-B-32/untrained", "text:minilm"):
            naive, ours = _best_of(args.rounds, lambda: naive_texts(spec, texts[:args.naive]),
                                   lambda: ours_texts(spec, texts))
            text_ratios.append(ours / naive)
            print(_row(f"{spec} text", naive, ours, " txt/s") + f"   ({_load()})", flush=True)
        after = matmul_gflops(2048, 2048, 2048, seconds=2.0)
        int8_line = (f", +int8 where taken: min {min(int8_ratios):.1f}x" if int8_ratios else "")
        print(f"image pipeline vs naive: min {min(ratios):.1f}x in fp32{int8_line} (target ≥ 3x); "
              f"texts: min {min(text_ratios):.1f}x (target ≥ 2x); fp32 matmul {matmul:.0f} "
              f"GFLOP/s before, {after:.0f} after", flush=True)

        print(f"embed_dataset, cold vs warm cache ({args.demo} demo):")
        if args.demo == "full":
            from core.data import load_dataset

            ds = load_dataset("demo", cache_dir=tmp_path / "cache")
        else:
            from core.data import LoadOptions
            from core.data.yelp import load_yelp

            ds = load_yelp(demo_root, LoadOptions(), name="demo-mini")
        print(f"  {len(ds.photos)} photos, {len(ds.interactions)} reviews, {ds.n_items} items")
        for line in cold_warm(ds, tmp_path / "cache"):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
