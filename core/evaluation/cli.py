"""The ``evaluate`` and ``recommend`` commands of ``python -m core`` (parsing lives in __main__)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from typing import Any, TextIO

import numpy as np
import pandas as pd

from core.errors import LabError
from core.evaluation.experiment import (
    DEFAULT_TECHNIQUES,
    ExperimentResult,
    audit_note,
    wide_table,
)
from core.evaluation.metrics import METRIC_LABELS, METRICS
from core.recommenders.spec import TechniqueSpec, as_specs, parse_techniques


def parse_ks(text: str) -> list[int]:
    """``"10,20,30"`` -> ``[10, 20, 30]``; ``LabError`` naming ``--k`` on bad input."""
    try:
        ks = sorted({int(x) for x in str(text).split(",") if x.strip()})
    except ValueError:
        raise LabError(f"--k must be comma-separated positive integers, got {text!r}") from None
    if not ks or ks[0] < 1:
        raise LabError(f"--k must be comma-separated positive integers, got {text!r}")
    return ks


def _split_list(text: str | None) -> list[str]:
    return [x.strip() for x in (text or "").split(",") if x.strip()]


#: Roles whose flag falls back to the documented default encoder (``core.encoders``'
#: ``DEFAULT_TEXT_ENCODER``, ``DEFAULT_IMAGE_ENCODER``) when a requested technique needs it. CLIP
#: has no default: clip-t*/multiview without ``--encoder`` are skipped with a reason naming it.
DEFAULT_ROLES = ("text", "image")
#: Exit status of ``evaluate`` when no technique produced results (engine errors exit with 2).
EXIT_NO_RESULTS = 3


def encoders_from_args(
    args: argparse.Namespace, techniques: Iterable[str | TechniqueSpec] = ()
) -> dict[str, str]:
    """Role -> encoder spec from ``--encoder`` (clip), ``--text-encoder``, ``--image-encoder``;
    a role that one of the rows ``techniques`` needs (``DEFAULT_ROLES``), that no flag names and
    that the row's params do not choose gets its documented default."""
    from core.encoders import DEFAULT_IMAGE_ENCODER, DEFAULT_TEXT_ENCODER
    from core.recommenders import get_technique

    defaults = {"text": DEFAULT_TEXT_ENCODER, "image": DEFAULT_IMAGE_ENCODER}
    out = {}
    for role, attr in (("clip", "encoder"), ("text", "text_encoder"), ("image", "image_encoder")):
        value = getattr(args, attr, None)
        if value:
            out[role] = value
    for row in as_specs(techniques):
        cls = get_technique(row.technique)
        chosen = cls.row_encoders(row.params, {})  # roles the row's own params pick
        for role in sorted(cls.needs):
            if role not in out and role not in chosen and role in DEFAULT_ROLES:
                out[role] = defaults[role]
    return out


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Run-wide options (``FitContext.options``) from the evaluate flags."""
    opts: dict[str, Any] = {}
    for key in ("min_rating", "photo_filter", "review_filter"):
        value = getattr(args, key, None)
        if value is not None:
            opts[key] = value
    return opts


def format_table(
    result: ExperimentResult, metrics: list[str] | None = None, ci: pd.DataFrame | None = None
) -> str:
    """Human-readable table (rows techniques, columns metric@k, n_users) plus notes on skipped
    techniques, cold users and timings. With ``ci`` (``core.evaluation.bootstrap``), a last column
    gives each technique's difference to the baseline with its 95% CI (nDCG at the first k)."""
    lines = []
    meta = result.meta
    split = meta.get("split", {})
    no_seed = split.get("kind") in ("temporal", "file")  # a time cut, the file's own labels
    seed = "" if no_seed else f"seed {meta.get('seed')}: "
    lines.append(
        f"dataset {meta.get('dataset')} | split {split.get('kind')} ({seed}"
        f"train {split.get('train')}, valid {split.get('valid')}, test {split.get('test')}) | "
        f"{meta.get('n_users')} users evaluated over {meta.get('n_items')} items"
    )
    if split.get("cold_start_users"):
        lines.append(f"note: the file split leaves out the {split['cold_start_interactions']} "
                     f"valid/test interaction(s) of {split['cold_start_users']} user(s) without "
                     "train interactions (as MMRec does)")
    lines.extend(f"note: {n}" for n in meta.get("notes", []))
    wide = wide_table(result.metrics, metrics)
    if wide.empty:
        lines.append("no technique produced results")
    else:
        labels = meta.get("labels", {})
        enc = result.metrics.groupby("technique", sort=False)["encoder"].first()
        names = [labels.get(t, t) + (f" [{enc[t]}]" if enc.get(t) else "") for t in wide.index]
        cols = [c for c in wide.columns if c != "n_users"]
        width = max(len("technique"), *(len(n) for n in names))
        ci_head, ci_cells = _ci_column(ci, wide.index, metrics)
        blocks = _column_blocks(cols, width)
        for b, block in enumerate(blocks):
            last = ci_head and b == len(blocks) - 1
            heads = [_col_label(c) for c in block]
            cw = [max(7, len(h)) for h in heads]
            lines.append("")
            lines.append(f"{'technique':<{width}}  " + "  ".join(
                f"{h:>{w}}" for h, w in zip(heads, cw)) + f"  {'n_users':>7}"
                + (f"  {ci_head}" if last else ""))
            for name, (tech, row) in zip(names, wide.iterrows()):
                cells = "  ".join(f"{row[c]:>{w}.4f}" for c, w in zip(block, cw))
                lines.append(f"{name:<{width}}  {cells}  {int(row['n_users']):>7}"
                             + (f"  {ci_cells.get(tech, '')}" if last else ""))
        if ci_head:
            lines.append("* = the 95% CI excludes 0")
        lines.append("")
    if meta.get("audit"):
        lines.append(audit_note(meta["audit"]))
    if len(result.skipped):
        by_reason: dict[str, list[str]] = {}  # rows skipped for the same reason share one line
        for r in result.skipped.itertuples():
            by_reason.setdefault(r.reason, []).append(r.technique)
        for reason, names in by_reason.items():
            lines.append(f"skipped: {', '.join(names)} ({reason})")
    counts = sorted(set(result.cold_users.values()))
    if counts and counts != [0]:
        fallbacks = meta.get("fallbacks", {})
        by_text: dict[str, list[str]] = {}
        for t in result.cold_users:
            by_text.setdefault(fallbacks.get(t, "?"), []).append(t)
        n = "/".join(str(c) for c in counts)
        lines.append(f"cold users (no train history): {n} of {meta.get('n_users')}, given the "
                     "fallback: " + "; ".join(f"{', '.join(ts)}: {text}"
                                              for text, ts in by_text.items()))
    else:
        lines.append("cold users (no train history): 0")
    if result.timings:
        lines.append("time: " + ", ".join(
            f"{t} fit {v['fit_s']:.1f}s + eval {v['eval_s']:.1f}s"
            for t, v in result.timings.items()))
    picked = [f"{t} " + ", ".join(f"{k}={v}" for k, v in p.items()
                                  if k != "tuning" and k in _searched(p["tuning"], p))
              for t, p in result.params.items() if isinstance(p, dict) and "tuning" in p]
    picked += [f"{t} {_blend_choice(p)}" for t, p in result.params.items()
               if isinstance(p, dict) and isinstance(p.get("best_single"), dict)]
    if picked:
        lines.append("picked on validation: " + "; ".join(picked))
    return "\n".join(lines)


