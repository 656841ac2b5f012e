"""Search: free text → nearest items, by CLIP text→photo similarity (zero-shot) or text→text."""

from __future__ import annotations

import streamlit as st

from app_pages import _ui as ui
from core import lab as api

st.title("Search")
cfg = ui.settings()
with ui.guard():
    lab = ui.data(cfg)
    ctx = ui.context(lab, cfg)

modes = [m for m in api.SEARCH_MODES
         if cfg.encoders.get("text" if m == "text" else "clip")
         and (m != "clip-photos" or len(lab.ds.photos))]
if not modes:
    st.info("Pick a CLIP or text encoder in the sidebar to search.")
    st.stop()
if st.session_state["search_mode"] not in modes:
    st.session_state["search_mode"] = modes[0]
with st.form("search"):
    c1, c2, c3 = st.columns([4, 2, 1])
    c1.text_input("Describe what you are looking for", key="search_query",
                  placeholder="spicy noodle soup, a cosy café with pastries, sushi …")
    c2.selectbox("How", modes, key="search_mode", format_func=api.SEARCH_MODES.get)
    n = c3.number_input("Results", min_value=1, max_value=50, value=10, key="search_n")
    st.form_submit_button("Search", type="primary")

query = st.session_state["search_query"].strip()
mode = st.session_state["search_mode"]
spec = cfg.encoders["text" if mode == "text" else "clip"]
if "untrained" in spec:
    st.warning(f"{spec} has random weights (untrained): results show the pipeline, not meaning. "
               "Pick trained CLIP weights for real zero-shot search.", icon=":material/info:")
if not query:
    st.stop()
with st.spinner(f"Embedding with {spec} (the first search embeds the catalogue once) …"), \
        ui.guard():
    hits = api.search(lab, ctx, query, mode, n=int(n))
st.markdown(f"#### {len(hits)} results for “{query}” — {api.SEARCH_MODES[mode]} with `{spec}`")
ui.grid(hits, columns=5, extra=None)
