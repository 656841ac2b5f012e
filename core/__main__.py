"""The ``python -m core`` command line: demo, datasets, encoders, embed, cache, evaluate, runs,
recommend, search.

Each command parses its options, makes one call into the engine and prints the result. Engine
errors (``LabError``) are printed as one clear line and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.config import CACHE_ENV, DEFAULT_SEED
from core.errors import LabError


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache-dir", default=None,
                   help=f"cache directory (default ${CACHE_ENV} or ./cache)")


_REPEATS_HELP = (
    "repeated user-item pairs (a second review of one restaurant, a second purchase of one "
    "article): 'collapse' (default) makes them one interaction before any split (earliest "
    "copy's time, rating and review id; later texts appended); 'keep' keeps every copy, so one "
    "pair can sit in both train and test, where the test copy is masked as seen and can never "
    "be recommended, which deflates the metrics"
)


def _add_repeats(g: argparse._ActionsContainer) -> None:
    """The --repeats flag (LoadOptions.repeats), in a dataset filters group."""
    g.add_argument("--repeats", choices=["collapse", "keep"], default="collapse",
                   help=_REPEATS_HELP)


def _add_dataset(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--dataset", required=required, default=None if required else "demo",
                   help="dataset spec: demo, yelp:DIR, movielens:DIR, csv:CONFIG.toml, "
                        "mmrec:DIR")
    g = p.add_argument_group("dataset filters")
    g.add_argument("--categories", default=None,
                   help="comma-separated category substrings to keep (yelp default: "
                        "restaurants,food; 'all' keeps everything)")
    g.add_argument("--city", default=None, help="keep items in this city (yelp)")
    g.add_argument("--state", default=None, help="keep items in this state (yelp)")
    g.add_argument("--min-user", type=int, default=1, help="k-core: min interactions per user")
    g.add_argument("--min-item", type=int, default=1, help="k-core: min interactions per item")
    g.add_argument("--max-users", type=int, default=None,
                   help="keep at most this many users (sampled with --seed)")
    g.add_argument("--strict", action="store_true",
                   help="fail on the first malformed line instead of skipping and counting it")
    _add_repeats(g)


def _options(args: argparse.Namespace):
    from core.data import LoadOptions

    cats = None
    if args.categories:
        cats = () if args.categories.strip().lower() == "all" else tuple(
            c.strip() for c in args.categories.split(",") if c.strip())
    return LoadOptions(
        categories=cats, city=args.city, state=args.state,
        min_user_interactions=args.min_user, min_item_interactions=args.min_item,
        max_users=args.max_users, seed=getattr(args, "seed", DEFAULT_SEED) or DEFAULT_SEED,
        strict=args.strict, repeats=getattr(args, "repeats", "collapse"),
    )


def _load(args: argparse.Namespace):
    from core.data import load_dataset

    return load_dataset(args.dataset, cache_dir=args.cache_dir, options=_options(args))


# --- commands -----------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    from core.data.demo import generate_demo

    out = generate_demo(Path(args.out), seed=args.seed, progress=True, scale=args.scale)
    print(f"demo dataset written to {out}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from core.data import list_datasets

    if args.action == "list":
        for row in list_datasets():
            print(f"{row['spec']:<18} {row['description']}")
        return 0
    if not args.dataset:
        raise LabError("datasets describe needs a dataset spec, e.g. `datasets describe demo`")
    ds = _load(args)
    summary = ds.summary()
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        if isinstance(value, float):
            value = f"{value:.6f}"
        print(f"{key:<{width}}  {value}")
    for line in ds.report.warnings:
        print(f"warning: {line}")
    return 0


def cmd_encoders(args: argparse.Namespace) -> int:
    from core.encoders import list_encoders
    from core.encoders.precision import PRECISION_ENV, cpuinfo_bf16_flags, env_precision

    rows = list_encoders(check=not args.no_check)
    flags = cpuinfo_bf16_flags()
    print(f"precision: {env_precision()} for every spec without a +bf16/+fp32 suffix "
          f"({PRECISION_ENV}: 0/unset = fp32, 1 = bf16, auto = measure); native bf16 on this "
          f"CPU: {', '.join(flags) if flags else 'no (bf16 would be emulated, slower)'}")
    for row in rows:
        if row["available"] is None:
            state = row["reason"] or "not checked"
        else:
            state = "available" if row["available"] else f"unavailable: {row['reason']}"
        print(f"{row['spec']:<36} {','.join(row['modalities']):<11} {state}")
        if row.get("description"):
            print(f"{'':<36} {row['description']}")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from core.config import cache_dir
    from core.store import embed_dataset

    ds = _load(args)
    with _embed_engine(args) as engine:
        report = embed_dataset(ds, args.encoder, cache_dir(args.cache_dir),
                               modality=args.modality, progress=True,
                               batch_size=args.batch_size, engine=engine)
    for line in report.lines():
        print(line)
    return 0


def _embed_engine(args: argparse.Namespace):
    """``embed``'s engine as a context manager: None (in this process) or a ``RayEngine``."""
    from contextlib import nullcontext

    if args.engine != "ray":
        given = [flag for flag, value in (("--ray-address", args.ray_address),
                                          ("--ray-batch", args.ray_batch),
                                          ("--ray-actors", args.ray_actors)) if value is not None]
        if given:
            raise LabError(f"{', '.join(given)} only apply with --engine ray")
        return nullcontext(None)
    from core.store.ray_engine import RayEngine

    return RayEngine(address=args.ray_address, rows_per_shard=args.ray_batch,
                     actors=args.ray_actors)


