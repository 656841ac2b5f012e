"""Compare: choose techniques and k → the metric table (best per column highlighted, CI vs a
baseline), metric-vs-k and bar charts, CSV download. Runs are computed on demand and stored."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from app_pages import _ui as ui
from core import lab as api
from core.evaluation.metrics import METRIC_LABELS, METRICS, PER_USER_METRICS

st.title("Compare techniques")
cfg = ui.settings()
with ui.guard():
    lab = ui.data(cfg)
    rows = ui.techniques_for(cfg)

names = [r["name"] for r in rows]
labels = {r["name"]: f"{r['name']} — {r['label']}" for r in rows}
st.session_state["techniques"] = [t for t in st.session_state["techniques"] if t in names]
c1, c2 = st.columns([3, 2])
c1.multiselect("Techniques", names, key="techniques", format_func=lambda n: labels.get(n, n))
c2.multiselect("Metrics", list(METRICS), key="metrics", format_func=METRIC_LABELS.get)
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
    st.warning(f"Not computed yet for these settings: **{', '.join(missing)}**. Runs are "
               "stored in the cache and reloaded instantly afterwards.")
    if st.button(f"Run {len(missing)} technique{'s' * (len(missing) > 1)}", type="primary",
                 key="run_missing"):
        with ui.guard():
            result = ui.run_with_status(lab, cfg, chosen, missing)
        st.session_state["compare_notice"] = (result.computed, result.skipped)
        st.rerun()
notice = st.session_state.pop("compare_notice", None)
if notice:
    computed, skipped = notice
    if computed:
        st.success(f"Computed and stored: {', '.join(computed)}", icon=":material/check:")
    for technique, reason in skipped.items():
        st.error(f"{technique} skipped: {reason}", icon=":material/error:")
    for message in st.session_state.pop("run_warnings", []):  # e.g. the protocol audit
        st.warning(message, icon=":material/warning:")

with ui.guard():
    cmp = ui.comparison(lab, cfg, chosen)
if not cmp.available:
    st.stop()

ks = list(api.KS)
c1, c2 = st.columns([3, 2])
if st.session_state["k"] not in ks:
    st.session_state["k"] = 10
c1.select_slider("k (table, bars and CI)", ks, key="k")
k = int(st.session_state["k"])
if st.session_state["baseline"] not in cmp.available:
    st.session_state["baseline"] = cmp.available[0]
c2.selectbox("Baseline for the confidence interval", cmp.available, key="baseline")
baseline = st.session_state["baseline"]

table = api.metric_table(cmp, metrics, [k])
ci_metric = next((m for m in metrics if m in PER_USER_METRICS), "ndcg")
ci = ui.paired_ci(cmp, baseline, ci_metric, k, cfg.seed).set_index("technique")
ci_col = f"Δ {METRIC_LABELS[ci_metric]}@{k} vs {baseline} [95% CI]"
table[ci_col] = [
    "baseline" if t == baseline else (
        f"{ci.at[t, 'diff']:+.4f} [{ci.at[t, 'low']:+.4f}, {ci.at[t, 'high']:+.4f}]"
        + (" *" if ci.at[t, "significant"] else "") if t in ci.index else "")
    for t in table.index
]
value_cols = [c for c in table.columns if "@" in c and not c.startswith("Δ")]
styled = (table.style.format("{:.4f}", subset=value_cols)
          .highlight_max(subset=value_cols, props="font-weight:bold;background-color:#c8f0c8"))
st.dataframe(styled, width="stretch")
st.caption(f"Rows: techniques; columns: metric@{k} over the users with held-out items "
           f"({cfg.split} split, seed {cfg.seed}); best of each column highlighted. "
           "CI: paired bootstrap over users (1000 resamples); * = excludes 0. "
           f"Reused from the cache: {', '.join(cmp.reused) or 'none'}; "
           f"computed now: {', '.join(cmp.computed) or 'none'}.")

c1, c2 = st.columns(2)
with c1:
    line_metric = metrics[0]
    long = api.metric_long(cmp, line_metric)
    fig = px.line(long, x="k", y="value", color="technique", markers=True,
                  title=f"{METRIC_LABELS[line_metric]} vs k",
                  labels={"value": METRIC_LABELS[line_metric]})
    fig.update_layout(height=380, margin={"t": 50, "b": 10})
    st.plotly_chart(fig, width="stretch", key="chart_vs_k")
with c2:
    bars = cmp.metrics[cmp.metrics["metric"].isin(metrics) & (cmp.metrics["k"] == k)].copy()
    bars["metric"] = bars["metric"].map(METRIC_LABELS)
    fig = px.bar(bars, x="metric", y="value", color="technique", barmode="group",
                 title=f"Metrics at k = {k}")
    fig.update_layout(height=380, margin={"t": 50, "b": 10})
    st.plotly_chart(fig, width="stretch", key="chart_bars")

st.download_button(
    "Download metrics (CSV)", cmp.metrics.to_csv(index=False).encode(),
    file_name=f"metrics_{cfg.split}_seed{cfg.seed}.csv", mime="text/csv",
)
