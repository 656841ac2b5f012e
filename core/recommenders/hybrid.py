"""``hybrid``: a collaborative row blended with a content row (the study's future work: "an
ensemble of multimodality and interactions").

    score(u, i) = (1 - w) * z_u(cf(u, i)) + w * z_u(content(u, i))

where ``z_u`` standardises a user's scores over all items (mean 0, std 1). ``cf`` is any
registered technique (default ``als``; e.g. ``bpr``, ``lightgcn``, ``freedom``), tuned as it is
alone; the content part is one of ``contents`` (techniques that cannot run with the run's encoders
are skipped and listed in ``params["skipped_contents"]``). The weight covers the whole range,
``weights`` = 0, 0.1, …, 1: ``w = 0`` is the collaborative part alone and ``w = 1`` a content part
alone (their scores are used as they are, so they rank exactly as the parts).

On the validation part (nDCG@10 per user) the reference is the **better single part**: the
collaborative part alone or the best content part alone. A blend (0 < w < 1) replaces it only if
its mean per-user gain over that part exceeds one standard error of the gain (the one-standard-error
rule: smaller gains are indistinguishable from which users happen to be in the validation part). So
on validation the hybrid is never below the better of its parts. Scoring is done once per part on
the validation users; each blend is array arithmetic on those blocks, so the 11-point grid is cheap.
Without tuning (``--no-tune`` or no validation part) the first available content technique is
blended at ``DEFAULT_WEIGHT``.

What the hybrid did is part of its row: ``params["row_label"]`` (the experiment's row label) reads
``Hybrid ALS + text (w=0.3)`` for a blend, ``Hybrid: text alone (REASON)`` or ``Hybrid: ALS alone
(REASON)`` for a single part; ``params["no_blend_reason"]`` holds the full reason (e.g. every
content technique's reason for not running), and the same sentence goes to the run's progress (a
``note`` event). The choice is in params too: ``validation_ndcg@10`` (``{cf}_only`` -> {"0.0": …},
content -> {weight: …} for every content part alone (``"1.0"``) and every blend), ``best_single``
(part, weight, ndcg@10) and ``best_blend`` (content, weight, ndcg@10, gain over the better part,
standard_error, over).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from core.errors import EncoderUnavailable, TechniqueUnavailable
from core.recommenders import register
from core.recommenders.base import MAX_VALID_USERS, FitContext, Recommender

DEFAULT_WEIGHTS = tuple(round(0.1 * i, 1) for i in range(11))  # 0, 0.1, ..., 1
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
    """A collaborative row blended with the content row and weight in [0, 1] that do best on
    validation, never below the better of its parts there.

    Params:
        cf: the collaborative part, any registered technique name (default ``"als"``; an unknown
            name fails with the registry's list of names).
        cf_fixed: its fixed hyperparameters; the others are tuned as ``cf``'s own row tunes them.
        contents: content techniques to try (default ``DEFAULT_CONTENTS``; those that cannot run
            with the run's encoders are skipped).
        weights: the weight grid (default ``DEFAULT_WEIGHTS`` = 0, 0.1, …, 1; 0 and 1 are always
            added, so each part alone is a candidate).
        content, weight: fix the blend (no search); ``weight`` alone is not enough.
        default_weight: the weight without tuning (default ``DEFAULT_WEIGHT``).
        max_valid_users: validation users scored (default 5000, seeded sample).
    """

    name = "hybrid"
    label = "Hybrid ALS + content"
    needs = frozenset()
    uses = frozenset({"text", "image", "clip"})  # whichever content part validation picks
    fallback = "the collaborative part's fallback blended with the content technique's"
    revision = 3  # 3: weights over [0, 1], any collaborative part, the better part as reference

    @classmethod
    def row_title(cls, params: Mapping[str, Any]) -> str:
        """``Hybrid BPR + content`` for ``cf=bpr`` (the cf's label), other params in brackets."""
        from core.recommenders import get_technique
        from core.recommenders.spec import format_params

        cf = str(params.get("cf") or "als")
        try:
            cf = get_technique(cf).label or cf
        except TechniqueUnavailable:
            pass  # fit says so; a title still reads
        shown = {k: v for k, v in params.items() if k != "cf"}
        title = f"Hybrid {cf} + content"
        return f"{title} ({format_params(shown)})" if shown else title

    def fit(self, ctx: FitContext) -> HybridRecommender:
        from core.recommenders import create_recommender, get_technique

        self._remember(ctx)
        cf_name = self.params.setdefault("cf", "als")
        self.cf_label = get_technique(cf_name).label or cf_name
        self.cf = create_recommender(cf_name, **dict(self.params.get("cf_fixed") or {})).fit(ctx)
        self.params["cf_params"] = _plain(self.cf.params)
        fixed = self.params.get("content"), self.params.get("weight")
        names = [fixed[0]] if fixed[0] else list(self.params.get("contents") or DEFAULT_CONTENTS)
        self.contents: dict[str, Recommender] = {}
        skipped: dict[str, str] = {}
        for name in names:
            if name == cf_name:
                continue
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
        if not 0.0 <= self.weight <= 1.0:
            raise TechniqueUnavailable(f"hybrid: weight={self.weight:g} is outside [0, 1]")
        self.params.update(content=self.content_name if self.weight > 0 else None,
                           weight=self.weight)
        self.content = self.contents.get(self.content_name) if self.weight > 0 else None
        self._describe(ctx, skipped, weight_fixed=fixed[0] is not None and fixed[1] is not None)
        return self

    def _describe(self, ctx: FitContext, skipped: dict[str, str], weight_fixed: bool) -> None:
        """Record the row label and, for a single part, why (also logged to the console)."""
        cf = self.cf_label
        if self.content is not None and self.weight < 1.0:
            self.params["row_label"] = f"Hybrid {cf} + {self.content_name} (w={self.weight:g})"
            ctx.log(f"blending {cf} with {self.content_name} at w={self.weight:g}")
            return
        cf_alone = self.content is None
        part = cf if cf_alone else str(self.content_name)
        best = self.params.get("best_blend")
        if cf_alone and not self.contents:
            short = "no content technique could run"
            detail = short + ": " + "; ".join(f"{n}: {r}" for n, r in skipped.items())
        elif weight_fixed:
            short = detail = f"the weight was fixed at {self.weight:g}"
        elif "best_single" not in self.params:
            short = detail = ("tuning is off" if ctx.tuning() is None
                              else "no validation user to pick a blend on")
        elif isinstance(best, dict) and best["gain"] > 0:
            short = "best blend within one standard error on validation"
            detail = self._blend_detail(best, part)
        else:
            short = (f"no blend and no content part beat {cf} alone on validation" if cf_alone
                     else f"it beat {cf} alone and no blend beat it on validation")
            detail = f"{short} ({self._validation_summary()})"
        blend = "no content blend" if cf_alone else "no blend"
        self.params["row_label"] = f"Hybrid: {part} alone ({blend}: {short})"
        self.params["no_blend_reason"] = detail
        ctx.log(f"{part} alone, {blend}: {detail}")

    def _validation_summary(self) -> str:
        """``validation nDCG@10: ALS alone 0.3670, text alone 0.2264, best blend (text, w=0.2)
        0.3658``: the single parts and the best blend, from the validation table."""
        table = self.params["validation_ndcg@10"]
        figures = [f"{self.cf_label} alone {table[self.params['cf'] + '_only']['0.0']:.4f}"]
        figures += [f"{name} alone {row['1.0']:.4f}" for name, row in table.items()
                    if name in self.contents and "1.0" in row]
        best = self.params.get("best_blend")
        if isinstance(best, dict):
            figures.append(f"best blend ({best['content']}, w={best['weight']:g}) "
                           f"{best['ndcg@10']:.4f}")
        return "validation nDCG@10: " + ", ".join(figures)

    @staticmethod
    def _blend_detail(best: dict[str, Any], part: str) -> str:
        return (f"the best blend ({best['content']}, w={best['weight']:g}) gained "
                f"{best['gain']:+.6f} nDCG@10 on validation over {part} alone, not above one "
                f"standard error ({best['standard_error']:.6f})")

    def _tune(self, ctx: FitContext) -> tuple[str | None, float]:
        """Pick (content, w) on validation nDCG@10 (``ctx.validator``, per user): the better single
        part (cf alone, w = 0, or a content part alone, w = 1) unless the best blend's mean
        per-user gain over it exceeds one standard error of that gain."""
        weights = sorted({float(w) for w in self.params.get("weights", DEFAULT_WEIGHTS)}
                         | {0.0, 1.0})
        if not self.contents:
            return None, 0.0
        validator = ctx.tuning()
        if validator is None:
            name = next(iter(self.contents))  # no tuning: the first content at the default weight
            return name, float(self.params.get("default_weight", DEFAULT_WEIGHT))
        users = validator.users(int(self.params.get("max_valid_users", MAX_VALID_USERS)))
        if len(users) == 0:
            return None, 0.0
        cf_scores = self.cf.score(users)
        z_cf = zscore_rows(cf_scores)
        cf_key = f"{self.params['cf']}_only"
        single = {None: validator.per_user(cf_scores, users)}  # part -> per-user nDCG@10
        table: dict[str, dict[str, float]] = {cf_key: {"0.0": round(float(single[None].mean()),
                                                                    6)}}
        blend: tuple[float, str | None, float, np.ndarray | None] = (-1.0, None, 0.0, None)
        for name, rec in self.contents.items():
            c_scores = rec.score(users)
            z_c = zscore_rows(c_scores)
            table[name] = {}
            for w in weights:
                if w == 0.0:
                    continue
                scores = c_scores if w == 1.0 else (1.0 - w) * z_cf + w * z_c
                per_user = validator.per_user(scores, users)
                value = float(per_user.mean())
                table[name][str(w)] = round(value, 6)
                if w == 1.0:
                    single[name] = per_user
                elif value > blend[0] + 1e-12:
                    blend = (value, name, w, per_user)
        self.params["validation_ndcg@10"] = table
        self.params["validation_users"] = int(len(users))
        best_part = max(single, key=lambda k: (float(single[k].mean()), k is None))
        ref = single[best_part]
        self.params["best_single"] = {
            "part": best_part or self.params["cf"], "weight": 0.0 if best_part is None else 1.0,
            "ndcg@10": round(float(ref.mean()), 6)}
        chosen = (best_part, 0.0 if best_part is None else 1.0)
        if blend[1] is None:  # no weight strictly between 0 and 1 in the grid
            return chosen
        gain = blend[3] - ref
        se = float(gain.std(ddof=1) / np.sqrt(len(gain))) if len(gain) > 1 else float("inf")
        self.params["best_blend"] = {
            "content": blend[1], "weight": blend[2], "ndcg@10": round(blend[0], 6),
            "gain": round(float(gain.mean()), 6), "standard_error": round(se, 6),
            "over": best_part or self.params["cf"],
        }
        if float(gain.mean()) <= se:
            return chosen  # within noise of the better part (or below it): keep the simpler model
        return blend[1], blend[2]

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        users = np.atleast_1d(np.asarray(user_idx, dtype=np.int64))
        if self.content is None or self.weight <= 0:
            return np.asarray(self.cf.score(users), dtype=np.float32)
        if self.weight >= 1.0:
            return np.asarray(self.content.score(users), dtype=np.float32)
        w = self.weight
        return ((1.0 - w) * zscore_rows(self.cf.score(users))
                + w * zscore_rows(self.content.score(users))).astype(np.float32)


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    """JSON-friendly copy of a params dict (numbers, strings, lists, dicts)."""
    out = {}
    for key, value in params.items():
        if isinstance(value, (np.integer, np.floating)):
            value = value.item()
        if isinstance(value, (str, int, float, bool, list, dict)) or value is None:
            out[key] = value
    return out
