"""Embedding space: UMAP (cosine) of item, photo or review vectors in one encoder's space, coloured
by category, popularity or modality, with a user's vector, history and recommendations overlaid.
Click, box- or lasso-select points to see their photos (plotly hover cannot show images), and open
one item's view: photos, text, reviews, consumers, neighbours in this space, techniques that
recommend it."""

from __future__ import annotations

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
hover = {"name": True, "category": True, "popularity": True, "x": False, "y": False}
if "caption" in pts and pts["caption"].astype(bool).any():
    hover["caption"] = True
discrete = None
if colour in pts and not pd.api.types.is_numeric_dtype(pts[colour]):
    # the 20 far-apart colours of the technique palette first, then lighter ones (up to 44)
    values = sorted(pts[colour].astype(str).unique())
    palette = list(PALETTE) + px.colors.qualitative.Light24
    discrete = {v: palette[i % len(palette)] for i, v in enumerate(values)}
fig = px.scatter(pts, x="x", y="y", color=colour if colour in pts else None,
                 color_continuous_scale="Viridis", hover_data=hover, custom_data=[pts.index],
                 color_discrete_map=discrete, opacity=0.75, height=620)
fig.update_traces(marker={"size": 7 if len(pts) < 3000 else 4})
rec_colour = (api.technique_colours([rec_tech]).get(rec_tech, "crimson")
              if rec_tech and rec_tech != ui.NONE else "crimson")
styles = {"history": ("circle-open", 16, "black", 3), "recommended": ("diamond", 14, rec_colour, 1),
          "user": ("star", 24, "gold", 1)}
for role, (symbol, size, col, width) in styles.items():
    part = emap.overlay[emap.overlay["role"] == role] if len(emap.overlay) else emap.overlay
    if len(part):
        fig.add_trace(go.Scatter(
            x=part["x"], y=part["y"], mode="markers", name=role, text=part["name"],
            customdata=part[["point"]].to_numpy(), hoverinfo="text",
            marker={"symbol": symbol, "size": size, "color": col,
                    "line": {"width": width, "color": "black" if role != "history" else col}}))
fig.update_layout(xaxis_title=None, yaxis_title=None, legend_title_text=colours[colour],
                  margin={"t": 20, "b": 10}, showlegend=colour != "category" or len(pts) < 2000)
fig.update_xaxes(showticklabels=False)
fig.update_yaxes(showticklabels=False)
event = st.plotly_chart(fig, width="stretch", on_select="rerun",
                        selection_mode=("points", "box", "lasso"), key="map_chart")
st.caption(f"UMAP (cosine) of {len(pts):,} of {emap.n_total:,} vectors in {spec}'s space. "
           "A user's vector is placed at the similarity-weighted mean of its 10 nearest mapped "
           "points. Click a point, or pick the box or lasso tool in the chart's toolbar, to see "
           "photos and open an item.")

selection = event.selection.points if event else []
rows = api.selected_rows(selection, len(pts))
labels = {r.item_id: " · ".join(str(v) for v in (r.name, r.city, r.item_id) if v)
          for r in pts[["item_id", "name", "city"]].drop_duplicates("item_id").itertuples()}
if rows:
    shown = pts.loc[rows[:MAX_SELECTED]]
    st.markdown(f"#### Selected: {len(rows):,} point{'s' if len(rows) != 1 else ''}"
                + (f" (the first {MAX_SELECTED} shown)" if len(rows) > MAX_SELECTED else ""))
    ui.grid(shown.assign(score=float("nan")), columns=6, score=False)
    # the selected items; without a selection, any mapped item (the last one opened stays open)
    options = list(dict.fromkeys(pts.loc[rows, "item_id"].astype(str)))
else:
    options = [ui.NONE] + sorted(labels, key=labels.get)
if st.session_state.get("map_item") not in options:
    st.session_state["map_item"] = options[0]
st.selectbox("Item view" + (" (one of the selected items)" if rows else
                            " (or click a point of the map)"),
             options, key="map_item", format_func=lambda i: labels.get(i, i))
if st.session_state["map_item"] != ui.NONE:
    with ui.guard():
        view = api.item_view(lab, ctx, st.session_state["map_item"], emap=emap,
                             comparison=stored if stored.available else None)
    _item.render(view)
