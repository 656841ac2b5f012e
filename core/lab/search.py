"""Free-text search over the items: a query embedded by the shared image–text space (the CLIP
role's encoder: real CLIP, or an ``align:`` space trained on the dataset) or by the text encoder,
matched against photo vectors or item text vectors from the embedding cache.

Modes (``SEARCH_MODES``): ``photos`` (shared space: text → photos; an item scores its best photo),
``shared-text`` (shared space: text → item text), ``text`` (text encoder: text → item text).
``auto`` (``default_search_mode``) is ``photos`` when the CLIP role holds a trained shared space
(``core.lab.choices.trained_shared_space``), else ``text``: an untrained CLIP's photo search
shows the pipeline, not meaning.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.encoders.align.config import is_align_spec
from core.errors import LabError, TechniqueUnavailable
from core.lab.choices import DEFAULT_ENCODERS, default_encoders, trained_shared_space
from core.lab.data import LabData, items_frame
from core.progress import Progress

#: Search modes and their labels with a CLIP encoder (``mode_label`` words them for the space
#: actually chosen).
SEARCH_MODES = {
    "photos": "CLIP: text → photos (zero-shot)",
    "shared-text": "CLIP: text → item text",
    "text": "Text encoder: text → item text",
}
#: The same modes' labels when the CLIP role holds an ``align:`` space.
_SHARED_LABELS = {
    "photos": "Shared space: text → photos",
    "shared-text": "Shared space: text → item text",
}
#: The encoder role each mode embeds the query with.
MODE_ROLE = {"photos": "clip", "shared-text": "clip", "text": "text"}


def mode_label(mode: str, encoders: dict[str, str | None]) -> str:
    """How ``mode`` reads for the chosen encoders: "Shared space: …" when the CLIP role holds an
    ``align:`` space, "CLIP: …" for a CLIP encoder."""
    clip = encoders.get("clip") or ""
    if is_align_spec(clip) and mode in _SHARED_LABELS:
        return _SHARED_LABELS[mode]
    return SEARCH_MODES.get(mode, mode)


def search_modes(data: LabData, encoders: dict[str, str | None]) -> list[str]:
    """The modes the chosen encoders and the data allow (photo search needs photos)."""
    return [m for m in SEARCH_MODES
            if encoders.get(MODE_ROLE[m]) and (m != "photos" or len(data.ds.photos))]


def default_search_mode(data: LabData, encoders: dict[str, str | None]) -> str:
    """``photos`` when the CLIP role holds a trained shared space (``align:``, or a real CLIP whose
    weights are here) and the data has photos; else ``text`` (text encoder → item text) when a
    text encoder is chosen; else the first mode offered. ``TechniqueUnavailable`` when none is."""
    modes = search_modes(data, encoders)
    if not modes:
        raise TechniqueUnavailable("search needs a CLIP (shared space) or a text encoder: pick "
                                   "one in the sidebar (--encoder / --text-encoder)")
    if "photos" in modes and trained_shared_space(encoders.get("clip")):
        return "photos"
    return "text" if "text" in modes else modes[0]


def _train_with_progress(ctx: Any, spec: str, progress: Progress | None) -> None:
    """Train an ``align:`` space's heads (and encode its towers' missing inputs) with ``embed`` and
    ``train`` events to ``progress``, when they are not stored yet; nothing otherwise."""
    if progress is None or not is_align_spec(spec):
        return
    emb = ctx.embeddings
    enc = emb.encoder(spec)
    if enc.stored_heads() is not None:
        return
    from core.store import EmbeddingProvider

    # the same store as the shared provider, with events (that provider may have none)
    reporting = EmbeddingProvider(ctx.dataset, emb.store.root, progress=progress,
                                  store=emb.store)
    enc.heads(provider=reporting, progress=progress)


#: a first ``align:`` search also trains its heads (about 7–10 s on the demo, 2 cores)
ALIGN_TRAIN_S = 10.0


def first_search_seconds(data: LabData, mode: str, spec: str) -> float:
    """A rough upper bound of the first search's time in ``mode`` with ``spec``: embedding the
    catalogue (every photo, or every review and item document) at the rough rates of
    ``core.lab.runs.ENCODE_SECONDS``, plus training the heads of an ``align:`` space; later
    searches read the cache and take about a second."""
    from core.lab.runs import ENCODE_SECONDS

    ds = data.ds
    if mode == "photos":
        n, per = len(ds.photos), ENCODE_SECONDS["photo"]
    else:
        n, per = len(ds.interactions) + ds.n_items, ENCODE_SECONDS["text"]
    return ENCODE_SECONDS["load"] + n * per + (ALIGN_TRAIN_S if is_align_spec(spec) else 0.0)


def search(data: LabData, ctx: Any, query: str, mode: str = "auto", n: int = 12,
           progress: Progress | None = None) -> pd.DataFrame:
    """Items nearest to a free-text ``query``: columns rank, item_id, name, category, score,
    photo (the best-matching photo in ``photos`` mode, else the cover), caption (of that photo).

    ``mode``: one of ``SEARCH_MODES`` or ``auto`` (``default_search_mode``). ``progress``
    receives ``embed`` / ``train`` events when an ``align:`` space is trained on first use.
    """
    from core.recommenders.representations import item_text_vectors

    query = (query or "").strip()
    if not query:
        raise LabError("type a few words to search for, e.g. 'spicy noodle soup'")
    if mode == "auto":
        mode = default_search_mode(data, ctx.encoders)
    if mode not in SEARCH_MODES:
        raise LabError(f"unknown search mode {mode!r}: choose from auto, "
                       f"{', '.join(SEARCH_MODES)}")
    role = MODE_ROLE[mode]
    spec = ctx.encoders.get(role)
    if not spec:
        raise TechniqueUnavailable(
            f"search mode {mode_label(mode, ctx.encoders)!r} needs a {role} encoder")
    _train_with_progress(ctx, spec, progress)
    emb = ctx.embeddings
    qv, ok = emb.texts(spec, [query])
    qv = np.asarray(qv, dtype=np.float32)[0]
    ds = data.ds
    if mode == "photos":
        if len(ds.photos) == 0:
            raise TechniqueUnavailable(f"dataset {ds.name} has no photos to search")
        vecs, pok = emb.photos(spec)
        sims = np.where(np.asarray(pok, bool), np.asarray(vecs, np.float32) @ qv, -np.inf)
        ph = ds.photos.assign(score=sims)
        ph = ph[np.isfinite(ph["score"])].sort_values("score", ascending=False, kind="stable")
        best = ph.drop_duplicates("item").head(n)
        idx = best["item"].to_numpy(dtype=np.int64)
        out = items_frame(data, idx)
        out["photo"] = best["path"].to_numpy()
        out["caption"] = best["caption"].fillna("").to_numpy()
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


@dataclass(frozen=True)
class SearchResult:
    """What ``run_search`` found: the hits (``search``'s frame), the mode it ran (``auto``
    resolved), the encoder spec that embedded the query, and the mode's label."""

    hits: pd.DataFrame
    mode: str
    spec: str
    label: str