def cmd_cache(args: argparse.Namespace) -> int:
    from core.config import cache_dir
    from core.store import cache_clear, cache_stats

    root = cache_dir(args.cache_dir)
    if args.action == "stats":
        print(cache_stats(root))
        return 0
    if not args.encoder and not args.all:
        raise LabError("cache clear needs --encoder SPEC (or --all)")
    removed = cache_clear(root, None if args.all else args.encoder)
    print(f"removed {removed} embedding rows")
    return 0


def _dataset_key(args: argparse.Namespace, ds) -> str:
    """The loaded data's identity in stored-run keys (the app's ``LabData.key`` for the same
    spec and filters)."""
    from core.store.runs import dataset_key

    return dataset_key(args.dataset, _options(args), ds)


def cmd_align(args: argparse.Namespace) -> int:
    import json

    from core.config import cache_dir
    from core.encoders.align.report import (
        DEFAULT_COMPARE,
        align_dataset,
        align_spec,
        format_report,
    )

    spec = align_spec(args.text_encoder, args.image_encoder, {
        "pairs": args.pairs, "dim": args.dim, "head": args.head, "epochs": args.epochs,
        "seed": args.heads_seed})
    compare = (DEFAULT_COMPARE if args.compare is None else
               [c.strip() for c in args.compare.split(",") if c.strip() and c.strip() != "none"])
    report = align_dataset(_load(args), spec, cache_dir(args.cache_dir), compare, progress=True)
    if args.format == "json":
        print(json.dumps({"spec": report.spec, "id": report.id, "reused": report.reused,
                          "info": report.info, "compared": report.compared}, indent=1,
                         default=str))
    else:
        print(format_report(report))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from core.evaluation.cli import evaluate_command

    return evaluate_command(args, _load, identity=_dataset_key)


def cmd_runs(args: argparse.Namespace) -> int:
    from core.evaluation.runs_cli import runs_command

    return runs_command(args)


def cmd_recommend(args: argparse.Namespace) -> int:
    from core.evaluation.cli import recommend_command

    return recommend_command(args, _load)


def cmd_search(args: argparse.Namespace) -> int:
    from core.config import cache_dir
    from core.lab.data import load
    from core.lab.search import run_search

    root = cache_dir(args.cache_dir)
    result = run_search(load(args.dataset, root, _options(args)), root, args.query,
                        mode=args.mode, encoders={"clip": args.encoder,
                                                  "text": args.text_encoder},
                        n=args.n, seed=args.seed, progress=True)
    hits = result.hits
    print(f"{len(hits)} results for {args.query!r} — {result.label} with {result.spec}")
    cols = {"rank": 4, "item_id": 22, "name": 28, "category": 16, "score": 6, "caption": 0}
    print("  ".join(f"{c:<{w}}" if w else c for c, w in cols.items()))
    for row in hits.itertuples(index=False):
        cells = [str(row.rank), str(row.item_id), str(row.name), str(row.category),
                 f"{row.score:.3f}", " ".join(str(row.caption or "").split())]
        print("  ".join(f"{v[:w]:<{w}}" if w else v for v, w in zip(cells, cols.values())))
    return 0


