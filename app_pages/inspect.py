"""Inspect a user: find a user (by id, worst for a technique, where A beats B most), then their
train history, held-out items and the top-N of 2–3 techniques side by side with hits marked.
One cut-off, the page's "Top N", for the cards, the per-user metrics and the user lists."""

from __future__ import annotations

import streamlit as st

from app_pages import _ui as ui
from core import lab as api
from core.evaluation.metrics import METRIC_INFO, PER_USER_METRICS

#: History cards drawn (the others are counted); only their reviews are read.
HISTORY_SHOWN = 30

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
colours = api.technique_colours(available)
st.session_state["inspect_techniques"] = [
    t for t in st.session_state["inspect_techniques"] if t in available
] or api.default_side_by_side(available)
if st.session_state["inspect_n"] not in api.KS:
    st.session_state["inspect_n"] = 10
c1, c2, c3 = st.columns([3, 1, 2])
c1.multiselect("Techniques side by side (up to 3)", available, key="inspect_techniques",
               max_selections=3)
c2.selectbox("Top N", list(api.KS), key="inspect_n",
             help="One cut-off for the whole page: the cards show each technique's top N, and "
                  "the per-user metrics and the user lists are metric@N.")
metric = c3.selectbox("Per-user metric", list(PER_USER_METRICS), key="inspect_metric",
                      format_func=lambda m: f"{METRIC_INFO[m].label} · {METRIC_INFO[m].name}",
                      help="\n".join(f"- **{METRIC_INFO[m].label}**: {METRIC_INFO[m].definition}."
                                     for m in PER_USER_METRICS))
n = int(st.session_state["inspect_n"])
techniques = st.session_state["inspect_techniques"] or available[:1]
column = api.metric_column(metric, n)

mode = st.radio("Find a user", ["By id", "Worst users for a technique", "Where A beats B most"],
                horizontal=True, key="inspect_mode")
users = api.user_ids(cmp)
linked = st.session_state.pop("url_user", None)
if linked is not None and linked not in users:
    st.warning(f"The link's user {linked!r} has no held-out items in these runs; showing "
               "another user.", icon=":material/link_off:")
if st.session_state.get("inspect_user_id") not in users:
    # back on this page: the user shown last time (the selectbox forgets when not drawn)
    shown = st.session_state["inspect_user"]
    st.session_state["inspect_user_id"] = shown if shown in users else (users or [None])[0]
if mode == "By id":
    user = st.selectbox(f"User id ({len(users):,} evaluated users; type to search)", users,
                        key="inspect_user_id")
elif mode == "Worst users for a technique":
    tech = st.selectbox("Technique", available, key="inspect_worst_tech")
    worst = api.worst_users(cmp, tech, metric, n, n=20, data=lab, split=split, named=True)
    st.dataframe(worst, hide_index=True, height=220, width="stretch")
    st.caption(f"Lowest {column} of {tech} first; equal values: more held-out items first, then "
               "the longer train history.")
    user = st.selectbox("User", worst["user_id"].tolist(), key="inspect_user_worst")
else:
    ca, cb = st.columns(2)
    a = ca.selectbox("A", available, index=len(available) - 1, key="inspect_a")
    b = cb.selectbox("B", available, index=0, key="inspect_b")
    diff = api.beats(cmp, a, b, metric, n, n=20, data=lab, split=split, wins_only=True,
                     named=True)
    if diff.empty:
        st.info(f"{a} never scores a higher {column} than {b} for a user.")
        st.stop()
    st.dataframe(diff, hide_index=True, height=220, width="stretch")
    st.caption(f"Users where {a}'s {column} is higher than {b}'s, largest margin first; equal "
               "margins: more held-out items first (a win on one held-out item is often one "
               "lucky hit), then the longer train history, then the user id.")
    user = st.selectbox("User", diff["user_id"].tolist(), key="inspect_user_beats")
if not user:
    st.stop()
st.session_state["inspect_user"] = user

explainers = {}
for t in techniques:
    if api.is_content(t):
        with st.spinner(f"Loading {t}'s item vectors from the cache …"), ui.guard():
            explainers[t] = ui.content_model(lab, cfg, t)
shown = list(dict.fromkeys([metric, "ndcg", "map", "recall", "hit_rate"]))
with ui.guard():
    view = api.user_view(lab, split, cmp, user, techniques, n=n, explainers=explainers,
                         metrics=shown, reviews=HISTORY_SHOWN)

st.subheader(f"User {view.user_id}")
st.markdown(f"#### Per-user metrics @{n}")
st.dataframe(view.metrics, width="stretch")

st.markdown(f"#### Recommendations (top {n}; ✓ = a held-out item)")
st.caption(f"#: rank in the technique's list; {api.SCORE_NOTE}. Same-name places differ by "
           "city; hover a name for its item id.")
cols = st.columns(len(techniques))
for col, technique in zip(cols, techniques):
    with col:
        value = (view.metrics.at[technique, column]
                 if technique in view.metrics.index and column in view.metrics.columns else None)
        st.markdown(f"{ui.swatch(technique, colours[technique])} · top {n}"
                    + (f" · {column} {value:.3f}" if value is not None else ""),
                    unsafe_allow_html=True)
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
    for row in view.history.head(HISTORY_SHOWN).itertuples():
        with st.container(border=True):
            p, t = st.columns([1, 3])
            with p:
                ui.photo(row.photo)
            with t:
                place = f" · {row.city}" if row.city else ""
                st.markdown(f"**{row.name}** · {row.category}{place} · "
                            f"{'★' * int(round(row.rating))} · {row.date}",
                            help=f"item id `{row.item_id}`")
                if row.review:
                    st.caption(row.review)
    if len(view.history) > HISTORY_SHOWN:
        st.caption(f"… and {len(view.history) - HISTORY_SHOWN} more")
with c2:
    st.markdown(f"#### Held out ({len(view.held_out)} items)")
    ui.grid(view.held_out.assign(score=float("nan")), columns=3, score=False)
