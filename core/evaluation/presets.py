"""Evaluation presets: named row lists (``TechniqueSpec``) with their default encoders, and the
run's finishing touches (encoder identities, filters, bootstrap CIs against a baseline).

``study`` — every row of the study's Table 1 that the encoders allow, plus multi-view and hybrid:
random, popular, text, image (one row per image encoder: ``image@SPEC`` rows are the ``image``
technique with param ``encoder=SPEC``), bpr, als, clip-t1 … clip-t5, multiview, hybrid. Default
encoders (each overridable): ``--text-encoder text:minilm``,
``--image-encoder cnn:efficientnet-lite0`` (comma-separated for several image rows),
``--encoder clip:ViT-B-32/openai`` (the study's model; offline without its weights, its rows are
listed as skipped with the reason).
The table shows MAP and nDCG at every k (json/csv: all metrics) and, against ``--baseline`` (default
``als``), the paired bootstrap 95% CI of the nDCG difference at the first k.
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


def apply_preset(
    preset: str, args: argparse.Namespace, techniques: list[TechniqueSpec],
    which: list[str] | None,
) -> tuple[list[TechniqueSpec], list[str] | None]:
    """Expand ``--preset``: fill missing encoder flags on ``args`` with the preset's defaults,
    default ``--baseline``, and return ``(rows, metrics shown in the table)``."""
    if preset != "study":
        raise LabError(f"unknown preset {preset!r}: the only preset is study")
    for role, attr in _ARG_OF_ROLE.items():
        if not getattr(args, attr, None):
            setattr(args, attr, STUDY_DEFAULT_ENCODERS[role])
    images = [s.strip() for s in str(args.image_encoder).split(",") if s.strip()]
    args.image_encoder = images[0]
    if getattr(args, "baseline", None) is None:
        args.baseline = STUDY_BASELINE
    return study_techniques(images), which or list(STUDY_METRICS)


def encoder_identities(encoders: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Per role: the spec, the cache identity (``Encoder.id``: spec + weights identity +
    precision), the ``precision`` it ran in (``fp32`` / ``bf16``; None for encoders without one)
    and whether the weights are random; or the reason the encoder cannot be built."""
    from core.encoders import create_encoder
    from core.errors import EncoderUnavailable

    out: dict[str, dict[str, Any]] = {}
    for role, spec in encoders.items():
        try:
            enc = create_encoder(spec)
            out[role] = {"spec": spec, "id": enc.id, "untrained": bool(enc.untrained),
                         "shared_space": bool(enc.shared_space),
                         "precision": getattr(enc, "precision", None)}
            report = getattr(enc, "precision_report", None)
            if report and report.get("requested") == "auto":  # what was measured, for run.json
                out[role]["precision_report"] = dict(report)
        except EncoderUnavailable as exc:
            out[role] = {"spec": spec, "id": None, "error": str(exc)}
    return out


def finish_run(result: Any, baseline: str | None = None, seed: int = 42) -> pd.DataFrame | None:
    """Complete an ``ExperimentResult`` in place for reporting and ``run.json``:

    * ``meta["encoder_ids"]``: every encoder's identity (``encoder_identities``);
    * ``meta["precision"]``: ``{role: "fp32" | "bf16"}`` for the encoders that have one;
    * ``meta["filters"]``: the filters and what they kept (from the content techniques' params);
    * with ``baseline``: ``meta["bootstrap"]`` and the returned frame of paired bootstrap CIs
      (``core.evaluation.bootstrap.paired_bootstrap``), ``None`` otherwise.
    """
    from core.evaluation.bootstrap import paired_bootstrap

    meta = result.meta
    meta["encoder_ids"] = encoder_identities(meta.get("encoders", {}))
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