def _blend_choice(params: dict[str, Any]) -> str:
    """A hybrid's validation choice: a blend (content technique, weight, gain over the better single
    part and its standard error) or a single part, and why."""
    from core.evaluation.bootstrap import format_number

    weight = float(params.get("weight") or 0.0)
    single = params["best_single"]
    best = params.get("best_blend")
    if not isinstance(best, dict):
        return (f"{single['part']} alone (validation nDCG@10 {format_number(single['ndcg@10'])}; "
                "no blend did better)")
    gain, se = float(best.get("gain", float("nan"))), float(best.get("standard_error", "nan"))
    figures = (f"validation nDCG@10 gain {format_number(gain, signed=True)} over "
               f"{best.get('over')} alone, standard error {format_number(se)}")
    if 0.0 < weight < 1.0:
        return f"content={params.get('content')}, weight={params.get('weight')} ({figures})"
    return (f"{single['part']} alone (best blend content={best.get('content')}, "
            f"weight={best.get('weight')}: {figures}, not above one standard error)")


def _searched(tuning: Any, params: dict[str, Any]) -> set[str]:
    """The hyperparameters a validation search varied (all params if the record says nothing)."""
    trials = tuning.get("trials") if isinstance(tuning, dict) else None
    if trials and isinstance(trials[0], dict):
        return {k for k in trials[0] if k in params}
    return set(params)


