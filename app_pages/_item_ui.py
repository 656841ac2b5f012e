"""The item view (Embedding space page): renders a ``core.lab.ItemView``, nothing else."""

from __future__ import annotations

import streamlit as st

from app_pages import _ui as ui
from core import lab as api


def render(view: api.ItemView) -> None:
    """One item: photos, what it is, reviews, consumers, neighbours in the map's space and the
    stored techniques that recommend it."""
    with st.container(border=True, key="item_view"):
        where = f" · {view.city}" if view.city else ""
        st.markdown(f"### {view.name}{where}")
        st.caption(f"item id `{view.item_id}` · {view.categories}")
        if len(view.photos):
            cols = st.columns(min(6, len(view.photos)))
            for col, row in zip(cols, view.photos.head(6).itertuples()):
                with col:
                    ui.photo(row.path, caption=row.caption or row.label or None)
        else:
            st.caption("No photos.")
        st.markdown(f"**Document** (what content techniques embed): {view.document}")
        left, right = st.columns(2)
        with left:
            st.markdown(f"**Consumed in train by {view.consumers:,} user"
                        f"{'s' if view.consumers != 1 else ''}**"
                        + (f": {', '.join(view.consumer_ids)}"
                           + (" …" if view.consumers > len(view.consumer_ids) else "")
                           if view.consumer_ids else ""))
            if len(view.reviews):
                st.dataframe(view.reviews, hide_index=True, width="stretch",
                             column_config={"stars": st.column_config.NumberColumn(
                                 "stars", format="%.0f ★")})
        with right:
            if len(view.recommended_by):
                st.markdown("**In the stored top-10 lists**")
                st.dataframe(view.recommended_by, hide_index=True, width="stretch",
                             column_config={"users": "users with it in their top 10",
                                            "best_rank": "best rank"})
            if len(view.neighbours):
                st.markdown("**Nearest items in this space** (cosine)")
                ui.grid(view.neighbours.assign(score=view.neighbours["similarity"]), columns=3,
                        compact=True)
