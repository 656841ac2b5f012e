"""App speed on the synthetic demo, measured through Streamlit's AppTest (no browser).

Targets (issue 5): with a warm cache, switching technique or user re-renders in under 1 s; the
demo's UMAP map cold in under 60 s and warm (cached in DuckDB) instantly.

    python -m bench.app_speed [--cache-dir DIR] [--reviews]
    python -m bench.app_speed --dataset yelp:DIR --techniques popular,als --no-maps

``--dataset`` measures the same interactions on another dataset (``bench.scale`` runs it on the
scaled demo: Compare and Inspect on millions of interactions).

The cache directory defaults to ``$MMREC_CACHE_DIR`` or ``./cache`` (the demo is generated there on
first use). Stored runs of popular/als/itemknn/image are computed first if missing (timed apart).
The cold UMAP is measured into a fresh projections file, so existing maps are never touched.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TECHNIQUES = ["popular", "als", "itemknn", "image"]


def _timed(fn, repeat: int = 1) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--reviews", action="store_true", help="also map the train reviews")
    parser.add_argument("--dataset", default="demo", help="dataset spec (default: demo)")
    parser.add_argument("--techniques", default=",".join(TECHNIQUES),
                        help="comma-separated techniques compared (default: %(default)s)")
    parser.add_argument("--no-maps", action="store_true", help="skip the UMAP timings")
    args = parser.parse_args(argv)
    return measure(args)


def measure(args: argparse.Namespace) -> int:
    """Run the measurements of ``main``'s arguments; 0 when every target was met."""
    techniques = [t.strip() for t in args.techniques.split(",") if t.strip()]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from streamlit.testing.v1 import AppTest

    from core import lab as api
    from core.config import cache_dir

    root = cache_dir(args.cache_dir)
    os.environ["MMREC_CACHE_DIR"] = str(root)
    t0 = time.perf_counter()
    lab = api.load(args.dataset, root)
    print(f"{args.dataset}: {lab.ds.n_users} users, {lab.ds.n_items} items, "
          f"{len(lab.ds.interactions)} interactions, {len(lab.ds.photos)} photos "
          f"(load {time.perf_counter() - t0:.1f} s)")
    enc = dict(api.DEFAULT_ENCODERS)
    t0 = time.perf_counter()
    cmp = api.run_comparison(lab, root, "random", 42, techniques, enc, {"tune": True})
    print(f"runs: computed {cmp.computed or 'none'}, reused {cmp.reused or 'none'} "
          f"({time.perf_counter() - t0:.1f} s)")

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    at.session_state["dataset_spec"] = args.dataset
    at.session_state["techniques"] = list(techniques)
    first = _timed(at.run)
    assert not at.exception, at.exception
    warm = _timed(at.run, repeat=3)
    switch = []
    for chosen in (techniques[::-1], techniques[1:] or techniques, list(techniques)):
        switch.append(_timed(lambda c=chosen: at.multiselect(key="techniques").set_value(c).run()))
    k_change = _timed(lambda: at.radio(key="k").set_value(20).run())
    at.switch_page("app_pages/inspect.py")
    inspect_first = _timed(at.run)
    assert not at.exception, at.exception
    users = at.selectbox(key="inspect_user_id").options
    user_switch = [_timed(lambda u=u: at.selectbox(key="inspect_user_id").set_value(u).run())
                   for u in users[1:6]]
    tech_switch = _timed(
        lambda: at.multiselect(key="inspect_techniques").set_value(techniques[-2:]).run())
    assert not at.exception, at.exception

    rows = [
        ("Compare: first run (imports, encoder check)", first, None),
        ("Compare: rerun, warm", warm, 1.0),
        ("Compare: switch techniques (median of 3)", statistics.median(switch), 1.0),
        ("Compare: change k", k_change, 1.0),
        ("Inspect: first open (fits content explainer)", inspect_first, None),
        ("Inspect: switch user (median of 5)", statistics.median(user_switch), 1.0),
        ("Inspect: switch techniques", tech_switch, 1.0),
    ]

    split = api.split_of(lab, "random", 42)
    ctx = api.fit_context(lab, split, api.provider(lab, root), enc, {"tune": True})
    whats = [] if args.no_maps else ["items-photo", "photos"] + (
        ["reviews"] if args.reviews else [])
    with tempfile.TemporaryDirectory() as fresh:
        for what in whats:
            spec = enc["text"] if what == "reviews" else enc["image"]
            ctx.embeddings.reviews(spec) if what == "reviews" else ctx.embeddings.photos(spec)
            cold = _timed(lambda w=what, s=spec: api.embedding_map(lab, ctx, fresh, s, w))
            hot = _timed(lambda w=what, s=spec: api.embedding_map(lab, ctx, fresh, s, w), 3)
            n = len(api.embedding_map(lab, ctx, fresh, spec, what).points)
            rows.append((f"UMAP {what} ({n} points): cold", cold, 60.0))
            rows.append((f"UMAP {what} ({n} points): warm (DuckDB)", hot, 1.0))

    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'seconds':>8}  target")
    status = 0
    for name, seconds, target in rows:
        verdict = "" if target is None else (f"< {target:g} s " + (
            "ok" if seconds < target else "MISSED"))
        status |= int(target is not None and seconds >= target)
        print(f"{name:<{width}}  {seconds:8.3f}  {verdict}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