def _ci_column(
    ci: pd.DataFrame | None, techniques, metrics: list[str] | None
) -> tuple[str, dict[str, str]]:
    """Header and per-technique cells of the bootstrap CI column (nDCG, else the first shown
    metric, at the smallest k); ``("", {})`` without CIs."""
    if ci is None or ci.empty:
        return "", {}
    from core.evaluation.bootstrap import format_ci

    shown = [m for m in (metrics or METRICS) if m in set(ci["metric"])]
    if not shown:
        return "", {}
    metric = "ndcg" if "ndcg" in shown else shown[0]
    rows = ci[ci["metric"] == metric]
    k = int(rows["k"].min())
    rows = rows[rows["k"] == k]
    baseline = str(rows["baseline"].iloc[0])
    head = f"Δ {METRIC_LABELS.get(metric, metric)}@{k} vs {baseline} [95% CI]"
    cells = {r.technique: format_ci({"delta": r.delta, "ci_low": r.ci_low, "ci_high": r.ci_high})
             for r in rows.itertuples()}
    cells[baseline] = "(baseline)"
    return head, {t: cells.get(t, "") for t in techniques}


def _column_blocks(cols: list[str], name_width: int, max_width: int = 120) -> list[list[str]]:
    """Split metric@k columns into blocks (whole metrics) that fit ``max_width`` characters."""
    blocks: list[list[str]] = [[]]
    used = name_width + 11
    for metric in dict.fromkeys(c.partition("@")[0] for c in cols):
        group = [c for c in cols if c.partition("@")[0] == metric]
        need = sum(max(7, len(_col_label(c))) + 2 for c in group)
        if blocks[-1] and used + need > max_width:
            blocks.append([])
            used = name_width + 11
        blocks[-1].extend(group)
        used += need
    return blocks


def _col_label(col: str) -> str:
    metric, _, k = col.partition("@")
    return f"{METRIC_LABELS.get(metric, metric)}@{k}"


def _metric_filter(text: str | None) -> list[str] | None:
    names = _split_list(text)
    if not names:
        return None
    bad = [m for m in names if m not in METRICS]
    if bad:
        raise LabError(f"--metrics: unknown {bad}; choose from {', '.join(METRICS)}")
    return names


def evaluate_command(
    args: argparse.Namespace, load: Callable[[argparse.Namespace], Any], out: TextIO | None = None,
    identity: Callable[[argparse.Namespace, Any], str] | None = None,
) -> int:
    """``python -m core evaluate``: evaluate the rows through the run store and print the result
    as table, csv or json.

    Every row is one stored run in ``<cache>/runs.duckdb`` (``core.evaluation.recorded``): a run
    stored before for the same data, split, seed, options and encoder ids is reused (a ``reused
    stored run KEY: ROW`` line on stderr), the others are computed and stored (``stored run KEY:
    ROW``); ``--save-run DIR`` exports the stored runs. ``identity(args, dataset)`` is the data's
    identity in run keys (default: ``dataset_key`` of the spec with default load options).

    Returns 0, or ``EXIT_NO_RESULTS`` (with a line on stderr) when every technique was skipped."""
    from core.config import cache_dir
    from core.evaluation.experiment import save_run
    from core.evaluation.recorded import evaluate_recorded
    from core.store.runs import dataset_key

    out = out or sys.stdout
    ks = parse_ks(args.k)
    techniques = parse_techniques(args.techniques) or as_specs(DEFAULT_TECHNIQUES)
    which = _metric_filter(getattr(args, "metrics", None))
    preset = getattr(args, "preset", None)
    if preset:
        try:
            from core.evaluation.presets import apply_preset
        except ModuleNotFoundError as exc:
            if exc.name != "core.evaluation.presets":
                raise
            raise LabError(f"--preset {preset}: presets are not available yet") from None
        techniques, which = apply_preset(preset, args, techniques, which)
    ds = load(args)
    recorded = evaluate_recorded(
        ds, identity(args, ds) if identity else dataset_key(args.dataset, None, ds), args.split,
        techniques, ks, seed=args.seed, cache_root=cache_dir(args.cache_dir),
        encoders=encoders_from_args(args, techniques), options=options_from_args(args),
        progress=True, tune=not getattr(args, "no_tune", False),
    )
    result = recorded.result
    for label, key in recorded.keys.items():
        if label in recorded.reused or label in recorded.computed:
            done = "reused stored run" if label in recorded.reused else "stored run"
            print(f"{done} {key[:12]}: {label}", file=sys.stderr)
    from core.evaluation.presets import finish_run

    # encoder identities and filters into run.json; bootstrap CIs against --baseline
    ci = finish_run(result, getattr(args, "baseline", None), seed=args.seed, dataset=ds,
                    cache_root=cache_dir(args.cache_dir))
    notes = list(getattr(args, "preset_notes", None) or [])
    if notes:
        result.meta["notes"] = notes
    frame = result.metrics
    if which is not None and not (preset and not getattr(args, "metrics", None)):
        frame = frame[frame["metric"].isin(which)]  # a preset's json/csv keep every metric
    if ci is not None:
        frame = frame.merge(ci[["technique", "metric", "k", "baseline", "delta", "ci_low",
                                "ci_high"]], on=["technique", "metric", "k"], how="left")
    if args.format == "csv":
        frame.to_csv(out, index=False, float_format="%.6f")
    elif args.format == "json":
        rows = [{"technique": r.technique, "encoder": r.encoder, "metric": r.metric, "k": int(r.k),
                 "value": float(r.value), "n_users": int(r.n_users)} for r in frame.itertuples()]
        if ci is not None:  # the paired bootstrap difference to the baseline, where there is one
            for row, r in zip(rows, frame.itertuples()):
                if isinstance(r.baseline, str):
                    row.update(baseline=r.baseline, delta=float(r.delta),
                               ci_low=float(r.ci_low), ci_high=float(r.ci_high))
        json.dump(rows, out, indent=1)
        out.write("\n")
    else:
        out.write(format_table(result, which, ci) + "\n")
    if args.format != "table":
        for r in result.skipped.itertuples():
            print(f"skipped {r.technique}: {r.reason}", file=sys.stderr)
    if args.save_run:  # an export of the stored runs just read back
        path = save_run(result, args.save_run)
        print(f"stored runs exported to {path}", file=sys.stderr)
    if result.metrics.empty:
        print(f"error: no technique produced results ({len(result.skipped)} skipped, reasons "
              f"above); exit status {EXIT_NO_RESULTS}", file=sys.stderr)
        return EXIT_NO_RESULTS
    return 0