# --- parser -------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="write the synthetic Yelp-layout demo dataset")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--scale", type=int, default=1, metavar="N",
                   help="N regions, each the size of the demo (about 26k reviews): N times the "
                        "users, businesses, reviews and photos (photos at half size when N > 1)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("datasets", help="list dataset sources or describe one dataset")
    p.add_argument("action", choices=["list", "describe"])
    p.add_argument("dataset", nargs="?", default=None, help="dataset spec (describe)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    _add_common(p)
    g = p.add_argument_group("dataset filters")
    for flag, kw in (("--categories", {}), ("--city", {}), ("--state", {}),
                     ("--min-user", {"type": int, "default": 1}),
                     ("--min-item", {"type": int, "default": 1}),
                     ("--max-users", {"type": int})):
        g.add_argument(flag, **kw)
    g.add_argument("--strict", action="store_true")
    _add_repeats(g)
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("encoders", help="list encoder specs and whether their weights are here")
    p.add_argument("--no-check", action="store_true", help="do not probe for local weights")
    _add_common(p)
    p.set_defaults(func=cmd_encoders)

    p = sub.add_parser("embed", help="embed a dataset's photos and/or texts into the cache")
    _add_dataset(p)
    p.add_argument("--encoder", required=True, help="encoder spec, see `python -m core encoders`")
    p.add_argument("--modality", choices=["image", "text", "all"], default="all")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="where the inputs the cache lacks are encoded: in this process (local) "
                        "or on a Ray cluster (ray; pip install -e '.[distributed]')")
    g = p.add_argument_group("Ray engine (--engine ray; docs/distributed.md)")
    g.add_argument("--ray-address", default=None,
                   help="cluster to join, HEAD:6379 (default: $RAY_ADDRESS, else a local Ray on "
                        "this machine's cores)")
    g.add_argument("--ray-batch", type=int, default=None,
                   help="inputs per shard: one Ray batch, one Parquet file, one cache "
                        "transaction (default: from the cluster's size, 32-1024)")
    g.add_argument("--ray-actors", type=int, default=None,
                   help="encoder actors, one model each (default: one per GPU, else one per 4 "
                        "CPUs of each node)")
    _add_common(p)
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("cache", help="inspect or clear the embedding cache")
    p.add_argument("action", choices=["stats", "clear"])
    p.add_argument("--encoder", default=None, help="encoder spec whose rows to clear")
    p.add_argument("--all", action="store_true", help="clear every encoder's rows")
    _add_common(p)
    p.set_defaults(func=cmd_cache)

    p = sub.add_parser("align", help="train (or load) an align: space — a text and an image "
                       "encoder joined on the dataset's own pairs — and show its held-out "
                       "retrieval next to chance and CLIP")
    _add_dataset(p)
    p.add_argument("--text-encoder", default="text:minilm", help="text tower (default text:minilm)")
    p.add_argument("--image-encoder", default="cnn:efficientnet-lite0",
                   help="image tower (default cnn:efficientnet-lite0)")
    p.add_argument("--pairs", default=None,
                   help="pair sets joined by '+': caption, item, review (default caption+item)")
    p.add_argument("--dim", type=int, default=None,
                   help="shared dimension of linear/mlp heads (default 256)")
    p.add_argument("--head", choices=["locked", "linear", "mlp"], default=None,
                   help="locked (default): keep the text space, train an image head into it; "
                        "linear/mlp: a head per tower into --dim")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default 120)")
    p.add_argument("--heads-seed", type=int, default=None,
                   help="seed of the heads' weights, batches and 90/10 item split (default 0)")
    p.add_argument("--compare", default=None,
                   help="comma-separated shared-space encoders measured on the same held-out "
                        "pairs (default: clip:ViT-B-32/openai if its weights are here, and "
                        "clip:ViT-B-32/untrained; 'none' for none)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="dataset sampling seed")
    p.add_argument("--format", choices=["table", "json"], default="table")
    _add_common(p)
    p.set_defaults(func=cmd_align)

    p = sub.add_parser("evaluate", help="evaluate techniques on a split and print metric tables")
    _add_dataset(p)
    p.add_argument("--split", default="random",
                   choices=["random", "user", "temporal", "cold-item", "file"],
                   help="how to hold out interactions (default random); file: the dataset's own "
                        "split (mmrec: x_label)")
    p.add_argument("--techniques", default=None,
                   help="comma-separated rows: name or name:key=value,key=value "
                        "(default random,popular,als,bpr,itemknn)")
    p.add_argument("--preset", default=None, choices=["study", "multimodal"],
                   help="study: every row of the study's Table 1 the encoders allow; "
                        "multimodal: popular, als, lightgcn, vbpr, freedom, fusion, hybrid")
    p.add_argument("--ablations", action="store_true",
                   help="with --preset multimodal: add the w/o-text and w/o-image rows of vbpr, "
                        "freedom and fusion")
    p.add_argument("--k", default="10,20,30", help="comma-separated cut-offs")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--min-rating", type=float, default=None,
                   help="held-out interactions count as relevant only at or above this rating")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument("--metrics", default=None,
                   help="metrics shown in the table (default: all; the study preset: map,ndcg)")
    p.add_argument("--save-run", default=None,
                   help="also export the stored runs to this directory (recs/truth/metrics/items "
                        "parquet + run.json)")
    p.add_argument("--encoder", default=None, help="CLIP encoder spec (clip-t*, multiview)")
    p.add_argument("--text-encoder", default=None, help="text encoder spec (default text:minilm)")
    p.add_argument("--image-encoder", default=None,
                   help="image encoder spec (default cnn:efficientnet-lite0)")
    p.add_argument("--photo-filter", default=None, choices=["food"],
                   help="keep only food/drink photos (CLIP zero-shot label, or the dataset's own)")
    p.add_argument("--review-filter", default=None, choices=["positive"],
                   help="use only reviews with rating >= 4 in text representations")
    p.add_argument("--baseline", default=None,
                   help="technique to compare against with paired bootstrap 95%% CIs")
    p.add_argument("--no-tune", action="store_true",
                   help="skip hyperparameter search on validation (use defaults)")
    _add_common(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("runs", help="list, show or export the stored evaluation runs "
                                    "(<cache>/runs.duckdb, shared with the app)")
    p.add_argument("action", choices=["list", "show", "export"])
    p.add_argument("key", nargs="?", default=None,
                   help="run key, or a unique prefix of it as `runs list` shows (show, export)")
    p.add_argument("dir", nargs="?", default=None, help="output directory (export)")
    _add_common(p)
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("recommend", help="top-n recommendations for one user")
    _add_dataset(p)
    p.add_argument("--technique", required=True)
    p.add_argument("--user", required=True, help="raw user id")
    p.add_argument("-n", type=int, default=10)
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--encoder", default=None)
    p.add_argument("--text-encoder", default=None)
    p.add_argument("--image-encoder", default=None)
    p.add_argument("--format", choices=["table", "json"], default="table")
    _add_common(p)
    p.set_defaults(func=cmd_recommend)

    p = sub.add_parser("search", help="free-text search over a dataset's items: text → photos "
                       "in a shared image–text space, or text → item text")
    _add_dataset(p)
    p.add_argument("query", help="what to look for, e.g. 'spicy noodle soup'")
    p.add_argument("--mode", choices=["auto", "photos", "shared-text", "text"], default="auto",
                   help="photos: the shared space's text → photos; shared-text: the shared "
                        "space's text → item text; text: the text encoder's text → item text; "
                        "auto (default): photos when the shared space is trained (align:, or "
                        "CLIP with weights here), else text")
    p.add_argument("--encoder", default=None,
                   help="shared-space encoder (default: a CLIP whose weights are here, else "
                        "align:text:minilm+cnn:efficientnet-lite0, trained on first use)")
    p.add_argument("--text-encoder", default=None, help="text encoder (default text:minilm)")
    p.add_argument("-n", type=int, default=10, help="number of results")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED,
                   help="seed of the random split whose train reviews make item texts")
    _add_common(p)
    p.set_defaults(func=cmd_search)
    return parser


def _glue_dash_values(argv: list[str]) -> list[str]:
    """Yelp ids may start with '-' (``-1di...``); argparse would read them as flags."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok in ("--user", "--item") and i + 1 < len(argv) and argv[i + 1].startswith("-") \
                and not argv[i + 1].startswith("--"):
            out.append(f"{tok}={argv[i + 1]}")
            i += 2
            continue
        out.append(tok)
        i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(_glue_dash_values(argv))
    try:
        return int(args.func(args) or 0)
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: cached work is kept; run the same command again to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
