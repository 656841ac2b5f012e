"""Embedding space: UMAP (cosine) of item, photo or review vectors in one encoder's space, coloured
by category, popularity or modality, with a user's vector, history and recommendations overlaid.
Click, box- or lasso-select points to see their photos (plotly hover cannot show images), and open
one item's view: photos, text, reviews, consumers, neighbours in this space, techniques that
recommend it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from app_pages import _item_ui as _item
from app_pages import _ui as ui
from core import lab as api
from core.lab.choices import PALETTE
from core.projection import SAMPLE_THRESHOLD, estimate_map

#: photos shown for a selection (the count says how many were selected)
MAX_SELECTED = 24
#: without a selection, the item picker lists at most this many mapped items (the most consumed)
PICKER_ITEMS = 2000
#: overlay roles: marker symbol, size, colour (None: the technique's), line width
STYLES = {"history": ("circle-open", 16, "black", 3), "recommended": ("diamond", 14, None, 1),
          "user": ("star", 24, "gold", 1)}


def hover_texts(pts: pd.DataFrame) -> np.ndarray:
    """One hover line set per point: name, category, train interactions, caption (when any),
    built column-wise (a map can hold 100,000 points)."""
    text = pts["name"].astype(str)
    if "category" in pts:
        cat = pts["category"].fillna("").astype(str)
        text = text + np.where(cat != "", "<br>" + cat, "")
    text = text + "<br>" + pts["popularity"].astype(str) + " train interactions"
    if "caption" in pts:
        cap = pts["caption"].fillna("").astype(str)
        text = text + np.where(cap != "", "<br><i>" + cap + "</i>", "")
    return text.to_numpy(dtype=str)


def map_figure(pts: pd.DataFrame, overlay: pd.DataFrame, colour: str | None, title: str,
               rec_colour: str) -> go.Figure:
    """The map as scatter traces (WebGL above 1,000 points; one per value of a categorical
    ``colour``, or one coloured by a number) plus the overlay's traces. Each point carries its
    row of ``pts`` as ``customdata`` (``api.selected_rows`` reads it back); arrays go as numpy
    arrays, which plotly sends as binary, so 100,000 points cost a fraction of a second."""
    fig = go.Figure()
    x, y = pts["x"].to_numpy(np.float32), pts["y"].to_numpy(np.float32)
    rows = np.arange(len(pts), dtype=np.int32)
    hover = hover_texts(pts)
    size = 7 if len(pts) < 3000 else 4 if len(pts) < 30_000 else 3
    common = {"mode": "markers", "hoverinfo": "text"}
    # WebGL above 1,000 points (as plotly express does); SVG below, where every point is an element
    scatter = go.Scattergl if len(pts) > 1000 else go.Scatter
    if colour is not None and not pd.api.types.is_numeric_dtype(pts[colour]):
        values = pts[colour].astype(str)
        # the 20 far-apart colours of the technique palette first, then lighter ones (up to 44)
        palette = list(PALETTE) + px.colors.qualitative.Light24
        for i, (value, idx) in enumerate(sorted(values.groupby(values).indices.items())):
            fig.add_trace(scatter(
                x=x[idx], y=y[idx], customdata=rows[idx], hovertext=hover[idx], name=value or "—",
                marker={"size": size, "opacity": 0.75, "color": palette[i % len(palette)]},
                **common))
    else:
        marker = {"size": size, "opacity": 0.75}
        if colour is not None:
            marker.update(color=pts[colour].to_numpy(np.float32), colorscale="Viridis",
                          showscale=True, colorbar={"title": {"text": title}})
        fig.add_trace(scatter(x=x, y=y, customdata=rows, hovertext=hover, name="points",
                                   showlegend=False, marker=marker, **common))
    for role, (symbol, msize, col, width) in STYLES.items():
        part = overlay[overlay["role"] == role] if len(overlay) else overlay
        if len(part):
            col = col or rec_colour
            fig.add_trace(go.Scatter(
                x=part["x"], y=part["y"], mode="markers", name=role, text=part["name"],
                customdata=part["point"].to_numpy(np.int64), hoverinfo="text",
                marker={"symbol": symbol, "size": msize, "color": col,
                        "line": {"width": width, "color": "black" if role != "history" else col}}))
    fig.update_layout(xaxis_title=None, yaxis_title=None, legend_title_text=title, height=620,
                      margin={"t": 20, "b": 10}, hovermode="closest",
                      showlegend=colour != "category" or len(pts) < 2000)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    return fig


st.title("Embedding space")
cfg = ui.settings()
with ui.guard():
    lab = ui.data(cfg)
    ctx = ui.context(lab, cfg)

roles = [r for r in api.ROLES if cfg.encoders.get(r)]
if not roles:
    st.info("Pick an encoder in the sidebar first.")
    st.stop()
if st.session_state["map_role"] not in roles:
    st.session_state["map_role"] = roles[0]
c1, c2, c3 = st.columns(3)
c1.selectbox("Space", roles, key="map_role",
             format_func=lambda r: f"{api.ROLE_LABELS[r]}: {cfg.encoders[r]}")
spec = cfg.encoders[st.session_state["map_role"]]
choices = api.map_choices(spec, shared_space=api.encoder_role(spec) == "clip",
                          has_text=lab.ds.has_text, has_photos=len(lab.ds.photos) > 0)
if not choices:
    st.info(f"{spec} has nothing to map in this dataset.")
    st.stop()
if st.session_state["map_what"] not in choices:
    st.session_state["map_what"] = next(iter(choices))
c2.selectbox("Points", list(choices), key="map_what", format_func=choices.get)
what = st.session_state["map_what"]
colours = {"category": "Category", "popularity": "Popularity (train interactions)",
           "modality": "Modality", "label": "Photo label / review stars"}
c3.selectbox("Colour by", list(colours), key="map_colour", format_func=colours.get)

n_points = {"photos": len(lab.ds.photos), "reviews": len(ctx.train),
            "items-both": 2 * lab.ds.n_items}.get(what, lab.ds.n_items)
sample = None
if n_points > SAMPLE_THRESHOLD:
    sample = st.number_input(
        f"Sample of points to map ({n_points:,} available; above {SAMPLE_THRESHOLD:,} the map "
        "uses a seeded random sample)", min_value=1000, max_value=n_points,
        value=SAMPLE_THRESHOLD, step=10_000, key="map_sample")

stored = ui.comparison(lab, cfg, st.session_state["techniques"])
users = [ui.NONE] + (api.user_ids(stored) if stored.available else [])
if st.session_state["map_user"] not in users:
    st.session_state["map_user"] = ui.NONE
c1, c2 = st.columns(2)
c1.selectbox("Overlay a user (vector, history, recommendations)", users, key="map_user")
rec_tech = c2.selectbox("Recommendations of", stored.available or [ui.NONE], key="map_rec_tech")
user = None if st.session_state["map_user"] == ui.NONE else st.session_state["map_user"]
recommended: list[str] = []
if user and rec_tech in stored.available:
    recommended = stored.top_item_ids(user, rec_tech, n=10)

n_mapped = min(n_points, int(sample)) if sample else n_points
estimate = estimate_map(n_mapped, cfg.cache_root)
label = f"Mapping {n_mapped:,} {choices[what].lower()} with {spec}"
with st.status(f"{label} … (a first map takes {estimate.short()})",
               expanded=True) as status, ui.guard():
    st.caption(f"UMAP (cosine) of {n_mapped:,} vectors, {estimate.describe()}; vectors not yet in "
               "the embedding cache are encoded first. Maps are cached: a map computed before "
               "loads at once.")
    emap, took = _item.with_time_bar(
        lambda: api.embedding_map(lab, ctx, cfg.cache_root, spec, what, seed=cfg.seed,
                                  sample=int(sample) if sample else None, user_id=user,
                                  recommended=recommended),
        estimate.seconds, f"UMAP of {n_mapped:,} points")
    status.update(label=f"{len(emap.points):,} points "
                        + ("from the cache" if emap.cached else
                           f"mapped in {took:.0f} s (expected about {estimate.seconds:.0f} s) "
                           "and cached"),
                  state="complete", expanded=False)

pts = emap.points
colour = st.session_state["map_colour"]
fig = map_figure(pts, emap.overlay, colour if colour in pts else None, colours[colour],
                 rec_colour=(api.technique_colours([rec_tech]).get(rec_tech, "crimson")
                             if rec_tech and rec_tech != ui.NONE else "crimson"))
event = st.plotly_chart(fig, width="stretch", on_select="rerun",
                        selection_mode=("points", "box", "lasso"), key="map_chart")
how = (f"UMAP (cosine) of {len(pts):,} of {emap.n_total:,} vectors in {spec}'s space"
       if not emap.landmarks else
       f"{len(pts):,} of {emap.n_total:,} vectors in {spec}'s space: UMAP (cosine) of a seeded "
       f"sample of {emap.landmarks:,} (landmarks), every other point at the similarity-weighted "
       "mean of its 10 nearest landmarks")
st.caption(f"{how}. A user's vector is placed at the similarity-weighted mean of its 10 nearest "
           "mapped points. Click a point, or pick the box or lasso tool in the chart's toolbar, "
           "to see photos and open an item.")

selection = event.selection.points if event else []
rows = api.selected_rows(selection, len(pts))
items = pts[["item_id", "name", "city", "popularity"]].drop_duplicates("item_id")
if rows:
    shown = pts.loc[rows[:MAX_SELECTED]]
    st.markdown(f"#### Selected: {len(rows):,} point{'s' if len(rows) != 1 else ''}"
                + (f" (the first {MAX_SELECTED} shown)" if len(rows) > MAX_SELECTED else ""))
    ui.grid(shown.assign(score=float("nan")), columns=6, score=False)
    # the selected items; without a selection, mapped items (the last one opened stays open)
    listed = items[items["item_id"].isin(pts.loc[rows, "item_id"])]
else:
    listed = items if len(items) <= PICKER_ITEMS else items[
        items["item_id"].isin(items.nlargest(PICKER_ITEMS, "popularity")["item_id"])
        | (items["item_id"] == st.session_state.get("map_item"))]
labels = dict(zip(listed["item_id"].astype(str), (
    listed["name"].astype(str) + np.where(listed["city"].astype(bool), " · " + listed["city"], "")
    + " · " + listed["item_id"].astype(str))))
if rows:
    options = list(dict.fromkeys(pts.loc[rows, "item_id"].astype(str)))
else:
    options = [ui.NONE] + sorted(labels, key=labels.get)
if st.session_state.get("map_item") not in options:
    st.session_state["map_item"] = options[0]
st.selectbox("Item view" + (" (one of the selected items)" if rows else
                            " (or click a point of the map)" if len(items) <= PICKER_ITEMS else
                            f" (the {PICKER_ITEMS:,} most consumed of {len(items):,} mapped "
                            "items; click or select points for the others)"),
             options, key="map_item", format_func=lambda i: labels.get(i, i))
if st.session_state["map_item"] != ui.NONE:
    with ui.guard():
        view = api.item_view(lab, ctx, st.session_state["map_item"], emap=emap,
                             comparison=stored if stored.available else None)
    _item.render(view)
