"""``multiview``: CLIPER-style multi-view item representation through the CLIP text tower.

Per item, one prompt per metadata field (``VIEW_PROMPTS``): its name, its categories, its
attributes, its description, and a global view joining them; empty fields give no view. Each
prompt is embedded with the CLIP text tower and weighted by how well it matches the item's photos:

    w_v = softmax_v( cos(view_v, item photo vector) / tau )

Items without photos weight their views equally. The fused text vector ``sum_v w_v view_v``
(re-normalised) is joined with the item photo vector (re-normalised mean), each centred on its
mean over the items first (``centred``: removes the text–photo modality gap), and a user is the
re-normalised mean of the joined vectors of the items consumed in train. Score = cosine.
Matching views to photos compares text with images, so the encoder must share one space (CLIP).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.encoders.base import l2_normalise
from core.recommenders import register
from core.recommenders.clip import ClipRecommender
from core.recommenders.representations import (
    consumed_mean,
    item_photo_vectors,
    mean_of,
)

#: One prompt per metadata view; ``{domain}`` is the dataset's word for an item.
VIEW_PROMPTS: dict[str, str] = {
    "name": "The {domain}'s name is {value}.",
    "categories": "The {domain}'s categories are {value}.",
    "attributes": "The {domain}'s attributes are {value}.",
    "description": "The {domain}'s description is {value}.",
    "global": "A {domain} named {value}.",
}
DEFAULT_TAU = 0.1
#: temperatures tried on validation when tuning is on and ``tau`` is not given
TAU_GRID = (0.03, 0.1, 0.3, 1.0, 3.0)


def _attributes_text(attrs: Any) -> str:
    if not isinstance(attrs, dict) or not attrs:
        return ""
    parts = []
    for key in sorted(attrs):
        value = attrs[key]
        if value in (None, "", "None"):
            continue
        parts.append(f"{key} {value}".replace("_", " "))
    return ", ".join(parts)


def item_views(items, domain: str) -> list[dict[str, str]]:
    """The prompts of every item (``Dataset.items`` frame): ``[{view: prompt}]``; empty fields
    give no view; the global view joins the others."""
    out = []
    for name, cats, desc, attrs in zip(
        items["name"].fillna(""), items["categories"].fillna(""),
        items["description"].fillna(""), items["attributes"],
    ):
        fields = {
            "name": str(name).strip(),
            "categories": str(cats).strip(),
            "attributes": _attributes_text(attrs),
            "description": str(desc).strip(),
        }
        views = {k: VIEW_PROMPTS[k].format(domain=domain, value=v) for k, v in fields.items() if v}
        rest = ("categories", "attributes", "description")
        joined = "; ".join(
            [fields["name"] or "unknown"] + [f"{k}: {fields[k]}" for k in rest if fields[k]]
        )
        views["global"] = VIEW_PROMPTS["global"].format(domain=domain, value=joined)
        out.append(views)
    return out


def view_weights(
    views: np.ndarray, view_mask: np.ndarray, photos: np.ndarray, photo_has: np.ndarray,
    tau: float = DEFAULT_TAU,
) -> np.ndarray:
    """Softmax weights ``(n_items, n_views)``: ``softmax(cos(view, photo) / tau)`` over the item's
    present views (``view_mask``); equal weights for items without a photo vector (``photo_has``).

    ``views`` is ``(n_items, n_views, d)`` and ``photos`` ``(n_items, d)``, all unit (or zero) rows.
    """
    logits = np.einsum("ivd,id->iv", views, photos) / float(tau)
    logits = np.where(photo_has[:, None], logits, 0.0)
    logits = np.where(view_mask, logits, -np.inf)
    top = np.max(logits, axis=1, keepdims=True)
    logits = logits - np.where(np.isfinite(top), top, 0.0)
    weights = np.where(view_mask, np.exp(logits), 0.0)
    total = weights.sum(axis=1, keepdims=True)
    return (weights / np.where(total > 0, total, 1.0)).astype(np.float32)


def centred(vectors: np.ndarray, has: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(vectors, has)`` with the mean of the ``has`` rows taken away and rows re-normalised.

    Text and photo vectors of one shared space sit in two separate cones (the modality gap), so
    their plain mean is dominated by the offset between the cones, the same for every item;
    centring each modality first keeps what tells items apart."""
    vectors = np.asarray(vectors, np.float32)
    has = np.asarray(has, bool)
    if not has.any():
        return vectors, has
    return l2_normalise(vectors - vectors[has].mean(axis=0)) * has[:, None], has