def recommend_command(
    args: argparse.Namespace, load: Callable[[argparse.Namespace], Any], out: TextIO | None = None
) -> int:
    """``python -m core recommend``: fit one technique on all interactions and print the top-n
    unseen items of one raw user id (names and scores)."""
    from core.config import cache_dir
    from core.progress import ConsoleProgress, stamped
    from core.recommenders import FitContext, get_technique

    out = out or sys.stdout
    if args.n < 1:
        raise LabError(f"-n must be at least 1, got {args.n}")
    cls = get_technique(args.technique)
    ds = load(args)
    if not ds.has_user(args.user):
        examples = ", ".join(str(u) for u in ds.user_ids[:3])
        raise LabError(f"{ds.name}: unknown user id {args.user!r} (user ids look like {examples})")
    user = ds.user_index(args.user)
    embeddings = None
    encoders = encoders_from_args(args, [args.technique])
    progress = stamped(ConsoleProgress(), lambda: args.technique)
    if cls.uses:
        from core.store import EmbeddingProvider

        embeddings = EmbeddingProvider(ds, cache_dir(args.cache_dir), progress=progress)
    ctx = FitContext(dataset=ds, train=ds.interactions, train_csr=ds.csr(), valid=None,
                     seed=args.seed, embeddings=embeddings, encoders=encoders,
                     options={"tune": False}, progress=progress)
    model = cls().fit(ctx)
    ids, scores = model.recommend(np.array([user]), args.n)
    keep = ids[0] >= 0
    items = ds.items.iloc[ids[0][keep]]
    frame = pd.DataFrame({
        "rank": np.arange(1, keep.sum() + 1), "item_id": items["item_id"].to_numpy(),
        "name": items["name"].to_numpy(), "score": scores[0][keep].astype(float),
    })
    history = int(ds.csr()[user].nnz)
    if args.format == "json":
        json.dump({"user_id": str(args.user), "technique": args.technique, "history": history,
                   "items": frame.to_dict(orient="records")}, out, indent=1)
        out.write("\n")
        return 0
    out.write(f"top {len(frame)} for user {args.user} by {cls.label or cls.name} "
              f"({history} items in history, seen items filtered)\n")
    if history == 0:
        out.write(f"note: no history, so this is the fallback: {cls.fallback}\n")
    width = max(4, *(len(str(n)) for n in frame["name"])) if len(frame) else 4
    out.write(f"{'rank':>4}  {'item_id':<24} {'name':<{width}}  {'score':>9}\n")
    for r in frame.itertuples():
        out.write(f"{r.rank:>4}  {str(r.item_id):<24} {str(r.name):<{width}}  {r.score:>9.4f}\n")
    return 0
