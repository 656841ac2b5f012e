"""Datasets: the canonical ``Dataset`` and one loader per source, behind ``load_dataset(spec)``.

Specs: ``demo`` (synthetic Yelp-layout data generated into the cache on first use), ``yelp:<dir>``,
``movielens:<dir>``, ``csv:<config.toml>``, ``mmrec:<dir>`` (MMRec's ``<name>.inter`` with its own
split, plus item feature files; ``core.data.mmrec``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from core.data.dataset import REPEAT_MODES, Dataset, LoadReport, build_dataset
from core.errors import DatasetError

__all__ = [
    "Dataset", "LoadOptions", "LoadReport", "build_dataset", "list_datasets", "load_dataset",
]


@dataclass(frozen=True)
class LoadOptions:
    """Filters and strictness shared by every loader (a loader ignores what does not apply).

    Attributes:
        categories: keep items whose categories contain one of these substrings (case-insensitive);
            ``None`` = the loader's default (Yelp: restaurants and food, as in the study; others:
            all).
        city, state: keep items in this city / state (Yelp), case-insensitive exact match.
        min_user_interactions, min_item_interactions: k-core filter, applied until stable.
        max_users: keep at most this many users, sampled reproducibly with ``seed``.
        strict: fail on the first malformed line (naming file and line) instead of skipping it.
        repeats: ``"collapse"`` (default) turns the copies of a repeated user-item pair (a second
            review of the same restaurant, a second purchase of the same article) into one
            interaction before any split: the earliest copy's timestamp, rating and review id,
            with the later copies' texts appended (``core.data.dataset.collapse_repeats``).
            ``"keep"`` keeps every copy; then one pair can sit in both train and test, where the
            test copy is masked as already seen and can never be recommended, which deflates
            the metrics.
    Raises:
        DatasetError: ``repeats`` is not one of ``"collapse"``, ``"keep"``.
    """

    categories: tuple[str, ...] | None = None
    city: str | None = None
    state: str | None = None
    min_user_interactions: int = 1
    min_item_interactions: int = 1
    max_users: int | None = None
    seed: int = 42
    strict: bool = False
    repeats: str = "collapse"

    def __post_init__(self) -> None:
        if self.repeats not in REPEAT_MODES:
            raise DatasetError(f"LoadOptions.repeats = {self.repeats!r} is not one of "
                               f"{', '.join(REPEAT_MODES)} (CLI: --repeats)")


_SOURCES = {
    "demo": "Synthetic Yelp-layout demo (restaurants, reviews, photos), generated offline",
    "yelp": "Yelp Open Dataset directory: yelp:<dir> (business/review/user JSON, photos.json)",
    "movielens": "MovieLens ML-100K or ml-latest-small directory: movielens:<dir> (+ posters/)",
    "csv": "Any dataset described by a TOML column mapping: csv:<config.toml>",
    "mmrec": "MMRec folder: mmrec:<dir> (<name>.inter with its own split, image_feat.npy, "
             "text_feat.npy)",
}


def list_datasets() -> list[dict[str, str]]:
    """The dataset sources as ``[{"source", "spec", "description"}]`` (a fresh list)."""
    examples = {"demo": "demo", "yelp": "yelp:DIR", "movielens": "movielens:DIR",
                "csv": "csv:CONFIG.toml", "mmrec": "mmrec:DIR"}
    return [{"source": k, "spec": examples[k], "description": v} for k, v in _SOURCES.items()]


def parse_spec(spec: str) -> tuple[str, str]:
    """Split ``source:argument``; ``DatasetError`` naming the spec if the source is unknown."""
    spec = spec.strip()
    if spec == "demo":
        return "demo", ""
    source, sep, arg = spec.partition(":")
    if not sep or source not in _SOURCES or source == "demo" or not arg:
        raise DatasetError(
            f"unknown dataset spec {spec!r}: use one of demo, yelp:<dir>, movielens:<dir>, "
            "csv:<config.toml>, mmrec:<dir>"
        )
    return source, arg


def load_dataset(
    spec: str, cache_dir: str | Path | None = None, options: LoadOptions | None = None
) -> Dataset:
    """Load a dataset from its spec (see the module docstring); filters come from ``options``.

    A folder source (``demo``, ``yelp:``, ``movielens:``, ``mmrec:``) is read back from its
    snapshot in ``<cache>/datasets`` while its files, the options and the loader code are
    unchanged (``core.data.snapshot``; ``MMREC_DATASET_SNAPSHOTS=0`` turns that off).
    """
    from core.config import cache_dir as resolve_cache
    from core.data import snapshot

    options = options or LoadOptions()
    source, arg = parse_spec(spec)
    cache_root = resolve_cache(cache_dir)
    if source == "demo":
        from core.data.demo import ensure_demo
        from core.data.yelp import load_yelp

        root = ensure_demo(cache_root / "demo")
        return snapshot.cached(spec, options, root, cache_root,
                               lambda: load_yelp(root, replace(options), name="demo"))
    if source == "yelp":
        from core.data.yelp import load_yelp as load
    elif source == "movielens":
        from core.data.movielens import load_movielens as load
    elif source == "mmrec":
        from core.data.mmrec import load_mmrec as load
    else:
        from core.data.csvtable import load_csv

        return load_csv(Path(arg), options, name=spec)
    root = Path(arg)
    if not root.is_dir():  # the loader says what is wrong with it
        return load(root, options, name=spec)
    return snapshot.cached(spec, options, root, cache_root,
                           lambda: load(root, options, name=spec))
