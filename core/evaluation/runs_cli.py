"""The ``runs`` command of ``python -m core``: list, show and export the stored evaluation runs
(``<cache>/runs.duckdb``, ``core.store.runs``), the ones ``evaluate`` and the app both record."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, TextIO

import pandas as pd

from core.errors import LabError
from core.evaluation.experiment import audit_note
from core.evaluation.metrics import METRIC_LABELS, METRICS

#: Characters of a run key shown by ``runs list`` (any unique prefix works for show / export).
KEY_CHARS = 12


def runs_command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """``python -m core runs list | show KEY | export KEY DIR``."""
    from core.config import cache_dir
    from core.store.runs import FILE_NAME, RunStore

    out = out or sys.stdout
    path = cache_dir(args.cache_dir) / FILE_NAME
    if args.action in ("show", "export") and not args.key:
        raise LabError(f"runs {args.action} needs a run key (or a unique prefix of one) from "
                       "`python -m core runs list`")
    if args.action == "export" and not args.dir:
        raise LabError("runs export needs an output directory: runs export KEY DIR")
    if not path.exists():
        if args.action == "list":
            out.write(f"no stored runs ({path} does not exist yet)\n")
            return 0
        raise LabError(f"{path}: no runs database here (run `python -m core evaluate` first, "
                       "or pass the --cache-dir it used)")
    store = RunStore(path)
    if args.action == "list":
        out.write(format_run_list(store.list_runs()) + "\n")
        return 0
    key = store.resolve(args.key)
    if args.action == "show":
        out.write(format_run(store, key) + "\n")
        return 0
    from core.evaluation.experiment import save_run
    from core.evaluation.recorded import stored_result

    label = store.runs_info([key])[key]["label"]
    saved = save_run(stored_result(store, {label: key}), args.dir)
    out.write(f"run {key[:KEY_CHARS]} ({label}) exported to {saved}\n")
    return 0


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(epoch)))


def _encoders(ids: dict[str, str]) -> str:
    return ", ".join(f"{role}={ident}" for role, ident in sorted(ids.items())) or "-"


def format_run_list(runs: pd.DataFrame) -> str:
    """One line per stored run: key prefix, dataset, split, seed, row, created, encoders (last,
    since a hybrid's three encoder ids are long)."""
    if runs.empty:
        return "no stored runs"
    rows = [(str(r.run_key)[:KEY_CHARS], str(r.dataset_name), str(r.split), str(int(r.seed)),
             str(r.label), _when(r.created), _encoders(json.loads(r.encoder_ids)))
            for r in runs.itertuples()]
    head = ("key", "dataset", "split", "seed", "row", "created", "encoders")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]

    def line(cells) -> str:
        return "  ".join(f"{c:>{w}}" if i == 3 else f"{c:<{w}}"
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(head), *(line(r) for r in rows)])


def _params(params: dict[str, Any]) -> str:
    plain = [f"{k}={v}" for k, v in params.items() if not isinstance(v, (dict, list))]
    other = [k for k, v in params.items() if isinstance(v, (dict, list))]
    return ", ".join(plain) + (f" (+ {', '.join(other)})" if other else "") or "none"


def format_run(store: Any, key: str) -> str:
    """The run ``key``: what it is (dataset, split, row, encoders, options), when it was made,
    its time, params, protocol audit and cold users, then its metrics (rows metric, columns k)."""
    run = store.runs_info([key])[key]
    info = run["info"]
    per_row = info.get("per_row", {})
    split = info.get("split") or {}
    sizes = ", ".join(f"{part} {split[part]}" for part in ("train", "valid", "test")
                      if part in split)
    encoders = ", ".join(f"{role}: {spec} -> {run['encoder_ids'].get(role)}"
                         for role, spec in sorted(run["encoders"].items())) or "none"
    row = per_row.get("rows") or {"technique": run["technique"], "params": run["row_params"]}
    timings = run["timings"]
    lines = [
        f"run       {key}",
        f"dataset   {run['dataset_name']} (identity {run['dataset']}; {info.get('n_users')} "
        f"users evaluated over {info.get('n_items')} items)",
        f"split     {run['split']}, seed {run['seed']}" + (f" ({sizes})" if sizes else ""),
        f"row       {run['label']} (technique {row['technique']}, params "
        f"{json.dumps(row.get('params') or {}, sort_keys=True)})",
        f"encoders  {encoders}",
        "options   " + ", ".join(f"{k}={v}" for k, v in sorted(run["options"].items())),
        f"cut-offs  {', '.join(str(k) for k in run['ks'])}",
        f"created   {_when(run['created'])}",
    ]
    if timings:
        lines.append(f"time      fit {timings.get('fit_s', 0):.1f}s + eval "
                     f"{timings.get('eval_s', 0):.1f}s")
    lines.append(f"params    {_params(run['params'])}")
    if info.get("audit"):
        lines.append(audit_note(info["audit"]))
    cold = per_row.get("cold_users")
    if cold is not None:
        lines.append(f"cold users (no train history): {cold} of {info.get('n_users')}"
                     + (f", given the fallback: {per_row['fallbacks']}" if cold and
                        per_row.get("fallbacks") else ""))
    metrics = store.load_metrics([key]).metrics
    if len(metrics):
        wide = metrics.pivot_table(index="metric", columns="k", values="value")
        wide = wide.reindex([m for m in METRICS if m in wide.index])
        ks = [int(k) for k in wide.columns]
        names = [METRIC_LABELS.get(m, m) for m in wide.index]
        width = max(len("metric"), *(len(n) for n in names))
        lines.append("")
        lines.append(f"{'metric':<{width}}  " + "  ".join(f"{'@' + str(k):>7}" for k in ks))
        for name, (_, values) in zip(names, wide.iterrows()):
            lines.append(f"{name:<{width}}  " + "  ".join(f"{v:>7.4f}" for v in values))
        lines.append(f"n_users {int(metrics['n_users'].max())}")
    return "\n".join(lines)
