"""Helpers of the Embedding space page: the item view (renders a ``core.lab.ItemView``, nothing
else) and a time bar for a long engine call that reports no progress of its own (UMAP)."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

import streamlit as st

from app_pages import _ui as ui
from core import lab as api

T = TypeVar("T")


def with_time_bar(call: Callable[[], T], estimate_s: float, job: str,
                  poll_s: float = 0.25) -> tuple[T, float]:
    """Run ``call`` (an engine call: no Streamlit inside) in a worker thread and, from the first
    ``poll_s`` on, fill a bar here with the elapsed time against ``estimate_s`` ("UMAP of 1,500
    points: 6 s of about 9 s"); a call that ends sooner (a cached map) draws nothing. Returns
    the result and the seconds it took; the call's exception is raised here.

    A rerun asked for meanwhile interrupts the script at the bar's next update; leaving the
    executor then waits for the call to finish, so a rerun never starts the same job twice."""
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="map") as pool:
        future = pool.submit(call)
        bar = None
        while True:
            try:
                result = future.result(timeout=poll_s)
                break
            except FutureTimeout:
                elapsed = time.monotonic() - start
                if bar is None:
                    bar = st.empty()
                text = (f"{job}: {elapsed:.0f} s of about {estimate_s:.0f} s"
                        if elapsed <= estimate_s else
                        f"{job}: {elapsed:.0f} s, longer than the {estimate_s:.0f} s expected "
                        "(a busy machine, or vectors being encoded first)")
                bar.progress(min(0.99, elapsed / max(estimate_s, 1.0)), text=text)
    if bar is not None:
        bar.empty()
    return result, time.monotonic() - start


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
