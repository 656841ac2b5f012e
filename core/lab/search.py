"""Free-text search over the items: a query embedded by the CLIP text tower or the text encoder,
matched against photo vectors (zero-shot) or item text vectors from the embedding cache."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from core.errors import LabError, TechniqueUnavailable
from core.lab.data import LabData, items_frame

#: Search modes and their labels (the page's picker).
SEARCH_MODES = {
    "clip-photos": "CLIP: text → photos (zero-shot)",
    "clip-text": "CLIP: text → item text",
    "text": "Text encoder: text → item text",
}


def search(data: LabData, ctx: Any, query: str, mode: str, n: int = 12) -> pd.DataFrame:
    """Items nearest to a free-text ``query``: columns rank, item_id, name, category, score,
    photo (the best-matching photo in ``clip-photos`` mode, else the cover), caption.

    Modes: ``clip-photos`` (CLIP text tower → photo vectors; an item scores its best photo),
    ``clip-text`` / ``text`` (query → item text vectors of the CLIP or text encoder).
    """
    from core.recommenders.representations import item_text_vectors

    query = (query or "").strip()
    if not query:
        raise LabError("type a few words to search for, e.g. 'spicy noodle soup'")
    if mode not in SEARCH_MODES:
        raise LabError(f"unknown search mode {mode!r}: choose from {', '.join(SEARCH_MODES)}")
    role = "text" if mode == "text" else "clip"
    spec = ctx.encoders.get(role)
    if not spec:
        raise TechniqueUnavailable(f"search mode {SEARCH_MODES[mode]!r} needs a {role} encoder")
    emb = ctx.embeddings
    qv, ok = emb.texts(spec, [query])
    qv = np.asarray(qv, dtype=np.float32)[0]
    ds = data.ds
    if mode == "clip-photos":
        if len(ds.photos) == 0:
            raise TechniqueUnavailable(f"dataset {ds.name} has no photos to search")
        vecs, pok = emb.photos(spec)
        sims = np.where(np.asarray(pok, bool), np.asarray(vecs, np.float32) @ qv, -np.inf)
        ph = ds.photos.assign(score=sims)
        ph = ph[np.isfinite(ph["score"])].sort_values("score", ascending=False)
        best = ph.drop_duplicates("item").head(n)
        idx = best["item"].to_numpy(dtype=np.int64)
        out = items_frame(data, idx)
        out["photo"] = best["path"].to_numpy()
        out["caption"] = best["caption"].to_numpy()
        out["score"] = best["score"].to_numpy()
    else:
        vecs, has = item_text_vectors(ctx, spec)
        sims = np.where(np.asarray(has, bool), np.asarray(vecs, np.float32) @ qv, -np.inf)
        idx = np.argsort(-sims, kind="stable")[:n]
        idx = idx[np.isfinite(sims[idx])]
        out = items_frame(data, idx)
        out["caption"] = ""
        out["score"] = sims[idx]
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out.reset_index(drop=True)