def run_search(data: LabData, cache_root: str | Path, query: str, mode: str = "auto",
               encoders: dict[str, str | None] | None = None, n: int = 10,
               split: str = "random", seed: int = 42,
               progress: bool | Progress | None = None) -> SearchResult:
    """``search`` outside the app (the CLI): the fit context is built as the app builds it
    (``split_of`` → ``provider`` → ``fit_context``). ``encoders``: ``clip`` / ``text`` specs;
    missing roles take ``default_encoders`` (a real CLIP whose weights are here, else
    ``DEFAULT_ALIGN``; ``text:minilm``). ``progress``: ``True`` for bars on stderr."""
    from core.lab.data import fit_context, provider, split_of
    from core.progress import resolve_progress

    given = dict(encoders or {})
    if given.get("clip") is None and mode != "text":  # (probing CLIP weights imports open_clip)
        given["clip"] = default_encoders()["clip"]
    if given.get("text") is None:
        given["text"] = DEFAULT_ENCODERS["text"]
    emit = resolve_progress(progress)
    ctx = fit_context(data, split_of(data, split, seed), provider(data, cache_root, emit),
                      given, {}, seed)
    if mode == "auto":
        mode = default_search_mode(data, ctx.encoders)
    hits = search(data, ctx, query, mode, n=n, progress=emit)
    return SearchResult(hits=hits, mode=mode, spec=str(ctx.encoders[MODE_ROLE[mode]]),
                        label=mode_label(mode, ctx.encoders))
