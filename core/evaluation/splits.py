"""Train / validation / test splits of a dataset's interactions (seeded, deterministic, vectorised).

Kinds (``ratios`` = train/valid/test shares, default 0.8/0.1/0.1):

* ``random`` — the study's protocol: interactions are shuffled with ``seed`` and cut at 80% / 90%.
* ``user`` — within each user, that user's interactions are shuffled and the one at position ``r``
  (0-based, of ``n_u``) goes to train if ``(r + 0.5) / n_u < 0.8``, else valid if ``< 0.9``, else
  test. Users with one or two interactions keep them all in train.
* ``temporal`` — a global time cut: with ``t1``, ``t2`` the timestamps at the 80% and 90% positions
  in time order, train = ``timestamp < t1``, valid = ``t1 <= timestamp < t2``, test = the rest
  (rows sharing a timestamp stay together; ``seed`` plays no role).
* ``cold-item`` — items are shuffled with ``seed``; the first 10% of items form the test items and
  the next 10% the validation items, each with *all* their interactions; train holds the other
  items' interactions, so no test or validation item appears in train.
* ``file`` — the dataset's own split, from its ``split_label`` column (an ``mmrec:`` dataset's
  ``x_label``: 0 train, 1 valid, 2 test); ``seed`` and ``ratios`` play no role. As MMRec does
  (``filter_out_cod_start_users``), valid and test rows of users without any train row are left
  out (counted in ``Split.info``), so ``valid`` and ``test`` may not cover every labelled row.

Each part is a sub-frame of ``dataset.interactions`` keeping the original index.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.data.dataset import SPLIT_LABEL, Dataset
from core.errors import LabError

SPLIT_KINDS = ("random", "user", "temporal", "cold-item", "file")


@dataclass
class Split:
    """The three parts of a split, plus how it was made."""

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    kind: str
    seed: int
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    #: what the split left out and why (``file``: ``cold_start_users``,
    #: ``cold_start_interactions``); part of ``describe``
    info: dict[str, int] = field(default_factory=dict)

    def sizes(self) -> dict[str, int]:
        """Interactions per part."""
        return {"train": len(self.train), "valid": len(self.valid), "test": len(self.test)}

    def describe(self) -> dict[str, object]:
        """Kind, seed, ratios, sizes and ``info`` (for run.json and the app)."""
        return {"kind": self.kind, "seed": self.seed, "ratios": list(self.ratios), **self.sizes(),
                **self.info}


def make_split(
    ds: Dataset, kind: str, seed: int, ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
) -> Split:
    """Split ``ds.interactions`` into train/valid/test; see the module docstring for each kind.

    Raises:
        LabError: unknown kind, ratios that do not sum to 1, or ``file`` on a dataset without
            split labels.
    """
    if kind not in SPLIT_KINDS:
        raise LabError(f"unknown split {kind!r}: choose from {', '.join(SPLIT_KINDS)}")
    if kind == "file":
        return _file_split(ds, seed)
    ratios = tuple(float(r) for r in ratios)
    if len(ratios) != 3 or min(ratios) < 0 or abs(sum(ratios) - 1.0) > 1e-6:
        raise LabError(f"split ratios must be three non-negative shares summing to 1, got {ratios}")
    inter = ds.interactions
    n = len(inter)
    c1, c2 = ratios[0], ratios[0] + ratios[1]
    part = np.zeros(n, dtype=np.int8)  # 0 train, 1 valid, 2 test (positional)
    if kind == "random":
        order = np.random.default_rng(seed).permutation(n)
        n1, n2 = int(round(c1 * n)), int(round(c2 * n))
        part[order[n1:n2]] = 1
        part[order[n2:]] = 2
    elif kind == "user":
        order = np.random.default_rng(seed).permutation(n)
        users = inter["user"].to_numpy()[order]
        # stable sort by user keeps the random order within each user
        by_user = order[np.argsort(users, kind="stable")]
        u_sorted = inter["user"].to_numpy()[by_user]
        counts = np.bincount(u_sorted, minlength=ds.n_users)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        pos = np.arange(n) - np.repeat(starts[counts > 0], counts[counts > 0])
        frac = (pos + 0.5) / counts[u_sorted]
        p = np.where(frac < c1, 0, np.where(frac < c2, 1, 2)).astype(np.int8)
        part[by_user] = p
    elif kind == "temporal":
        ts = inter["timestamp"].to_numpy()
        sorted_ts = np.sort(ts, kind="stable")
        t1 = sorted_ts[min(n - 1, int(round(c1 * n)))]
        t2 = sorted_ts[min(n - 1, int(round(c2 * n)))]
        part[(ts >= t1) & (ts < t2)] = 1
        part[ts >= t2] = 2
    else:  # cold-item
        perm = np.random.default_rng(seed).permutation(ds.n_items)
        n_test = int(round(ratios[2] * ds.n_items))
        n_valid = int(round(ratios[1] * ds.n_items))
        item_part = np.zeros(ds.n_items, dtype=np.int8)
        item_part[perm[:n_test]] = 2
        item_part[perm[n_test:n_test + n_valid]] = 1
        part = item_part[inter["item"].to_numpy()]
    return Split(
        train=inter[part == 0], valid=inter[part == 1], test=inter[part == 2],
        kind=kind, seed=int(seed), ratios=ratios,  # type: ignore[arg-type]
    )


def _file_split(ds: Dataset, seed: int) -> Split:
    """The dataset's own split (``SPLIT_LABEL``), without the held-out rows of users who have no
    train row (MMRec's ``filter_out_cod_start_users``)."""
    inter = ds.interactions
    if SPLIT_LABEL not in inter.columns:
        others = ", ".join(k for k in SPLIT_KINDS if k != "file")
        raise LabError(f"split file: dataset {ds.name} carries no split labels of its own (only "
                       f"mmrec: datasets do, from their x_label column); choose one of {others}")
    part = inter[SPLIT_LABEL].to_numpy(dtype=np.int8)
    users = inter["user"].to_numpy()
    with_train = np.zeros(ds.n_users, dtype=bool)
    with_train[users[part == 0]] = True
    cold = (part > 0) & ~with_train[users]
    n = max(1, int((~cold).sum()))
    ratios = tuple(round(float(((part == p) & ~cold).sum()) / n, 4) for p in (0, 1, 2))
    return Split(
        train=inter[part == 0], valid=inter[(part == 1) & ~cold],
        test=inter[(part == 2) & ~cold], kind="file", seed=int(seed),
        ratios=ratios,  # type: ignore[arg-type]
        info={"cold_start_users": int(len(np.unique(users[cold]))),
              "cold_start_interactions": int(cold.sum())},
    )
