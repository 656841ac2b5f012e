"""``hybrid``: ALS blended with a content technique (the study's future work: "an ensemble of
multimodality and interactions").

    score(u, i) = (1 - w) * z_u(ALS(u, i)) + w * z_u(content(u, i))

where ``z_u`` standardises a user's scores over all items (mean 0, std 1). The weight ``w`` and the
content technique are picked on the validation part: nDCG@10 of every pair in ``weights`` x
``contents`` (content techniques that cannot run with the run's encoders are skipped and listed in
``params["skipped_contents"]``). ``w = 0`` (ALS alone) is always in the grid. A blend replaces
ALS alone only if its validation gain exceeds one standard error of the per-user paired gain (the
one-standard-error rule): smaller gains are indistinguishable from the noise of which users happen
to be in the validation part, and picking them would tune on noise. So on validation the hybrid is
never worse than ALS, and with ``w = 0`` its scores are exactly ALS's.
Without tuning (``--no-tune`` or no validation part) the first available content technique is
blended at ``DEFAULT_WEIGHT``.

What the hybrid did is part of its row: ``params["row_label"]`` (the experiment's row label) is
``Hybrid ALS + text (w=0.3)`` for a blend and ``Hybrid: ALS alone (no content blend: REASON)``
otherwise, ``params["no_blend_reason"]`` holds the full reason (e.g. every content technique's
reason for not running), and the same sentence goes to the run's progress (a ``note`` event).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.errors import EncoderUnavailable, TechniqueUnavailable
from core.recommenders import register
from core.recommenders.base import MAX_VALID_USERS, FitContext, Recommender

DEFAULT_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5)
DEFAULT_CONTENTS = (
    "text", "image", "clip-t1", "clip-t2", "clip-t3", "clip-t4", "clip-t5", "multiview",
)
DEFAULT_WEIGHT = 0.2  # used when tuning is off (--no-tune)


def zscore_rows(scores: np.ndarray) -> np.ndarray:
    """Each row standardised to mean 0 and standard deviation 1 (constant rows become 0)."""
    scores = np.asarray(scores, dtype=np.float32)
    mean = scores.mean(axis=1, keepdims=True)
    std = scores.std(axis=1, keepdims=True)
    return ((scores - mean) / np.where(std > 1e-12, std, 1.0)).astype(np.float32)


@register
class HybridRecommender(Recommender):
    """ALS blended with the content technique and weight that do best on validation.

    Params: ``cf`` (default ``"als"``) and ``cf_fixed`` (its fixed hyperparameters; the others are
    tuned as ``cf`` alone would be), ``weights``, ``contents`` (grids), or ``weight`` and
    ``content`` to fix the blend without tuning; ``max_valid_users`` (default 5000, seeded sample).
    """

    name = "hybrid"
    label = "Hybrid ALS + content"
    needs = frozenset()
    uses = frozenset({"text", "image", "clip"})  # whichever content part validation picks
    fallback = "the ALS fallback blended with the content technique's (item popularity)"
    revision = 2  # 2: multiview, one of the content parts it may pick, was revised

    def fit(self, ctx: FitContext) -> HybridRecommender:
        from core.recommenders import create_recommender

        self._remember(ctx)
        cf_name = self.params.setdefault("cf", "als")
        self.cf = create_recommender(cf_name, **dict(self.params.get("cf_fixed") or {})).fit(ctx)
        self.params["cf_params"] = _plain(self.cf.params)
        fixed = self.params.get("content"), self.params.get("weight")
        names = [fixed[0]] if fixed[0] else list(self.params.get("contents") or DEFAULT_CONTENTS)
        self.contents: dict[str, Recommender] = {}
        skipped: dict[str, str] = {}
        for name in names:
            try:
                self.contents[name] = create_recommender(name).fit(ctx)
            except (TechniqueUnavailable, EncoderUnavailable) as exc:
                skipped[name] = str(exc)
        self.params["skipped_contents"] = skipped
        if fixed[0] and fixed[0] not in self.contents:
            raise TechniqueUnavailable(
                f"hybrid: content technique {fixed[0]!r} cannot run: {skipped.get(fixed[0])}")
        if fixed[0] and fixed[1] is not None:
            self.content_name, self.weight = fixed[0], float(fixed[1])
        else:
            self.content_name, self.weight = self._tune(ctx)
        self.params.update(content=self.content_name, weight=self.weight)
        self.content = self.contents.get(self.content_name) if self.weight > 0 else None
        self._describe(ctx, skipped, weight_fixed=fixed[0] is not None and fixed[1] is not None)
        return self

    def _describe(self, ctx: FitContext, skipped: dict[str, str], weight_fixed: bool) -> None:
        """Record the row label and, without a blend, why (also logged to the console)."""
        if self.content is not None:
            self.params["row_label"] = f"Hybrid ALS + {self.content_name} (w={self.weight:g})"
            ctx.log(f"blending ALS with {self.content_name} at w={self.weight:g}")
            return
        best = self.params.get("best_blend")
        if not self.contents:
            short = "no content technique could run"
            detail = short + ": " + "; ".join(f"{n}: {r}" for n, r in skipped.items())
        elif weight_fixed:
            short = detail = "the weight was fixed at 0"
        elif isinstance(best, dict):
            short = "best blend within one standard error on validation"
            detail = (f"the best blend ({best['content']}, w={best['weight']:g}) gained "
                      f"{best['gain']:+.6f} nDCG@10 on validation, not above one standard error "
                      f"({best['standard_error']:.6f})")
        elif "validation_ndcg@10" in self.params:
            short = detail = "no blend beat ALS alone on validation"
        else:
            short = detail = "no validation user to pick a blend on"
        self.params["row_label"] = f"Hybrid: ALS alone (no content blend: {short})"
        self.params["no_blend_reason"] = detail
        ctx.log(f"ALS alone, no content blend: {detail}")

    def _tune(self, ctx: FitContext) -> tuple[str | None, float]:
        """Pick (content, w) maximising validation nDCG@10 (``ctx.validator``, per user); ALS alone
        (w = 0) is kept unless the best blend's mean per-user gain exceeds one standard error of
        that gain."""
        weights = sorted({float(w) for w in self.params.get("weights", DEFAULT_WEIGHTS)} | {0.0})
        if not self.contents:
            return None, 0.0
        validator = ctx.tuning()
        if validator is None:
            name = next(iter(self.contents))  # no tuning: the first content at the default weight
            return name, float(self.params.get("default_weight", DEFAULT_WEIGHT))
        users = validator.users(int(self.params.get("max_valid_users", MAX_VALID_USERS)))
        if len(users) == 0:
            return None, 0.0
        z_cf = zscore_rows(self.cf.score(users))
        base = validator.per_user(self.cf.score(users), users)
        best = (float(base.mean()), None, 0.0, base)
        table: dict[str, dict[str, float]] = {"als_only": {"0.0": round(best[0], 6)}}
        for name, rec in self.contents.items():
            z_c = zscore_rows(rec.score(users))
            table[name] = {}
            for w in weights:
                if w == 0.0:
                    continue
                per_user = validator.per_user((1.0 - w) * z_cf + w * z_c, users)
                value = float(per_user.mean())
                table[name][str(w)] = round(value, 6)
                if value > best[0] + 1e-12:
                    best = (value, name, w, per_user)
        self.params["validation_ndcg@10"] = table
        self.params["validation_users"] = int(len(users))
        if best[1] is None:
            return None, 0.0
        gain = best[3] - base
        se = float(gain.std(ddof=1) / np.sqrt(len(gain))) if len(gain) > 1 else float("inf")
        self.params["best_blend"] = {
            "content": best[1], "weight": best[2], "gain": round(float(gain.mean()), 6),
            "standard_error": round(se, 6),
        }
        if float(gain.mean()) <= se:
            return None, 0.0  # within noise of ALS alone: keep the simpler model
        return best[1], best[2]

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        users = np.atleast_1d(np.asarray(user_idx, dtype=np.int64))
        cf = np.asarray(self.cf.score(users), dtype=np.float32)
        if self.content is None or self.weight <= 0:
            return cf
        w = self.weight
        return (1.0 - w) * zscore_rows(cf) + w * zscore_rows(self.content.score(users))


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    """JSON-friendly copy of a params dict (numbers, strings, lists, dicts)."""
    out = {}
    for key, value in params.items():
        if isinstance(value, (np.integer, np.floating)):
            value = value.item()
        if isinstance(value, (str, int, float, bool, list, dict)) or value is None:
            out[key] = value
    return out
