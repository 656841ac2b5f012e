"""Multimodal recommendation lab — Streamlit entry point: page config, router, shared sidebar.

Run with ``make app`` (or ``streamlit run app.py``; ``.streamlit/config.toml`` binds to 127.0.0.1).
The sidebar holds the session's dataset, encoders, split and seed; the pages in ``app_pages/`` read
them through ``app_pages._ui.settings()``. No torch import here: models load lazily in the engine.
The view (dataset, page, techniques, k, the inspected user, …) lives in the URL's query parameters
(``app_pages._ui.URL_PARAMS``): read when a session starts, written back after every rerun.

The folder is deliberately not called ``pages/``: Streamlit treats a ``pages/`` folder as a legacy
multipage app on a process's first run (and in every AppTest run), listing each file — helpers
included — in a second navigation menu and running page files without this frame around them.
"""

from __future__ import annotations

import streamlit as st

from app_pages import _ui as ui
from core import lab as api
from core.errors import LabError

# a Material icon, not an emoji: an emoji favicon makes Streamlit load its emoji catalogue (about
# 0.4 s on the first page of a new server)
st.set_page_config(page_title="Multimodal recommendation lab", page_icon=":material/ramen_dining:",
                   layout="wide")
ui.init_session()


def use_typed_spec() -> None:
    """Form callback (runs before the script, so it may set the picker's value). The spec joins
    the recent ones only once it has loaded (``remember_spec``)."""
    spec = st.session_state.get("other_spec", "").strip()
    if spec:
        st.session_state["dataset_spec"] = spec


def remember_spec(spec: str) -> None:
    """Put a spec that loaded first in the session's recent specs."""
    recent = st.session_state["recent_specs"]
    if spec in recent:
        recent.remove(spec)
    recent.insert(0, spec)


def dataset_picker() -> None:
    st.sidebar.header("Dataset")
    recent = st.session_state["recent_specs"]
    current = st.session_state["dataset_spec"]
    # a spec not loaded yet (typed, or from the URL) is offered only while it is the current one
    options = recent if current in recent else [current, *recent]
    st.sidebar.selectbox("Dataset", options, key="dataset_spec", format_func=ui.spec_label,
                         help="Dataset specs of this session that loaded, most recent first")
    with st.sidebar.form("other_dataset", clear_on_submit=True, border=False):
        st.text_input("Other dataset spec", key="other_spec",
                      placeholder="movielens:DIR, yelp:DIR, csv:CONFIG.toml",
                      help="See `python -m core datasets list`")
        st.form_submit_button("Load", on_click=use_typed_spec)


def dataset_summary(lab: api.LabData) -> None:
    summary, warnings = ui.describe(lab)
    if lab.is_demo:
        st.sidebar.caption("Synthetic demo data (procedurally generated restaurants, reviews and "
                           "photos in the Yelp layout) — not real Yelp data.")
    cols = st.sidebar.columns(2)
    for col, (label, key) in zip(cols * 3, [("Users", "users"), ("Items", "items"),
                                           ("Interactions", "interactions"),
                                           ("Photos", "photos")]):
        col.metric(label, f"{int(summary.get(key, 0)):,}")
    notes = {k: v for k, v in summary.items()
             if any(w in k for w in ("missing", "skipped", "malformed", "unknown", "without",
                                     "dropped")) and v}
    if notes or warnings:
        with st.sidebar.expander(f"Data warnings ({len(notes) + len(warnings)})"):
            for key, value in notes.items():
                st.write(f"{key.replace('_', ' ')}: **{value:,}**")
            for line in warnings:
                st.write(f"⚠️ {line}")


def encoder_pickers(lab: api.LabData | None) -> None:
    """One picker per role; each role's default is its first choice (for CLIP: a real CLIP whose
    weights are here, else the align: space, labelled with its held-out recall on ``lab``)."""
    st.sidebar.header("Encoders")
    choices = ui.encoder_choices()
    unavailable = []
    for role in api.ROLES:
        # a dataset's own item features are available exactly when the loaded dataset has them
        rows = [dict(r, available=api.features_here(r["spec"], lab),
                     reason=f"{lab.spec if lab else 'the dataset'} carries no such features")
                if r.get("kind") == "features" else r for r in choices.get(role, [])]
        options = [r["spec"] for r in rows if r.get("available", True)] + [ui.NONE]
        labels = {r["spec"]: (ui.align_label(lab, r["spec"]) if r.get("kind") == "align"
                              and r.get("available", True) else r["label"]) for r in rows}
        if st.session_state[f"enc_{role}"] not in options:
            st.session_state[f"enc_{role}"] = options[0]
        st.sidebar.selectbox(api.ROLE_LABELS[role], options, key=f"enc_{role}",
                             format_func=lambda s, labels=labels: labels.get(s, s))
        unavailable += [r for r in rows if not r.get("available", True)]
    if unavailable:
        with st.sidebar.expander(f"Unavailable encoders ({len(unavailable)})"):
            for row in unavailable:
                st.markdown(f"`{row['spec']}` — {row.get('reason') or 'unavailable'}")
            if st.button("Re-check encoders", key="recheck_encoders"):
                ui.encoder_choices.clear()
                st.rerun()


def protocol_pickers() -> None:
    st.sidebar.header("Protocol")
    c1, c2 = st.sidebar.columns(2)
    c1.selectbox("Split", api.split_kinds(), key="split")
    c2.number_input("Seed", min_value=0, step=1, key="seed")
    with st.sidebar.expander("Run options"):
        st.checkbox("Tune hyperparameters on validation", key="tune")
        st.selectbox("Photo filter", ["none", "food"], key="photo_filter",
                     help="food: keep only food/drink photos in photo representations")
        st.selectbox("Review filter", ["none", "positive"], key="review_filter",
                     help="positive: use only reviews with 4+ stars in text representations")


dataset_picker()
try:
    loaded: api.LabData | None = ui.data()
    remember_spec(st.session_state["dataset_spec"])
    dataset_summary(loaded)
except LabError as exc:  # the pages show it too; the sidebar stays usable to pick another
    loaded = None
    st.sidebar.error(str(exc), icon=":material/error:")
    st.sidebar.caption("Not added to the recent datasets; pick one of them to go back.")
encoder_pickers(loaded)
protocol_pickers()

# url_path: the name of the page in the URL path and in the ``page`` query parameter
pages = {
    "compare": st.Page("app_pages/compare.py", title="Compare", icon=":material/leaderboard:",
                       default=True),
    "inspect": st.Page("app_pages/inspect.py", title="Inspect a user",
                       icon=":material/person_search:", url_path="inspect"),
    "embedding": st.Page("app_pages/embedding.py", title="Embedding space",
                         icon=":material/scatter_plot:", url_path="embedding"),
    "search": st.Page("app_pages/search.py", title="Search", icon=":material/image_search:",
                      url_path="search"),
}
current = st.navigation(list(pages.values()))
name = current.url_path or "compare"
wanted = st.session_state.pop("url_page", None)  # a link's page, once per session
if wanted and wanted != name:
    st.switch_page(pages[wanted])
for note in st.session_state.pop("url_notes", []):
    st.toast(note, icon=":material/link_off:", duration="long")
try:
    current.run()
finally:  # also when the page stops early (st.stop) or reruns
    ui.write_url(name)
