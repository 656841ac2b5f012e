"""Inspect a user: find a user (by id, worst for a technique, where A beats B most), then their
train history, held-out items and the top-N of 2–3 techniques side by side with hits marked."""

from __future__ import annotations

import streamlit as st

from app_pages import _ui as ui
from core import lab as api
from core.evaluation.metrics import METRIC_LABELS, PER_USER_METRICS

st.title("Inspect a user")
cfg = ui.settings()
with ui.guard():
    lab = ui.data(cfg)
    split = ui.split(lab, cfg)
    cmp = ui.comparison(lab, cfg, st.session_state["techniques"])
if not cmp.available:
    st.info("No stored runs for the techniques chosen on the Compare page with these settings: "
            "run them there first.")
    st.page_link("app_pages/compare.py", label="Go to Compare", icon=":material/leaderboard:")
    st.stop()

available = cmp.available
st.session_state["inspect_techniques"] = [
    t for t in st.session_state["inspect_techniques"] if t in available
] or api.default_side_by_side(available)
c1, c2, c3 = st.columns([3, 1, 1])
c1.multiselect("Techniques side by side (up to 3)", available, key="inspect_techniques",
               max_selections=3)
n = c2.number_input("Top N", min_value=1, max_value=int(max(api.KS)), value=10, key="inspect_n")
metric = c3.selectbox("Per-user metric", list(PER_USER_METRICS), format_func=METRIC_LABELS.get,
                      key="inspect_metric")
k = int(st.session_state["k"])
techniques = st.session_state["inspect_techniques"] or available[:1]

mode = st.radio("Find a user", ["By id", "Worst users for a technique", "Where A beats B most"],
                horizontal=True, key="inspect_mode")
users = api.user_ids(cmp)
if mode == "By id":
    user = st.selectbox(f"User id ({len(users):,} evaluated users; type to search)", users,
                        key="inspect_user_id")
elif mode == "Worst users for a technique":
    tech = st.selectbox("Technique", available, key="inspect_worst_tech")
    worst = api.worst_users(cmp, tech, metric, k, n=20, data=lab, split=split)
    st.dataframe(worst, hide_index=True, height=220, width="stretch")
    user = st.selectbox("User", worst["user_id"].tolist(), key="inspect_user_worst")
else:
    ca, cb = st.columns(2)
    a = ca.selectbox("A", available, index=len(available) - 1, key="inspect_a")
    b = cb.selectbox("B", available, index=0, key="inspect_b")
    diff = api.beats(cmp, a, b, metric, k, n=20, data=lab, split=split)
    st.dataframe(diff, hide_index=True, height=220, width="stretch")
    user = st.selectbox("User", diff["user_id"].tolist(), key="inspect_user_beats")
if not user:
    st.stop()

explainers = {}
for t in techniques:
    if api.is_content(t):
        with st.spinner(f"Loading {t}'s item vectors from the cache …"), ui.guard():
            explainers[t] = ui.content_model(lab, cfg, t)
shown = list(dict.fromkeys([metric, "ndcg", "map", "recall", "hit_rate"]))
with ui.guard():
    view = api.user_view(lab, split, cmp, user, techniques, n=int(n), explainers=explainers,
                         metrics=shown, k=k)

st.subheader(f"User {view.user_id}")
st.dataframe(view.metrics, width="stretch")

st.markdown(f"#### Recommendations (top {int(n)}; ✓ = a held-out item)")
cols = st.columns(len(techniques))
for col, technique in zip(cols, techniques):
    with col:
        st.markdown(f"**{technique}**")
        recs = view.recs.get(technique)
        if recs is None or recs.empty:
            st.caption("no stored recommendations for this user")
            continue
        for row in recs.itertuples():
            because = (f"because you liked **{row.because}** (cos {row.because_sim:.2f})"
                       if isinstance(row.because, str) else None)
            ui.item_card(row, hit=bool(row.hit), extra=because, compact=True)

c1, c2 = st.columns([3, 2])
with c1:
    st.markdown(f"#### Train history ({len(view.history)} items)")
    for row in view.history.head(30).itertuples():
        with st.container(border=True):
            p, t = st.columns([1, 3])
            with p:
                ui.photo(row.photo)
            with t:
                st.markdown(f"**{row.name}** · {row.category} · {'★' * int(round(row.rating))} · "
                            f"{row.date}")
                if row.review:
                    st.caption(row.review)
    if len(view.history) > 30:
        st.caption(f"… and {len(view.history) - 30} more")
with c2:
    st.markdown(f"#### Held out ({len(view.held_out)} items)")
    ui.grid(view.held_out.assign(score=float("nan")), columns=3, score=False)
