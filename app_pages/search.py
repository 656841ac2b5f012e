"""Search: free text → nearest items, in the shared image–text space (text → photos: real CLIP,
or the align: space trained on this dataset) or text → item text."""

from __future__ import annotations

import streamlit as st

from app_pages import _ui as ui
from core.lab import choices as lab_choices
from core.lab.search import (
    MODE_ROLE,
    default_search_mode,
    first_search_seconds,
    mode_label,
    search,
    search_modes,
)

st.title("Search")
cfg = ui.settings()
with ui.guard():
    lab = ui.data(cfg)
    ctx = ui.context(lab, cfg)

clip = cfg.encoders.get("clip")
if clip and "untrained" in clip:
    st.warning(f"{clip} has random weights (untrained): its text → photo search shows the "
               "pipeline, not meaning. Pick trained CLIP weights, or use the space aligned on "
               "this dataset's own photos and captions (works offline).", icon=":material/info:")
    if any(r["spec"] == lab_choices.DEFAULT_ALIGN and r.get("available", True)
           for r in ui.encoder_choices().get("clip", [])):
        st.button(f"Use the aligned space ({lab_choices.DEFAULT_ALIGN})", key="use_aligned",
                  on_click=ui.use_aligned, icon=":material/join_inner:")

modes = search_modes(lab, cfg.encoders)
if not modes:
    st.info("Pick a CLIP or text encoder in the sidebar to search.")
    st.stop()
# the default follows the encoders: photos in a trained shared space, else text → item text
chosen_for = (clip, cfg.encoders.get("text"))
if st.session_state["search_mode"] not in modes or \
        st.session_state.get("search_mode_for") != chosen_for:
    st.session_state["search_mode"] = default_search_mode(lab, cfg.encoders)
    st.session_state["search_mode_for"] = chosen_for
with st.form("search"):
    c1, c2, c3 = st.columns([4, 2, 1])
    c1.text_input("Describe what you are looking for", key="search_query",
                  placeholder="spicy noodle soup, a cosy café with pastries, sushi …")
    c2.selectbox("How", modes, key="search_mode",
                 format_func=lambda m: mode_label(m, cfg.encoders))
    n = c3.number_input("Results", min_value=1, max_value=50, value=10, key="search_n")
    st.form_submit_button("Search", type="primary")

query = st.session_state["search_query"].strip()
mode = st.session_state["search_mode"]
spec = cfg.encoders[MODE_ROLE[mode]]
if not query:
    st.stop()
eta = first_search_seconds(lab, mode, spec)
with st.spinner(f"Searching with {spec} … (the first search embeds the catalogue once: up to "
                f"about {eta:.0f} s; later ones read the cache)"), \
        ui.guard(), ui.progress_box(f"Aligning {spec} on this dataset …",
                                    lambda: ui.align_label(lab, spec)) as progress:
    hits = search(lab, ctx, query, mode, n=int(n), progress=progress)
label = mode_label(mode, cfg.encoders)
st.markdown(f"#### {len(hits)} results for “{query}” — {label} with `{spec}`")
ui.grid(hits, columns=5, extra=None)
