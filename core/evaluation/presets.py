"""Evaluation presets: named row lists (``TechniqueSpec``) with their default encoders, and the
run's finishing touches (encoder identities, filters, bootstrap CIs against a baseline).

``study`` — every row of the study's Table 1 that the encoders allow, plus multi-view and hybrid:
random, popular, text, image (one row per image encoder: ``image@SPEC`` rows are the ``image``
technique with param ``encoder=SPEC``), bpr, als, clip-t1 … clip-t5, multiview, hybrid. Default
encoders (each overridable): ``--text-encoder text:minilm``,
``--image-encoder cnn:efficientnet-lite0`` (comma-separated for several image rows),
``--encoder clip:ViT-B-32/openai`` (the study's model) when its weights are here; without them
(closed network, no hub cache) and no ``--encoder``, the CLIP rows run on ``align:TEXT+IMAGE`` —
the run's text and first image encoder aligned on the dataset's own pairs
(``core.encoders.align``) — and the table header says so.
The table shows MAP and nDCG at every k (json/csv: all metrics) and, against ``--baseline`` (default
``als``), the paired bootstrap 95% CI of the nDCG difference at the first k.

``multimodal`` — collaborative backbones with the content inside them, beside the collaborative
rows: popular, als, lightgcn, vbpr, freedom, fusion, hybrid; with ``--ablations`` also the
"w/o text" and "w/o image" rows of vbpr, freedom and fusion (row param ``ablate``). Default encoders
``--text-encoder text:minilm`` and ``--image-encoder cnn:efficientnet-lite0`` feed the item
features (any text or image spec works, e.g. an ``align:`` space or ``features:image``); the table
shows Recall and nDCG (MMRec's table reports Recall@20 and NDCG@20) with CIs against ``als``.
"""

from __future__ import annotations

import argparse
from typing import Any

import pandas as pd

from core.errors import LabError
from core.recommenders.spec import TechniqueSpec, as_specs

STUDY_DEFAULT_ENCODERS = {
    "text": "text:minilm",
    "image": "cnn:efficientnet-lite0",
    "clip": "clip:ViT-B-32/openai",
}
STUDY_METRICS = ["map", "ndcg"]
STUDY_BASELINE = "als"
PRESETS = ("study", "multimodal")
MULTIMODAL_METRICS = ["recall", "ndcg"]
#: the multimodal preset's backbones that read item features (ablated with --ablations)
MULTIMODAL_ABLATED = ("vbpr", "freedom", "fusion")
_ARG_OF_ROLE = {"clip": "encoder", "text": "text_encoder", "image": "image_encoder"}


def study_techniques(
    image_encoders: list[str] | tuple[str, ...] = ("",),
) -> list[TechniqueSpec]:
    """The study preset's rows in order; one ``image`` row per image encoder: the first is
    ``image`` (the run's image encoder), the others ``TechniqueSpec("image", {"encoder": SPEC},
    label="image@SPEC")``."""
    images = [TechniqueSpec("image")] + [
        TechniqueSpec("image", {"encoder": spec}, label=f"image@{spec}")
        for spec in list(image_encoders)[1:]]
    return as_specs([
        "random", "popular", "text", *images, "bpr", "als",
        "clip-t1", "clip-t2", "clip-t3", "clip-t4", "clip-t5", "multiview", "hybrid"])


def multimodal_techniques(ablations: bool = False) -> list[TechniqueSpec]:
    """The multimodal preset's rows in order; with ``ablations`` each of ``MULTIMODAL_ABLATED``
    is followed by its ``ablate=text`` and ``ablate=image`` rows."""
    rows: list[Any] = ["popular", "als", "lightgcn"]
    for name in MULTIMODAL_ABLATED:
        rows.append(name)
        if ablations:
            rows += [TechniqueSpec(name, {"ablate": m}) for m in ("text", "image")]
    return as_specs([*rows, "hybrid"])


