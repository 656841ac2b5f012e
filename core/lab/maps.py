"""The embedding map: a UMAP (cosine) projection of items, photos or reviews in one encoder's
space, cached in DuckDB (``core.projection``), with a user's vector, history and recommendations
as overlay points."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import LabError
from core.lab.choices import encoder_role
from core.lab.data import LabData, items_frame, snippet


def map_choices(encoder_spec: str, shared_space: bool, has_text: bool,
                has_photos: bool) -> dict[str, str]:
    """What the embedding map can show for an encoder: ``{what: label}``."""
    role = encoder_role(encoder_spec)
    out: dict[str, str] = {}
    if role in ("image", "clip") and has_photos:
        out["items-photo"] = "Items (mean of their photos)"
    if role in ("text", "clip"):
        out["items-text"] = "Items (text: reviews or description)"
    if role == "clip" and shared_space and has_photos:
        out["items-both"] = "Items, photo and text vectors together (colour by modality)"
    if role in ("image", "clip") and has_photos:
        out["photos"] = "Photos"
    if role in ("text", "clip") and has_text:
        out["reviews"] = "Reviews (train)"
    return out


@dataclass
class EmbeddingMap:
    """Points of a 2-D map (columns x, y, kind, item (index), item_id, name, category, city,
    popularity, modality, label, photo, caption) plus overlay points for a user (columns x, y,
    role, name, item_id, point: the row of ``points`` it marks, -1 for the user's own vector);
    ``vectors``: the mapped points' vectors in the encoder's space (rows of ``points``);
    ``landmarks``: set when the map is a landmark map (``core.projection``): UMAP laid out that
    many of the points and placed the others near them."""

    points: pd.DataFrame
    overlay: pd.DataFrame
    n_total: int
    cached: bool
    what: str
    vectors: np.ndarray | None = None
    landmarks: int | None = None


@dataclass(frozen=True)
class _Mapped:
    """The part of a map that depends on no user (memoised per context by ``embedding_map``)."""

    points: pd.DataFrame
    vectors: np.ndarray
    n_total: int
    cached: bool
    landmarks: int | None


def selected_rows(selection: Sequence[dict[str, Any]], n_points: int,
                  limit: int | None = None) -> list[int]:
    """Rows of the map's points picked in a plotly selection (clicks, box or lasso), whatever the
    trace: every chart trace carries the point's row as its first ``customdata`` value (category
    colouring draws one trace per category, so point indices alone are per trace). Points without
    a row (e.g. the user's own star) are left out; order kept, duplicates dropped, at most
    ``limit``."""
    out: list[int] = []
    seen: set[int] = set()
    for point in selection:
        custom = point.get("customdata")
        if isinstance(custom, (list, tuple)):
            custom = custom[0] if custom else None
        try:
            row = int(custom)
        except (TypeError, ValueError):
            continue
        if 0 <= row < n_points and row not in seen:
            seen.add(row)
            out.append(row)
    return out[:limit] if limit is not None else out


def embedding_map(
    data: LabData,
    ctx: Any,
    cache_root: str | Path,
    encoder_spec: str,
    what: str,
    seed: int = 42,
    sample: int | None = None,
    user_id: str | None = None,
    recommended: Sequence[str] = (),
) -> EmbeddingMap:
    """UMAP (cosine) map of ``what`` (see ``map_choices``) in ``encoder_spec``'s space, cached in
    DuckDB per (dataset, encoder, what). With ``user_id``: the user's vector (placed among its
    nearest mapped points), history and ``recommended`` item ids are returned as overlay points.
    """
    from core import projection
    from core.projection import place_near, project_cached
    from core.recommenders.representations import (
        item_photo_vectors,
        item_text_vectors,
        user_photo_vectors,
        user_text_vectors,
    )

    ds = data.ds
    built: list[bool] = []

    def build() -> _Mapped:
        built.append(True)
        pop = np.bincount(ctx.train["item"].to_numpy(), minlength=ds.n_items)
        vec_parts: list[np.ndarray] = []
        meta_parts: list[pd.DataFrame] = []

        def items_part(vecs: np.ndarray, has: np.ndarray, modality: str) -> None:
            idx = np.flatnonzero(np.asarray(has, bool))
            frame = items_frame(data, idx)
            frame["kind"], frame["modality"], frame["label"] = "item", modality, ""
            frame["popularity"] = pop[idx]
            frame["item"] = idx
            vecs = np.asarray(vecs, np.float32)
            vec_parts.append(vecs if len(idx) == len(vecs) else vecs[idx])  # no copy when all are
            meta_parts.append(frame)

        if what in ("items-photo", "items-both"):
            items_part(*item_photo_vectors(ctx, encoder_spec), "photo")
        if what in ("items-text", "items-both"):
            items_part(*item_text_vectors(ctx, encoder_spec), "text")
        if what == "photos":
            vecs, ok = ctx.embeddings.photos(encoder_spec)
            rows = np.flatnonzero(np.asarray(ok, bool))
            ph = ds.photos.iloc[rows]
            frame = items_frame(data, ph["item"].to_numpy())
            frame["photo"] = ph["path"].to_numpy()
            frame["kind"], frame["modality"] = "photo", "photo"
            frame["label"] = ph["label"].to_numpy()
            frame["popularity"] = pop[ph["item"].to_numpy()]
            frame["item"] = ph["item"].to_numpy()
            frame["caption"] = ph["caption"].to_numpy()
            vec_parts.append(np.asarray(vecs, np.float32)[rows])
            meta_parts.append(frame)
        if what == "reviews":
            vecs, ok = ctx.embeddings.reviews(encoder_spec)
            idx = ctx.train.index.to_numpy()
            keep = np.asarray(ok, bool)[idx]
            tr = ctx.train[keep]
            frame = items_frame(data, tr["item"].to_numpy())
            frame["kind"], frame["modality"] = "review", "review"
            frame["label"] = [f"{r:.0f}★" for r in tr["rating"]]
            frame["popularity"] = pop[tr["item"].to_numpy()]
            frame["item"] = tr["item"].to_numpy()
            frame["caption"] = [snippet(t, 100) for t in ds.texts.get(tr.index)]
            vec_parts.append(np.asarray(vecs, np.float32)[tr.index.to_numpy()])
            meta_parts.append(frame)
        if not vec_parts:
            raise LabError(f"the map cannot show {what!r} for encoder {encoder_spec}")
        vectors = vec_parts[0] if len(vec_parts) == 1 else np.concatenate(vec_parts)
        meta = meta_parts[0] if len(meta_parts) == 1 else pd.concat(meta_parts, ignore_index=True)
        if "caption" not in meta.columns:
            meta["caption"] = ""
        meta["caption"] = meta["caption"].fillna("")
        # same-named places differ by city (cards and hover show it where the data has it)
        cities = ds.items["city"] if "city" in ds.items else pd.Series([""] * ds.n_items)
        meta["city"] = cities.fillna("").astype(str).to_numpy()[meta["item"].to_numpy(np.int64)]
        key = {"dataset": data.key, "encoder": encoder_spec, "what": what,
               "options": {k: v for k, v in ctx.options.items()}}
        proj = project_cached(vectors, key, cache_root, seed=seed, sample=sample)
        points = meta.iloc[proj.index].reset_index(drop=True)
        points["x"], points["y"] = proj.coords[:, 0], proj.coords[:, 1]
        mapped_vecs = vectors if len(proj.index) == len(vectors) else vectors[proj.index]
        return _Mapped(points=points, vectors=mapped_vecs, n_total=len(vectors),
                       cached=proj.cached, landmarks=proj.landmarks)

    # once per context (its vectors are fixed): a rerun of the page reuses the map in memory
    # instead of hashing the vectors again and reading the coordinates back from DuckDB
    base = ctx.memoize(("embedding_map", data.key, str(cache_root), encoder_spec, what, seed,
                        sample, projection.LANDMARKS), build)
    points, mapped_vecs = base.points, base.vectors
    coords = points[["x", "y"]].to_numpy(np.float32)

    overlay = pd.DataFrame(columns=["x", "y", "role", "name", "item_id", "point"])
    if user_id:
        u = ds.user_index(user_id)
        rows = []
        role = encoder_role(encoder_spec)
        text_side = what in ("items-text", "reviews") or role == "text"
        uvecs, uhas = (user_text_vectors(ctx, encoder_spec) if text_side
                       else user_photo_vectors(ctx, encoder_spec))
        if uhas[u]:
            xy = place_near(uvecs[u], mapped_vecs, coords)[0]
            rows.append({"x": xy[0], "y": xy[1], "role": "user", "name": f"user {user_id}",
                         "item_id": "", "point": -1})
        if what.startswith("items"):
            hist = ctx.train.loc[ctx.train["user"] == u, "item"].to_numpy()
            recs = [ds.item_index(i) for i in recommended if i]
            item = points["item"].to_numpy()
            for role_name, chosen in (("history", hist), ("recommended", recs)):
                for p in np.flatnonzero(np.isin(item, np.asarray(chosen, dtype=np.int64))):
                    rows.append({"x": coords[p, 0], "y": coords[p, 1], "role": role_name,
                                 "name": points.at[p, "name"],
                                 "item_id": points.at[p, "item_id"], "point": int(p)})
        if rows:
            overlay = pd.DataFrame(rows)
    return EmbeddingMap(points=points, overlay=overlay, n_total=base.n_total,
                        cached=base.cached if built else True, what=what, vectors=mapped_vecs,
                        landmarks=base.landmarks)
