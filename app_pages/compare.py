"""Compare: choose techniques and k → the metric table (best per column highlighted, CI vs a
baseline), metric-vs-k and bar charts, CSV download. Runs are computed on demand and stored.
Each technique keeps one colour (``core.lab.technique_colours``) in every chart and on Inspect."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from app_pages import _ui as ui
from core import lab as api
from core.evaluation.metrics import METRIC_INFO, METRIC_LABELS, METRICS, PER_USER_METRICS

st.title("Compare techniques")
cfg = ui.settings()
with ui.guard():
    lab = ui.data(cfg)
    rows = ui.techniques_for(cfg)

names = [r["name"] for r in rows]
labels = {r["name"]: f"{r['name']} — {r['label']}" for r in rows}
st.session_state["techniques"] = [t for t in st.session_state["techniques"] if t in names]
st.multiselect("Techniques", names, key="techniques", format_func=lambda n: labels.get(n, n))
st.pills(  # every metric in view with its full name; nDCG first, the charts' default
    "Metrics", ["ndcg", *(m for m in METRICS if m != "ndcg")], key="metrics",
    selection_mode="multi", wrap=True,
    format_func=lambda m: (METRIC_INFO[m].label if METRIC_INFO[m].label.lower()
                           == METRIC_INFO[m].name else
                           f"{METRIC_INFO[m].label} · {METRIC_INFO[m].name}"),
    help="\n".join(f"- **{i.label}** ({i.name}): {i.definition}." for i in METRIC_INFO.values())
    + "\n\nMeans over the users with held-out items; formulas in docs/protocol.md.")
blocked = [r for r in rows if not r["available"]]
if blocked:
    with st.expander(f"{len(blocked)} techniques need an encoder you have not picked"):
        for r in blocked:
            st.markdown(f"`{r['name']}` — {r['reason']}")

chosen = [t for t in st.session_state["techniques"] if t in names]
metrics = st.session_state["metrics"] or ["ndcg"]
if not chosen:
    st.info("Pick one or more techniques to compare.")
    st.stop()

with ui.guard():
    stored = api.stored_techniques(lab, cfg.cache_root, cfg.split, cfg.seed, chosen, cfg.encoders,
                                   cfg.options)
missing = [t for t in chosen if t not in stored]
if missing:
    with ui.guard():
        eta = api.estimate_runs(lab, cfg.cache_root, cfg.split, cfg.seed, missing, cfg.encoders,
                                cfg.options)
    st.warning(f"Not computed yet for these settings: **{', '.join(missing)}**. Runs are "
               "stored in the cache and reloaded instantly afterwards.")
    b1, b2 = st.columns([1, 4], vertical_alignment="center")
    clicked = b1.button(f"Run {len(missing)} technique{'s' * (len(missing) > 1)}",
                        type="primary", key="run_missing", help=eta.describe())
    b2.caption(f":material/schedule: {eta.describe()}")
    if clicked:
        with ui.guard():
            result = ui.run_with_status(lab, cfg, chosen, missing, eta=eta.short())
        st.session_state["compare_notice"] = (result.computed, result.skipped)
        st.rerun()
notice = st.session_state.pop("compare_notice", None)
just_computed: list[str] = []
if notice:
    just_computed, skipped = notice
    if just_computed:
        st.success(f"Computed and stored: {', '.join(just_computed)}", icon=":material/check:")
    for technique, reason in skipped.items():
        st.error(f"{technique} skipped: {reason}", icon=":material/error:")
    for message in st.session_state.pop("run_warnings", []):  # e.g. the protocol audit
        st.warning(message, icon=":material/warning:")

with ui.guard():
    cmp = ui.comparison(lab, cfg, chosen)
if not cmp.available:
    st.stop()
colours = api.technique_colours(cmp.available)

ks = list(api.KS)
c1, c2 = st.columns([3, 2])
if st.session_state["k"] not in ks:
    st.session_state["k"] = 10
c1.radio("k: the cut-off of the table, the bars and the CI", ks, key="k", horizontal=True,
         format_func=lambda k: f"@{k}",
         help="Each metric looks at the first k recommendations of every user.")
k = int(st.session_state["k"])
if st.session_state["baseline"] not in cmp.available:
    st.session_state["baseline"] = cmp.available[0]
c2.selectbox("Baseline for the confidence interval", cmp.available, key="baseline")
baseline = st.session_state["baseline"]

table = api.metric_table(cmp, metrics, [k])
ci_metric = next((m for m in metrics if m in PER_USER_METRICS), "ndcg")
ci = ui.paired_ci(cmp, baseline, ci_metric, k, cfg.seed).set_index("technique")
ci_col = f"Δ {api.metric_column(ci_metric, k)} vs {baseline} [95% CI]"
table[ci_col] = [
    "baseline" if t == baseline else (
        f"{ci.at[t, 'diff']:+.4f} [{ci.at[t, 'low']:+.4f}, {ci.at[t, 'high']:+.4f}]"
        + (" *" if ci.at[t, "significant"] else "") if t in ci.index else "")
    for t in table.index
]
value_cols = [c for c in table.columns if "@" in c and not c.startswith("Δ")]
styled = (table.style.format("{:.4f}", subset=value_cols)
          .highlight_max(subset=value_cols, props="font-weight:bold;background-color:#c8f0c8"))
help_of = {api.metric_column(m, k): f"{METRIC_INFO[m].name}: {METRIC_INFO[m].definition}"
           for m in metrics}
st.dataframe(styled, width="stretch",
             column_config={c: st.column_config.Column(help=h) for c, h in help_of.items()})
# after "Run N techniques" this rerun reloads every row from the store: name what the run made
reused = ", ".join(t for t in cmp.available if t not in just_computed) or "none"
origin = (f"Computed just now: {', '.join(just_computed)}; reused from the cache: {reused}."
          if just_computed else f"Reused from the cache: {reused}; computed now: none.")
st.caption(f"Rows: techniques; columns: metric@{k} over the users with held-out items "
           f"({cfg.split} split, seed {cfg.seed}); best of each column highlighted. "
           f"CI: paired bootstrap over users (1000 resamples); * = excludes 0. {origin}")

c1, c2 = st.columns(2)
with c1:
    line_metric = metrics[0]
    long = api.metric_long(cmp, line_metric)
    y_title = f"{METRIC_LABELS[line_metric]}@k"
    fig = px.line(long, x="k", y="value", color="technique", markers=True,
                  title=f"{METRIC_INFO[line_metric].name.capitalize()} vs k",
                  labels={"value": y_title, "k": "k (cut-off)"},
                  color_discrete_map=colours, category_orders={"technique": cmp.available})
    fig.update_xaxes(tickvals=ks)
    fig.update_layout(height=380, margin={"t": 50, "b": 10})
    st.plotly_chart(fig, width="stretch", key="chart_vs_k")
with c2:
    bars = cmp.metrics[cmp.metrics["metric"].isin(metrics) & (cmp.metrics["k"] == k)].copy()
    bars["metric"] = [api.metric_column(m, k) for m in bars["metric"]]
    fig = px.bar(bars, x="metric", y="value", color="technique", barmode="group",
                 title=f"Metrics at k = {k}",
                 labels={"metric": f"metric@{k}",
                         "value": (api.metric_column(metrics[0], k) if len(metrics) == 1
                                   else f"value at k = {k}")},
                 color_discrete_map=colours,
                 category_orders={"technique": cmp.available,
                                  "metric": [api.metric_column(m, k) for m in metrics]})
    fig.update_layout(height=380, margin={"t": 50, "b": 10})
    st.plotly_chart(fig, width="stretch", key="chart_bars")

st.download_button(
    "Download metrics (CSV)", cmp.metrics.to_csv(index=False).encode(),
    file_name=f"metrics_{cfg.split}_seed{cfg.seed}.csv", mime="text/csv",
)
