"""Training time of the multimodal backbones (lightgcn, vbpr, freedom, fusion) on the demo.

Target (issue 11): each row trains in under 2 minutes on the demo on 2 cores with its item
features cached, tuning included (the whole grid, each trial with early stopping on validation
nDCG@10), as ``python -m core evaluate --preset multimodal`` fits it.

Printed per row: fit seconds, trials, epochs trained over all trials, epochs/s and train pairs/s
(pairs × epochs / s), the picked hyperparameters and the validation nDCG@10; beside them, in the
same run, ALS's fit (implicit, tuned the same way) and the machine's fp32 matmul GFLOP/s.

    python -m bench.backbones_speed [--cache-dir DIR] [--rows lightgcn,vbpr,freedom,fusion]
        [--max-users N]

The cache directory defaults to ``$MMREC_CACHE_DIR`` or ``./cache``; on a fresh clone the demo is
generated and its reviews and photos embedded first (printed apart as preparation, a few minutes).
"""

from __future__ import annotations

import argparse
import os
import time

TARGET_S = 120.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backbones_speed",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--rows", default="lightgcn,vbpr,freedom,fusion")
    parser.add_argument("--max-users", type=int, default=None,
                        help="a sparser slice of the demo (as evaluate --max-users)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    from bench._machine import matmul_gflops
    from core.config import DEFAULT_SEED, cache_dir
    from core.data import LoadOptions
    from core.encoders.runtime import n_cpus
    from core.lab.data import fit_context, load, provider, split_of
    from core.recommenders import create_recommender
    from core.recommenders.representations import item_photo_vectors, item_text_vectors

    root = cache_dir(args.cache_dir)
    options = LoadOptions(max_users=args.max_users) if args.max_users else None
    data = load("demo", root, options)
    split = split_of(data, "random", DEFAULT_SEED)
    encoders = {"text": "text:minilm", "image": "cnn:efficientnet-lite0"}
    ctx = fit_context(data, split, provider(data, root, True), encoders, {}, DEFAULT_SEED)
    n_pairs = ctx.train_csr.nnz
    n_users, n_items = ctx.train_csr.shape
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"backbones_speed: {n_cpus()} CPU cores, torch threads {torch.get_num_threads()}, "
          f"device {device}; demo: {n_users} users × {n_items} items, {n_pairs:,} train pairs")
    t0 = time.perf_counter()
    item_text_vectors(ctx, encoders["text"])
    item_photo_vectors(ctx, encoders["image"])
    prep = time.perf_counter() - t0
    print(f"  item features (text:minilm, cnn:efficientnet-lite0) ready in {prep:.1f} s"
          + ("  (embedded now: preparation, not part of the target)" if prep > 5 else ""))
    print(f"  machine: fp32 matmul {matmul_gflops(2048, 2048, 2048):.1f} GFLOP/s at 2048², "
          f"{matmul_gflops(2048, 64, 1500):.1f} GFLOP/s at a batch × 64 × items product")
    t0 = time.perf_counter()
    als = create_recommender("als").fit(ctx)
    print(f"  reference: ALS (implicit, 6-trial grid) fit {time.perf_counter() - t0:.1f} s, "
          f"validation nDCG@10 {max(t['ndcg@10'] for t in als.params['tuning']['trials']):.4f}")
    status = 0
    for name in [r.strip() for r in args.rows.split(",") if r.strip()]:
        t0 = time.perf_counter()
        model = create_recommender(name).fit(ctx)
        secs = time.perf_counter() - t0
        trials = model.params["tuning"]["trials"]
        epochs = sum(t["epochs_run"] for t in trials)
        best = max(trials, key=lambda t: t.get("ndcg@10", 0.0))
        picked = {k: model.params[k] for k in best if k in model.grid}
        ok = secs < TARGET_S
        status |= 0 if ok else 1
        print(f"  {name:<9} fit {secs:6.1f} s ({TARGET_S / secs:4.1f}× under the "
              f"{TARGET_S:.0f} s target{'' if ok else ': ** OVER **'}): {len(trials)} trials, "
              f"{epochs} epochs, {epochs / secs:5.1f} epochs/s, {n_pairs * epochs / secs:9,.0f} "
              f"pairs/s; picked {picked}, validation nDCG@10 {best.get('ndcg@10', 0.0):.4f}",
              flush=True)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