@register
class MultiViewRecommender(ClipRecommender):
    """CLIPER-like: metadata prompts weighted by their match with the photos, fused with them.

    Param ``tau``: softmax temperature. Given, it is used as is; otherwise, with tuning on
    (``ctx.tuning()``), it is picked from ``TAU_GRID`` by validation nDCG@10 (ties: the first,
    i.e. the sharpest), else ``DEFAULT_TAU``; ``params["tuning"]`` lists the trials. See the
    module docstring.
    """

    name = "multiview"
    label = "Multi-view (CLIPER-like)"
    revision = 2  # 2: modalities centred before fusing; tau picked on validation
    cross_modal = True

    def fit(self, ctx):
        if not hasattr(self, "_tau_given"):  # what create_recommender fixed (kept across refits)
            self._tau_given = "tau" in self.params
        validator = None if self._tau_given else ctx.tuning()
        if validator is None:
            self.params.setdefault("tau", DEFAULT_TAU)
            return super().fit(ctx)
        trials = []
        for i, tau in enumerate(TAU_GRID):
            self.params["tau"] = tau
            super().fit(ctx)
            trials.append({"tau": tau, "ndcg@10": round(float(validator.score(self)), 6)})
            ctx.emit("tune", f"tuning {self.name}", done=i + 1, total=len(TAU_GRID))
        best = max(range(len(trials)), key=lambda i: (trials[i]["ndcg@10"], -i))
        self.params["tau"] = TAU_GRID[best]
        super().fit(ctx)
        self.params["tuning"] = {"metric": "ndcg@10 on validation", "trials": trials}
        return self

    def vectors(self, ctx, spec):
        ds = ctx.dataset
        tau = float(self.params.get("tau", DEFAULT_TAU))
        per_item = item_views(ds.items, ds.domain)
        names = list(VIEW_PROMPTS)
        prompts = sorted({p for views in per_item for p in views.values()})
        vecs, ok = ctx.embeddings.texts(spec, prompts)
        vecs = l2_normalise(np.asarray(vecs, np.float32) * np.asarray(ok, bool)[:, None])
        row = {p: i for i, p in enumerate(prompts)}
        index = np.full((ds.n_items, len(names)), -1, dtype=np.int64)
        for i, views in enumerate(per_item):
            for j, view in enumerate(names):
                if view in views and ok[row[views[view]]]:
                    index[i, j] = row[views[view]]
        mask = index >= 0
        view_vecs = vecs[np.where(mask, index, 0)] * mask[..., None]
        photos, photo_has = item_photo_vectors(ctx, spec)
        weights = view_weights(view_vecs, mask, photos, photo_has, tau)
        fused_text = l2_normalise(np.einsum("iv,ivd->id", weights, view_vecs))
        text_has = mask.any(axis=1)
        self.view_names = names
        self.weights = weights
        self.params["mean_view_weights"] = {
            n: round(float(weights[text_has, j].mean()), 4) if text_has.any() else 0.0
            for j, n in enumerate(names)
        }
        items, item_has = mean_of(centred(fused_text, text_has), centred(photos, photo_has))
        users, user_has = consumed_mean(ctx.train_csr, items, item_has)
        return users, user_has, items, item_has