def apply_preset(
    preset: str, args: argparse.Namespace, techniques: list[TechniqueSpec],
    which: list[str] | None,
) -> tuple[list[TechniqueSpec], list[str] | None]:
    """Expand ``--preset``: fill missing encoder flags on ``args`` with the preset's defaults,
    default ``--baseline``, and return ``(rows, metrics shown in the table)``."""
    if preset not in PRESETS:
        raise LabError(f"unknown preset {preset!r}: presets are {', '.join(PRESETS)}")
    if getattr(args, "ablations", False) and preset != "multimodal":
        raise LabError("--ablations adds the w/o-text and w/o-image rows of --preset multimodal; "
                       f"--preset {preset} has none")
    if getattr(args, "baseline", None) is None:
        args.baseline = STUDY_BASELINE
    if preset == "multimodal":
        for role in ("text", "image"):
            if not getattr(args, _ARG_OF_ROLE[role], None):
                setattr(args, _ARG_OF_ROLE[role], STUDY_DEFAULT_ENCODERS[role])
        return (multimodal_techniques(bool(getattr(args, "ablations", False))),
                which or list(MULTIMODAL_METRICS))
    from core.encoders import clip_weights_here

    clip_given = bool(getattr(args, "encoder", None))
    for role, attr in _ARG_OF_ROLE.items():
        if not getattr(args, attr, None):
            setattr(args, attr, STUDY_DEFAULT_ENCODERS[role])
    images = [s.strip() for s in str(args.image_encoder).split(",") if s.strip()]
    if not clip_given and not clip_weights_here(args.encoder):
        study_clip = args.encoder
        args.encoder = f"align:{args.text_encoder}+{images[0]}"
        args.preset_notes = [
            f"CLIP rows use {args.encoder} (the text and image encoders aligned on this dataset's "
            f"own pairs): {study_clip} weights are not here; give --encoder to choose"]
    args.image_encoder = images[0]
    return study_techniques(images), which or list(STUDY_METRICS)


def align_report(info: dict[str, Any]) -> dict[str, Any]:
    """What run.json keeps of an ``align:`` encoder's heads: key, pairs, what they were trained
    on (content only), hyperparameters, held-out retrieval (``core.encoders.align.quality``)."""
    keep = ("key", "towers", "pairs", "content", "hyperparameters", "dim", "heldout", "summary",
            "seconds", "trained_at")
    return {k: info[k] for k in keep if k in info}


def encoder_identities(encoders: dict[str, str], dataset: Any = None,
                       cache_root: Any = None) -> dict[str, dict[str, Any]]:
    """Per role: the spec, the cache identity (``Encoder.id``: spec + weights identity +
    precision), the ``precision`` it ran in (``fp32`` / ``bf16``; None for encoders without one)
    and whether the weights are random; or the reason the encoder cannot be built. An
    ``align:`` encoder (built on ``dataset`` and ``cache_root``) adds ``align``
    (``align_report``)."""
    from core.encoders import create_encoder
    from core.errors import EncoderUnavailable

    out: dict[str, dict[str, Any]] = {}
    for role, spec in encoders.items():
        try:
            enc = create_encoder(spec, dataset=dataset, cache_root=cache_root)
            out[role] = {"spec": spec, "id": enc.id, "untrained": bool(enc.untrained),
                         "shared_space": bool(enc.shared_space),
                         "precision": getattr(enc, "precision", None)}
            report = getattr(enc, "precision_report", None)
            if report and report.get("requested") == "auto":  # what was measured, for run.json
                out[role]["precision_report"] = dict(report)
            if getattr(enc, "kind", "") == "align":
                out[role]["align"] = align_report(enc.info)
        except EncoderUnavailable as exc:
            out[role] = {"spec": spec, "id": None, "error": str(exc)}
    return out


def finish_run(result: Any, baseline: str | None = None, seed: int = 42, dataset: Any = None,
               cache_root: Any = None) -> pd.DataFrame | None:
    """Complete an ``ExperimentResult`` in place for reporting and ``run.json``:

    * ``meta["encoder_ids"]``: every encoder's identity (``encoder_identities``);
    * ``meta["precision"]``: ``{role: "fp32" | "bf16"}`` for the encoders that have one;
    * ``meta["filters"]``: the filters and what they kept (from the content techniques' params);
    * with ``baseline``: ``meta["bootstrap"]`` and the returned frame of paired bootstrap CIs
      (``core.evaluation.bootstrap.paired_bootstrap``), ``None`` otherwise.
    """
    from core.evaluation.bootstrap import paired_bootstrap

    meta = result.meta
    meta["encoder_ids"] = encoder_identities(meta.get("encoders", {}), dataset, cache_root)
    meta["precision"] = {role: ident["precision"] for role, ident in meta["encoder_ids"].items()
                         if ident.get("precision")}
    options = meta.get("options", {})
    filters: dict[str, Any] = {"photo_filter": options.get("photo_filter"),
                               "review_filter": options.get("review_filter")}
    for params in result.params.values():  # each content technique saw part of the picture
        if isinstance(params, dict) and isinstance(params.get("filters"), dict):
            filters.update(params["filters"])
    meta["filters"] = filters
    if not baseline:
        return None
    ci = paired_bootstrap(result.per_user, baseline, seed=seed)
    meta["bootstrap"] = {"baseline": baseline, "confidence": 0.95, "resamples": 1000,
                         "seed": int(seed), "rows": ci.to_dict(orient="records")}
    return ci
