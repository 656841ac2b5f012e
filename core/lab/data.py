"""The loaded dataset the pages share (``LabData``: the ``Dataset`` plus read-only lookups), its
splits, and the fit context / embedding provider that search, maps and explanations build on.

Also the two small display helpers the other modules share: ``items_frame`` (raw ids, names,
categories, photos of item indices) and ``snippet`` (a review shortened for a card).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.data import Dataset, LoadOptions

#: Categories too generic to colour a map by (Yelp tags nearly every restaurant with them).
GENERIC_CATEGORIES = frozenset(
    {"restaurants", "food", "nightlife", "bars", "event planning & services"})


@dataclass
class LabData:
    """A loaded dataset plus the read-only lookups every page uses (built once per load).

    Attributes:
        key: identity of the data (``core.store.runs.dataset_key``: spec, load options, counts),
            part of every stored run's key, the same as ``python -m core evaluate`` computes.
        cover: per item index, the path of a representative photo (food first) or ``None``.
        category: per item index, its most specific category (for colouring maps).
    """

    ds: Dataset
    spec: str
    key: str
    cover: np.ndarray
    category: np.ndarray

    @property
    def is_demo(self) -> bool:
        return self.spec.strip() == "demo"


def load(spec: str, cache_dir: str | Path | None = None,
         options: LoadOptions | None = None) -> LabData:
    """Load dataset ``spec`` (``demo`` is generated into the cache on first use) with its lookups.

    Raises:
        LabError: a bad spec, a missing file, an empty result after filters (message names it).
    """
    from core.data import load_dataset
    from core.store.runs import dataset_key

    options = options or LoadOptions()
    ds = load_dataset(spec, cache_dir=cache_dir, options=options)
    key = dataset_key(spec, options, ds)  # the CLI's evaluate keys its runs the same way
    return LabData(ds=ds, spec=spec.strip(), key=key, cover=_covers(ds), category=_categories(ds))


def _covers(ds: Dataset) -> np.ndarray:
    out = np.full(ds.n_items, None, dtype=object)
    if len(ds.photos) == 0:
        return out
    ph = ds.photos.assign(_food=(ds.photos["label"].str.lower() != "food"))
    first = ph.sort_values(["item", "_food", "photo_id"], kind="stable").drop_duplicates("item")
    out[first["item"].to_numpy()] = first["path"].to_numpy()
    return out


def _categories(ds: Dataset) -> np.ndarray:
    out = []
    for cats in ds.items["categories"].fillna(""):
        parts = [c.strip() for c in str(cats).split(",") if c.strip()]
        specific = [c for c in parts if c.lower() not in GENERIC_CATEGORIES]
        out.append((specific or parts or ["(none)"])[0])
    return np.asarray(out, dtype=object)


def describe(data: LabData) -> tuple[dict[str, Any], list[str]]:
    """Counts (``Dataset.summary``) and the loader's warnings, for the sidebar."""
    return data.ds.summary(), list(data.ds.report.warnings)


def split_of(data: LabData, kind: str, seed: int):
    """The ``core.evaluation.splits.Split`` of ``kind`` with ``seed``."""
    from core.evaluation.splits import make_split

    return make_split(data.ds, kind, seed)


def provider(data: LabData, cache_root: str | Path, progress: Any = None):
    """An ``EmbeddingProvider`` over the dataset (models load only on cache misses)."""
    from core.store import EmbeddingProvider

    return EmbeddingProvider(data.ds, Path(cache_root), progress=progress)


def fit_context(data: LabData, split: Any, embeddings: Any, encoders: dict[str, str | None],
                options: dict[str, Any] | None = None, seed: int = 42):
    """A ``FitContext`` on the split's train part (for representations and content models), with
    the validator of its validation part (as the experiment builds it)."""
    from core.evaluation.evaluator import Validator
    from core.recommenders import FitContext

    opts = {k: v for k, v in (options or {}).items() if k != "tune"}
    train_csr = data.ds.csr(split.train)
    return FitContext(
        dataset=data.ds, train=split.train, train_csr=train_csr,
        valid=split.valid, seed=seed, embeddings=embeddings,
        encoders={r: s for r, s in encoders.items() if s}, options=opts,
        validator=Validator.of(data.ds, train_csr, split.valid, seed, opts.get("min_rating")),
    )


def items_frame(data: LabData, idx: np.ndarray) -> pd.DataFrame:
    """Columns item_id (raw), name, category, photo (the cover) of the item indices ``idx``."""
    idx = np.asarray(idx, dtype=np.int64)
    items = data.ds.items
    return pd.DataFrame({
        "item_id": items["item_id"].to_numpy()[idx].astype(str),
        "name": items["name"].to_numpy()[idx],
        "category": data.category[idx],
        "photo": data.cover[idx],
    })


def snippet(text: Any, n: int = 160) -> str:
    """``text`` on one line, cut at a word to at most ``n`` characters (``""`` for no text)."""
    if not isinstance(text, str) or not text.strip():
        return ""
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1].rsplit(" ", 1)[0] + " …"
