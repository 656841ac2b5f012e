"""``python -m core align``: train (or load) an aligned space and compare its held-out retrieval
with chance and with CLIP encoders on the same held-out pairs."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.encoders.align.config import parse_align_spec
from core.encoders.align.quality import KS, retrieval

#: CLIP compared by default: the study's model when its weights are here, and untrained CLIP.
DEFAULT_COMPARE = ("clip:ViT-B-32/openai", "clip:ViT-B-32/untrained")


@dataclass
class AlignReport:
    """What ``align_dataset`` did: the aligned encoder's spec, id and stored ``info``, whether the
    heads were loaded (``reused``), and held-out figures of the compared encoders (spec ->
    ``retrieval`` dict, or ``{"error": reason}``)."""

    spec: str
    id: str
    info: dict[str, Any]
    reused: bool
    seconds: float
    compared: dict[str, dict[str, Any]] = field(default_factory=dict)


def align_spec(text: str, image: str, options: dict[str, Any] | None = None) -> str:
    """The canonical ``align:`` spec of two towers and option overrides (None values ignored),
    validated as any spec is (``parse_align_spec``)."""
    query = "&".join(f"{k}={v}" for k, v in (options or {}).items() if v is not None)
    return parse_align_spec(f"align:{text}+{image}" + (f"?{query}" if query else "")).spec


def _heldout_vectors(provider, enc, spec: str, texts: list[str],
                     photo_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``spec``'s vectors of the held-out texts and photos (only those are encoded)."""
    tv, _ = provider.texts(spec, texts)
    ph = provider.dataset.photos.iloc[photo_rows]
    paths = [str(p) for p in ph["path"]]
    hashes = provider.store.photo_hashes(provider.dataset.name,
                                         ph["photo_id"].astype(str).tolist(), paths)
    res = provider.store.get_or_compute(enc, "image", paths, hashes=hashes,
                                        progress=provider.progress)
    return np.asarray(tv, np.float32), np.asarray(res.vectors, np.float32)


def align_dataset(ds, spec: str, cache_root: str | Path, compare: list[str] | tuple[str, ...] = (),
                  progress: Any = True) -> AlignReport:
    """Train (or load) the heads of ``spec`` on ``ds`` and measure the ``compare`` encoders
    (shared-space encoders, e.g. CLIP) on the same held-out pairs."""
    from core.errors import EncoderUnavailable
    from core.store.provider import EmbeddingProvider

    t0 = time.perf_counter()
    provider = EmbeddingProvider(ds, cache_root, progress=progress)
    enc = provider.encoder(spec)
    reused = enc.stored_heads() is not None
    enc.heads(provider, provider.progress)
    report = AlignReport(spec=enc.spec, id=enc.id, info=enc.info, reused=reused,
                         seconds=time.perf_counter() - t0)
    ps = enc.pairs()
    held = ps.heldout
    t_used = np.unique(ps.text_idx[held])
    p_used = np.unique(ps.photo_idx[held])
    from core.encoders import clip_weights_here

    for other in compare:
        if not clip_weights_here(other):
            report.compared[other] = {"error": "its weights are not on this machine"}
            continue
        try:
            cenc = provider.encoder(other)
            if not cenc.shared_space:
                raise EncoderUnavailable(f"{other} has no shared image–text space")
            tv, pv = _heldout_vectors(provider, cenc, other, [ps.texts[i] for i in t_used],
                                      ps.photos[p_used])
            t_full = np.zeros((len(ps.texts), tv.shape[1]), np.float32)
            p_full = np.zeros((len(ps.photos), pv.shape[1]), np.float32)
            t_full[t_used], p_full[p_used] = tv, pv
            report.compared[other] = retrieval(t_full, p_full, ps.text_idx[held],
                                               ps.photo_idx[held], ps.kind[held])
            report.compared[other]["untrained"] = bool(cenc.untrained)
        except (EncoderUnavailable, ImportError, OSError, RuntimeError) as exc:
            report.compared[other] = {"error": str(exc).splitlines()[0]}
    return report


def format_report(report: AlignReport) -> str:
    """The CLI's text: what was trained on what, then held-out Recall@1/5/10 per direction for
    the aligned space, chance and every compared encoder."""
    info = report.info
    pairs = info.get("pairs", {})
    hp = info.get("hyperparameters", {})
    how = "loaded: trained before" if report.reused else "trained now"
    per_kind = ", ".join(f"{k} {pairs.get('pairs_' + k, 0):,}" for k in pairs.get("kinds", []))
    lines = [
        f"aligned space {info.get('key')} ({how}, {report.seconds:.1f} s; training took "
        f"{info.get('seconds', 0.0):.1f} s)",
        f"  spec  {report.spec}",
        f"  id    {report.id}",
        f"  pairs {pairs.get('pairs', 0):,} ({per_kind}); "
        f"train {pairs.get('pairs_train', 0):,} pairs of {pairs.get('items_train', 0)} items, "
        f"held out {pairs.get('pairs_heldout', 0):,} of {pairs.get('items_heldout', 0)} items"
        + (f"; {pairs['captions_empty']} empty captions skipped" if pairs.get("captions_empty")
           else ""),
        f"  heads {hp.get('head')} → {info.get('dim')}-d, {hp.get('epochs')} epochs, batch "
        f"{hp.get('batch')}, lr {hp.get('lr')}, seed {hp.get('seed')}; loss "
        f"{info['loss'][0]:.3f} → {info['loss'][-1]:.3f}" if info.get("loss") else "",
        f"  {info.get('content', '')}",
        "",
    ]
    held = info.get("heldout", {})
    heads = [f"R@{k}" for k in KS]
    lines.append(f"held-out retrieval ({held.get('texts', 0)} texts × {held.get('photos', 0)} "
                 "photos of items the heads never saw; R@k = share of queries with a match in "
                 "the top k)")
    width = max([28, *(len(s) + len(" (untrained)") for s in report.compared)])
    lines.append(f"  {'encoder':<{width}}  " + "  ".join(f"t→i {h:>5}" for h in heads) + "  "
                 + "  ".join(f"i→t {h:>5}" for h in heads))

    def row(name: str, fig: dict[str, Any], key: str = "recall") -> str:
        cells = [f"{fig[d][f'{key}@{k}']:>9.3f}" for d in ("text_to_image", "image_to_text")
                 for k in KS]
        return f"  {name:<{width}}  " + "  ".join(cells)

    if "text_to_image" in held:
        lines.append(row("align (this space)", held))
        lines.append(row("chance", held, "chance"))
    for name, fig in report.compared.items():
        if "error" in fig:
            lines.append(f"  {name:<{width}}  not measured: {fig['error']}")
        elif "text_to_image" in fig:
            lines.append(row(name + (" (untrained)" if fig.get("untrained") else ""), fig))
    by_kind = held.get("by_kind", {})
    for kind, fig in by_kind.items():
        if "text_to_image" in fig:
            lines.append(f"  {kind} pairs only: t→i R@10 {fig['text_to_image']['recall@10']:.3f} "
                         f"(chance {fig['text_to_image']['chance@10']:.3f}), i→t R@10 "
                         f"{fig['image_to_text']['recall@10']:.3f} (chance "
                         f"{fig['image_to_text']['chance@10']:.3f})")
    return "\n".join(line for line in lines if line is not None)
