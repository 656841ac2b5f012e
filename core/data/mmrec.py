"""MMRec loader (``mmrec:<dir>`` or ``mmrec:<dir>/<name>.inter``): the layout of the MMRec toolbox
(Zhou et al., github.com/enoche/MMRec), e.g. its Amazon Baby, Sports and Clothing downloads.

Files in ``<dir>``:

- ``<name>.inter`` (required; picked automatically when it is the folder's only ``.inter`` file):
  tab-separated with a header line; columns ``userID`` and ``itemID`` (0-based integers),
  ``x_label`` (the file's own split: 0 train, 1 valid, 2 test) and optionally ``rating`` and
  ``timestamp`` (seconds). Other columns are ignored (named in a warning).
- ``image_feat.npy``, ``text_feat.npy`` (optional, either may be missing): float arrays
  ``(n_items, d)`` whose row ``i`` belongs to ``itemID`` ``i`` (4096-d CNN image features and
  384-d sentence-transformers text features in MMRec's Amazon downloads), with
  ``n_items = max itemID + 1``. They become ``Dataset.item_features["image"]`` / ``["text"]``,
  read by the encoder specs ``features:image`` / ``features:text``.
- ``i_id_mapping.csv`` (optional, tab-separated ``asin``, ``itemID``): the Amazon id of each item,
  kept as the items' extra column ``asin``.

The format has no item names, categories, descriptions, review texts or photos: items are named
by their ``itemID``, interactions carry no text and the dataset has no photos. User and item raw
ids are MMRec's own ``userID`` / ``itemID`` (as text), so the CLI and the app speak them.

The file's split is kept on the interactions (``split_label``, ``core.data.dataset.SPLIT_LABEL``)
and used by ``--split file`` (``core.evaluation.splits``). Filters keep it consistent:
``--max-users`` samples whole users (with all their labelled rows) and the k-core drops rows, the
rows left keep their labels; ``--categories`` is refused (the format has none).

Bad input is an error naming the file and line (an MMRec file is generated, and skipping a line
would change the published split, so this loader is always strict): a missing column, an id that
is not a non-negative integer, an ``x_label`` other than 0/1/2, a rating or timestamp that is not
a number, a line with the wrong number of fields; a feature file that is not a 2-D numeric
``.npy`` array, whose row count is not ``max itemID + 1``, or that holds NaN or infinite values.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.data.csvtable import finish_dataset, read_delimited, reject_rows
from core.data.dataset import SPLIT_LABEL, SPLIT_LABEL_NAMES, Dataset, LoadReport
from core.errors import DatasetError

__all__ = ["FEATURE_FILES", "ITEM_MAP_FILE", "find_inter_file", "load_mmrec"]

#: MMRec's column names (``USER_ID_FIELD``, ``ITEM_ID_FIELD``, ``inter_splitting_label``).
USER_COLUMN, ITEM_COLUMN, LABEL_COLUMN = "userID", "itemID", "x_label"
RATING_COLUMN, TIME_COLUMN = "rating", "timestamp"
REQUIRED_COLUMNS = (USER_COLUMN, ITEM_COLUMN, LABEL_COLUMN)
#: modality -> feature file (MMRec's ``vision_feature_file``, ``text_feature_file``)
FEATURE_FILES = {"image": "image_feat.npy", "text": "text_feat.npy"}
#: optional item metadata of MMRec's preprocessing: ``asin`` <tab> ``itemID``
ITEM_MAP_FILE = "i_id_mapping.csv"
_MAX_ID_DIGITS = 18  # fits int64


def find_inter_file(path: Path) -> Path:
    """The ``.inter`` file of an ``mmrec:`` spec: the file itself, or the only ``.inter`` file of
    the folder. ``DatasetError`` naming the folder (and the files found) otherwise."""
    path = Path(path).expanduser()
    if path.is_file():
        if path.suffix != ".inter":
            raise DatasetError(f"{path}: an mmrec: spec names an MMRec folder or its "
                               "<name>.inter file")
        return path
    if not path.is_dir():
        raise DatasetError(f"MMRec folder not found: {path}")
    found = sorted(p for p in path.glob("*.inter") if p.is_file())
    if not found:
        raise DatasetError(f"{path}: no <name>.inter file (MMRec layout: <name>.inter, "
                           "image_feat.npy, text_feat.npy)")
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise DatasetError(f"{path}: several .inter files ({names}); name one: "
                           f"mmrec:{path}/{found[0].name}")
    return found[0]


def load_mmrec(path: Path, options: Any, name: str) -> Dataset:
    """Load an MMRec folder (see the module docstring for the files) as a ``Dataset``.

    Args:
        path: the folder, or its ``<name>.inter`` file.
        options: ``LoadOptions``: ``max_users``, k-core, ``seed``, ``repeats``; ``categories``
            is refused (the format has none); ``city``, ``state`` and ``strict`` play no role
            (the loader is always strict).
        name: the dataset's spec, used as its identity.
    Returns:
        a ``Dataset`` with the ``split_label`` interaction column, ``item_features`` for the
        feature files present (rows in item-index order), items named by ``itemID`` (plus
        ``asin`` with ``i_id_mapping.csv``) and no photos. The report counts
        ``file_split_train`` / ``_valid`` / ``_test`` (interactions per label),
        ``users_without_train_interactions`` (their held-out rows are left out of the ``file``
        split), ``item_ids_without_interactions`` (ids below the largest one that no line names),
        ``<modality>_feature_dim`` and ``items_without_<modality>_features`` (all-zero rows).
    Raises:
        DatasetError: see the module docstring; also nothing left after the filters.
    """
    inter_file = find_inter_file(path)
    folder = inter_file.parent
    if options.categories:
        raise DatasetError(f"{name}: MMRec data has no item categories, so --categories "
                           f"{','.join(options.categories)} cannot apply; leave it out")
    report = LoadReport()
    inter = _read_inter(inter_file, report)
    n_ids = int(inter["item"].max()) + 1
    features = {m: _read_features(folder / f, n_ids, inter_file)
                for m, f in FEATURE_FILES.items() if (folder / f).is_file()}
    for modality, file in FEATURE_FILES.items():
        if modality not in features:
            report.warn(f"{folder}: no {file}, so features:{modality} is unavailable for this "
                        "dataset")
    used = np.unique(inter["item"].to_numpy())
    report.counts["item_ids_without_interactions"] = int(n_ids - len(used))
    if n_ids > len(used):
        report.warn(f"{inter_file}: {n_ids - len(used)} item id(s) below the largest ({n_ids - 1}) "
                    "appear on no line; they are not items of the dataset")

    items = pd.DataFrame({"item_id": np.arange(n_ids).astype(str)})
    map_file = folder / ITEM_MAP_FILE
    if map_file.is_file():
        items["asin"] = _read_item_map(map_file, n_ids, report, bool(options.strict))
    frame = pd.DataFrame({
        "user_id": inter["user"].astype(str).to_numpy(),
        "item_id": inter["item"].astype(str).to_numpy(),
        "rating": inter["rating"].to_numpy(),
        "timestamp": inter["timestamp"].to_numpy(),
        SPLIT_LABEL: inter["label"].to_numpy(),
    })
    ds = finish_dataset(name, frame, items, None, report, options, "item", inter_file,
                        map_file if map_file.is_file() else None)

    rows = ds.items["item_id"].astype(np.int64).to_numpy()
    kept = {m: matrix[rows] for m, matrix in features.items()}
    for modality, matrix in kept.items():
        report.counts[f"{modality}_feature_dim"] = int(matrix.shape[1])
        report.counts[f"items_without_{modality}_features"] = int((~matrix.any(axis=1)).sum())
    labels = ds.interactions[SPLIT_LABEL].to_numpy()
    for value, part in SPLIT_LABEL_NAMES.items():
        report.counts[f"file_split_{part}"] = int((labels == value).sum())
    with_train = np.zeros(ds.n_users, dtype=bool)
    with_train[ds.interactions["user"].to_numpy()[labels == 0]] = True
    report.counts["users_without_train_interactions"] = int((~with_train).sum())
    if not with_train.all():
        report.warn(f"{inter_file}: {int((~with_train).sum())} user(s) have no train (x_label 0) "
                    "interaction; the file split leaves their valid/test rows out, as MMRec does")
    return dataclasses.replace(ds, item_features=kept)


# --- the interactions file -----------------------------------------------------------------------
def _first_bad(frame: pd.DataFrame, bad: pd.Series) -> tuple[int, int]:
    """``(position, line)`` of the first flagged row."""
    pos = int(np.flatnonzero(bad.to_numpy())[0])
    return pos, int(frame["_line"].iloc[pos])


def _ids(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    values = frame[column].str.strip()
    bad = ~values.str.fullmatch(rf"\d{{1,{_MAX_ID_DIGITS}}}")
    if bad.any():
        pos, line = _first_bad(frame, bad)
        raise DatasetError(f"{path}: line {line}: {column} = {values.iloc[pos]!r} is not a "
                           "non-negative integer (MMRec ids are 0-based integers)")
    return values.astype(np.int64).to_numpy()


def _numbers(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    values = frame[column].str.strip()
    num = pd.to_numeric(values, errors="coerce")
    bad = num.isna() | ~np.isfinite(num.fillna(0))
    if bad.any():
        pos, line = _first_bad(frame, bad)
        raise DatasetError(f"{path}: line {line}: {column} = {values.iloc[pos]!r} is not a "
                           "number")
    return num.to_numpy(dtype=np.float64)


def _read_inter(path: Path, report: LoadReport) -> pd.DataFrame:
    """``user``, ``item``, ``label`` (int), ``rating`` (float32), ``timestamp`` (int64 s)."""
    frame = read_delimited(path, report, sep="\t", quoted=False, strict=True,
                           what="MMRec interactions file")
    found = [c for c in frame.columns if c != "_line"]
    missing = [c for c in REQUIRED_COLUMNS if c not in found]
    if missing:
        raise DatasetError(f"{path}: line 1: missing column(s) {missing} in the header (MMRec "
                           f"needs {', '.join(REQUIRED_COLUMNS)}, tab-separated; found {found})")
    if frame.empty:
        raise DatasetError(f"{path}: no interactions after the header line")
    ignored = [c for c in found if c not in (*REQUIRED_COLUMNS, RATING_COLUMN, TIME_COLUMN)]
    if ignored:
        report.warn(f"{path}: column(s) {ignored} ignored")
    labels = frame[LABEL_COLUMN].str.strip()
    bad = ~labels.isin([str(v) for v in SPLIT_LABEL_NAMES])
    if bad.any():
        pos, line = _first_bad(frame, bad)
        raise DatasetError(f"{path}: line {line}: {LABEL_COLUMN} = {labels.iloc[pos]!r} is not "
                           "0 (train), 1 (valid) or 2 (test)")
    out = pd.DataFrame({"user": _ids(frame, USER_COLUMN, path),
                        "item": _ids(frame, ITEM_COLUMN, path),
                        "label": labels.astype(np.int8).to_numpy()})
    if RATING_COLUMN in found:
        out["rating"] = _numbers(frame, RATING_COLUMN, path).astype(np.float32)
    else:
        out["rating"] = np.float32(1.0)
        report.warn(f"{path}: no {RATING_COLUMN} column: every rating is 1")
    if TIME_COLUMN in found:
        out["timestamp"] = np.floor(_numbers(frame, TIME_COLUMN, path)).astype(np.int64)
    else:  # as the csv: loader does, the file order stands in for time
        out["timestamp"] = np.arange(len(out), dtype=np.int64)
        report.warn(f"{path}: no {TIME_COLUMN} column: the line order stands in for time")
    return out


# --- features and item metadata ------------------------------------------------------------------
def _read_features(path: Path, n_ids: int, inter_file: Path) -> np.ndarray:
    """A feature file as a float32 ``(n_ids, d)`` array, checked (see the module docstring)."""
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DatasetError(f"{path}: cannot read it as a NumPy .npy array ({exc})") from None
    if not isinstance(arr, np.ndarray):  # an .npz archive
        raise DatasetError(f"{path}: expected one .npy array, found an archive of several")
    if arr.ndim != 2:
        raise DatasetError(f"{path}: expected a 2-D array (one row per item), got shape "
                           f"{arr.shape}")
    if arr.dtype.kind not in "fiu":
        raise DatasetError(f"{path}: expected numbers, got dtype {arr.dtype}")
    if arr.shape[0] != n_ids:
        raise DatasetError(
            f"{path}: {arr.shape[0]} rows, but {inter_file} has item ids up to {n_ids - 1}, so "
            f"{n_ids} rows are expected (row i holds the features of itemID i)")
    arr = arr.astype(np.float32, copy=False)
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise DatasetError(f"{path}: row {bad[0]} (itemID {bad[0]}) holds NaN or infinite "
                           f"values ({len(bad)} such row(s))")
    return arr


def _read_item_map(path: Path, n_ids: int, report: LoadReport, strict: bool) -> np.ndarray:
    """The ``asin`` of each item id ``0..n_ids-1`` (``""`` where the file has none)."""
    frame = read_delimited(path, report, sep="\t", quoted=False, strict=strict,
                           what="MMRec item map")
    found = [c for c in frame.columns if c != "_line"]
    if "asin" not in found or ITEM_COLUMN not in found:
        raise DatasetError(f"{path}: line 1: expected the columns asin and {ITEM_COLUMN} "
                           f"(tab-separated), found {found}")
    ids = frame[ITEM_COLUMN].str.strip()
    frame = reject_rows(frame, ~ids.str.fullmatch(rf"\d{{1,{_MAX_ID_DIGITS}}}"), path,
                        f"{ITEM_COLUMN} is not a non-negative integer", report, strict)
    ids = ids[frame.index].astype(np.int64)
    unknown = ids >= n_ids
    report.counts["item_map_unknown_ids"] = int(unknown.sum())
    if unknown.any():
        report.warn(f"{path}: {int(unknown.sum())} line(s) name item ids absent from the "
                    f"interactions (ignored; e.g. {int(ids[unknown].iloc[0])})")
    repeated = ~unknown & ids.duplicated()
    report.counts["item_map_repeated_ids"] = int(repeated.sum())
    if repeated.any():
        report.warn(f"{path}: {int(repeated.sum())} line(s) repeat an item id; kept the first "
                    f"(e.g. {int(ids[repeated].iloc[0])})")
    asin = np.full(n_ids, "", dtype=object)
    keep = ~unknown & ~repeated
    asin[ids[keep].to_numpy()] = frame.loc[keep[keep].index, "asin"].str.strip().to_numpy()
    report.counts["items_without_asin"] = int((asin == "").sum())
    return asin
