"""Generic loader: any dataset described by a small TOML column mapping (``csv:<config.toml>``).

The config names an interactions file (CSV/TSV or Parquet), an optional items file, an optional
image folder or image-path column, and which column plays which role. Paths are relative to the
config file. Example (an Amazon-reviews-like export)::

    [dataset]
    domain = "product"

    [interactions]
    path = "reviews.csv"
    user = "reviewerID"
    item = "asin"
    rating = "overall"
    timestamp = "unixReviewTime"
    text = ["summary", "reviewText"]

    [items]
    path = "meta.csv"
    id = "asin"
    name = "title"
    categories = "category"
    categories_sep = "|"
    description = ["description", "feature"]
    attributes = ["brand", "price"]

    [images]
    column = "image_path"

How the mapped columns are used:

* ``[interactions] text`` columns are joined with a space into the review text, set aside on
  disk as the file is read (``CHUNK_ROWS`` rows at a time, never in the interactions frame);
  the texts of the rows left after the filters become ``Dataset.texts`` (a Parquet file, as for
  Yelp). ``review_id``, when mapped, is kept once per id (the earliest copy;
  ``duplicate_review_ids`` counts the ids seen on several lines).
* ``[items] categories``: each listed column is split on ``categories_sep`` (default ``,``) and
  every piece becomes one category (``["product_group", "product_type"]`` gives
  ``"Garment Upper body, Sweater"``), duplicates removed.
* The item document the text encoders see (``Dataset.item_text()``) is the ``name``, then
  ``Categories: ...``, then the ``description`` columns joined with a space, then
  ``Attributes: brand: Acme; price: 9.99.`` from the ``attributes`` columns (empty values left
  out).
* ``[images] pattern`` is a Python format string with one field, ``item_id``, which is text
  (as written in the items file): ``"{item_id}.jpg"``, or ``"{item_id:0>10}.jpg"`` to pad ids
  with zeros to ten characters. Numeric format specs such as ``{item_id:010d}`` do not apply to
  text and are rejected with an error naming the setting. ``column`` instead names an image-path
  column of the items file. Photos missing on disk, empty (0 bytes) or with no image header are
  counted (``photos_missing_on_disk``, ``photos_zero_byte``, ``photos_undecodable``) and left out.
* Ids are compared as text, exactly: ``108775015`` in the interactions and ``0108775015`` in the
  items file are different items. When no interaction names a known item, the error shows
  example ids from both files.
* Repeated user-item pairs (a shopper buying the same article twice) become one interaction
  unless ``LoadOptions.repeats == "keep"`` (see ``core.data.dataset.collapse_repeats``).

This module also holds the tabular helpers the MovieLens loader shares: ``read_delimited`` (all
fields as strings, malformed lines skipped and counted with their line number, or an error in
strict mode), ``reject_rows``, ``parse_timestamps`` and ``finish_dataset`` (filters + build; the
``max_users`` sampling and the k-core run in DuckDB, ``core.data.filters``).
"""

from __future__ import annotations

import csv
import re
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.data.dataset import TEXT_KEY, Dataset, LoadReport, build_dataset
from core.data.filters import k_core, sample_users
from core.data.photos import screen_photos
from core.data.texts import ReviewTexts, SpilledTexts
from core.errors import DatasetError

__all__ = [
    "finish_dataset", "load_csv", "parse_timestamps", "read_delimited", "reject_rows",
]

#: Keys a config may hold, per section (anything else is a typo and is reported as such).
_KEYS: dict[str, set[str]] = {
    "dataset": {"domain", "name"},
    "interactions": {"path", "user", "item", "rating", "timestamp", "timestamp_unit",
                     "timestamp_format", "review_id", "text", "sep", "format", "encoding"},
    "items": {"path", "id", "name", "categories", "categories_sep", "description", "attributes",
              "sep", "format", "encoding"},
    "images": {"folder", "pattern", "column", "label"},
}

#: Counts every tabular loader reports even when zero, so ``datasets describe`` shows them.
ZERO_COUNTS = ("malformed_lines", "unknown_item_interactions")


# --- reading -------------------------------------------------------------------------------------
#: Rows read at a time: columns set aside (review texts) are handed over a chunk at a time.
CHUNK_ROWS = 100_000


@dataclass(frozen=True)
class SetAside:
    """Columns a reader hands to ``take`` a chunk of rows at a time and leaves out of its frame
    (the ``csv:`` loader writes its review texts to disk this way, never holding them all).

    ``take`` gets each chunk with every column (the index is each row's position in the file, as
    in the frame), before the columns are dropped; it may raise ``DatasetError``.
    """

    columns: tuple[str, ...]
    take: Callable[[pd.DataFrame], None]


def read_delimited(
    path: Path,
    report: LoadReport,
    *,
    sep: str = ",",
    names: list[str] | None = None,
    encoding: str = "utf-8",
    quoted: bool = True,
    strict: bool = False,
    what: str = "file",
    aside: SetAside | None = None,
) -> pd.DataFrame:
    """Read a delimited text file with every field as a string (``""`` when empty).

    Lines with the wrong number of fields are skipped and counted as ``malformed_lines`` (with a
    warning naming the file and the first line), or raise ``DatasetError`` naming the file and
    line when ``strict``. Blank lines are ignored. The result has an extra ``_line`` column: the
    1-based line number of each row (records are counted, so a quoted field spanning lines
    shifts later numbers), and its index is each row's record position (0-based, skipped lines
    left out). ``names`` = the columns of a file without a header line. The file is read
    ``CHUNK_ROWS`` rows at a time; ``aside`` columns go to ``aside.take`` chunk by chunk and are
    left out of the result.
    """
    if not path.is_file():
        raise DatasetError(f"{what} not found: {path}")
    first = 1 if names else 2
    kwargs: dict[str, Any] = dict(
        sep=sep, header=None if names else 0, names=names, dtype=str, keep_default_na=False,
        na_filter=False, index_col=False, skip_blank_lines=False, encoding=encoding,
        encoding_errors="replace", quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE,
        engine="c", chunksize=CHUNK_ROWS,
    )
    skipped: list[int] = []
    chunks: list[pd.DataFrame] = []
    total = 0  # rows read, blank ones included
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            with pd.read_csv(path, on_bad_lines="error" if strict else "warn", **kwargs) as rd:
                for chunk in rd:
                    total += len(chunk)
                    chunks.append(_read_chunk(chunk, aside))
        for w in caught:
            skipped += [int(n) for n in re.findall(r"Skipping line (\d+)", str(w.message))]
    except pd.errors.EmptyDataError:
        raise DatasetError(f"{path}: the file is empty (expected a header line)") from None
    except pd.errors.ParserError as exc:
        m = re.search(r"[Ee]xpected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if m:
            raise DatasetError(
                f"{path}: line {m.group(2)}: malformed line (expected {m.group(1)} fields, "
                f"saw {m.group(3)})"
            ) from None
        raise DatasetError(f"{path}: cannot parse: {exc}") from None
    frame = pd.concat(chunks) if len(chunks) > 1 else chunks[0]  # pandas yields one at least
    total_records = total + len(skipped)
    kept = np.setdiff1d(np.arange(first, first + total_records),
                        np.asarray(skipped, dtype=np.int64))
    lines = kept if len(kept) == total else np.arange(first, first + total)
    frame["_line"] = lines[frame.index.to_numpy(dtype=np.int64)]
    if skipped:
        report.add("malformed_lines", len(skipped))
        report.warn(f"{path}: skipped {len(skipped)} line(s) with the wrong number of fields "
                    f"(first at line {min(skipped)})")
    return frame


def _read_chunk(chunk: pd.DataFrame, aside: SetAside | None) -> pd.DataFrame:
    """One chunk of ``read_delimited``: string columns with stripped names, blank rows left
    out, ``aside`` columns handed over and dropped."""
    chunk = chunk.astype(str) if len(chunk.columns) else chunk
    chunk.columns = [str(c).strip() for c in chunk.columns]
    if len(chunk.columns):
        chunk = chunk[~(chunk == "").all(axis=1)]
    if aside is None:
        return chunk
    aside.take(chunk)
    return chunk.drop(columns=[c for c in aside.columns if c in chunk.columns])


def read_table(
    path: Path, report: LoadReport, *, fmt: str | None, sep: str, encoding: str, strict: bool,
    what: str, aside: SetAside | None = None,
) -> pd.DataFrame:
    """A CSV/TSV (via ``read_delimited``) or Parquet file as string columns plus ``_line``.

    For Parquet, ``_line`` is the 1-based row number (the index the 0-based one); null values
    become ``""``. ``aside`` columns go to ``aside.take`` (see ``SetAside``), ``CHUNK_ROWS``
    rows at a time, and are left out of the result.
    """
    fmt = (fmt or "").lower() or ("parquet" if path.suffix.lower() in (".parquet", ".pq")
                                  else "tsv" if path.suffix.lower() == ".tsv" else "csv")
    if fmt == "parquet":
        if not path.is_file():
            raise DatasetError(f"{what} not found: {path}")
        try:
            return _read_parquet(path, aside)
        except DatasetError:
            raise
        except Exception as exc:  # pyarrow raises several types for a corrupt file
            raise DatasetError(f"{path}: cannot read as Parquet: {exc}") from None
    if fmt not in ("csv", "tsv"):
        raise DatasetError(f"{what}: format = {fmt!r} is not supported (use csv, tsv or parquet)")
    return read_delimited(path, report, sep="\t" if fmt == "tsv" and sep == "," else sep,
                          encoding=encoding, strict=strict, what=what, aside=aside)


def _as_text(values: pd.Series) -> pd.Series:
    """A Parquet column as ``read_table`` gives it: each value's ``str``, ``""`` for null."""
    return values.astype(object).where(values.notna(), "").astype(str)


def _read_parquet(path: Path, aside: SetAside | None) -> pd.DataFrame:
    """``read_table`` of a Parquet file: the ``aside`` columns are read a batch at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    index = {c for c in (pf.schema_arrow.pandas_metadata or {}).get("index_columns", [])
             if isinstance(c, str)}  # a pandas index saved as columns is not data
    names = [c for c in pf.schema_arrow.names if c not in index]
    moved = [c for c in names if aside is not None and c in aside.columns]
    raw = pd.read_parquet(path, columns=[c for c in names if c not in moved])
    frame = pd.DataFrame({str(c): _as_text(raw[c]).to_numpy() for c in raw.columns},
                         index=np.arange(pf.metadata.num_rows))
    if aside is not None:
        # an integer column's text depends on the whole column (any null makes 5 read "5.0")
        whole = {c: _as_text(pd.read_parquet(path, columns=[c])[c]) for c in moved
                 if pa.types.is_integer(pf.schema_arrow.field(c).type)}
        start = 0
        batches = pf.iter_batches(batch_size=CHUNK_ROWS, columns=moved) if moved else []
        for batch in batches:
            stop = start + batch.num_rows
            part = batch.to_pandas()
            texts = {c: whole[c].to_numpy()[start:stop] if c in whole
                     else _as_text(part[c]).to_numpy() for c in moved}
            aside.take(frame.iloc[start:stop].assign(**texts)[names])
            start = stop
        if not moved or not pf.metadata.num_rows:  # let ``take`` see the columns once
            aside.take(frame.iloc[:0].assign(**{c: "" for c in moved})[names])
    frame["_line"] = np.arange(1, len(frame) + 1)
    return frame


def reject_rows(
    frame: pd.DataFrame, bad: pd.Series, path: Path, reason: str, report: LoadReport, strict: bool,
) -> pd.DataFrame:
    """Drop rows flagged ``bad``, counted as ``malformed_lines``; ``strict`` raises on the first."""
    bad = bad.fillna(True).astype(bool)
    if not bad.any():
        return frame
    lines = frame.loc[bad, "_line"]
    first = int(lines.min())
    if strict:
        raise DatasetError(f"{path}: line {first}: malformed line ({reason})")
    report.add("malformed_lines", int(bad.sum()))
    report.warn(f"{path}: skipped {int(bad.sum())} malformed line(s) ({reason}), "
                f"first at line {first}")
    return frame[~bad]


def parse_timestamps(
    values: pd.Series, unit: str = "s", fmt: str | None = None
) -> tuple[np.ndarray, pd.Series]:
    """Seconds since the epoch (int64) and a mask of unparseable values.

    Integers are read as seconds (``unit="ms"``: milliseconds); anything else as date strings
    (``fmt`` is an optional ``strptime`` format, e.g. ``"%Y-%m-%d"``).
    """
    values = values.astype(str).str.strip()
    num = pd.to_numeric(values, errors="coerce")
    if fmt is None and num.notna().mean() >= 0.5:
        seconds = num // 1000 if unit == "ms" else num
        bad = seconds.isna()
        return seconds.fillna(0).astype(np.int64).to_numpy(), bad
    dates = pd.to_datetime(values, errors="coerce", format=fmt, utc=True)
    bad = dates.isna()
    delta = (dates - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return delta.fillna(0).astype(np.int64).to_numpy(), bad


# --- filters + build -----------------------------------------------------------------------------
def filter_categories(items: pd.DataFrame, categories: tuple[str, ...] | None) -> pd.DataFrame:
    """Items whose ``categories`` contain one of the substrings (case-insensitive); all if none."""
    if not categories:
        return items
    cats = items["categories"].fillna("").str.lower()
    keep = np.zeros(len(items), dtype=bool)
    for sub in categories:
        keep |= cats.str.contains(sub.lower(), regex=False).to_numpy()
    return items[keep]


def _examples(values: pd.Series, n: int = 3) -> str:
    return ", ".join(repr(v) for v in pd.unique(values.astype(str))[:n])


def _no_match_error(name: str, inter: pd.DataFrame, items: pd.DataFrame,
                    interactions_file: Path, items_file: Path | None) -> DatasetError:
    """Every interaction named an unknown item: show ids from both files and a likely cause."""
    inter_ids, item_ids = inter["item_id"].astype(str), items["item_id"].astype(str)
    where = f"the items file {items_file}" if items_file else "the items file"
    hint = ("the item id columns of both files must hold the same text; check leading zeros "
            "and numbers saved as text vs numbers (e.g. 123 vs 123.0)")
    stripped = set(item_ids.str.lstrip("0"))
    if inter_ids.str.lstrip("0").isin(stripped).any():
        hint = ("the ids match once leading zeros are removed: one file lost them (ids saved as "
                "numbers); re-export it with the id column as text, zero-padded like the other")
    in_items = (f"{_examples(item_ids)} in the items file" if len(item_ids)
                else "the items file has no usable row")
    return DatasetError(
        f"{name}: every one of the {len(inter)} interaction(s) in {interactions_file} names an "
        f"item missing from {where} (e.g. {_examples(inter_ids)} in the interactions; "
        f"{in_items}): {hint}"
    )


def finish_dataset(
    name: str,
    inter: pd.DataFrame,
    items: pd.DataFrame,
    photos: pd.DataFrame | None,
    report: LoadReport,
    options: Any,
    domain: str,
    interactions_file: Path,
    items_file: Path | None = None,
    texts_from: Callable[[np.ndarray, np.ndarray, np.ndarray], ReviewTexts] | None = None,
) -> Dataset:
    """Drop interactions with unknown items (counted), apply the filters, build the Dataset.

    Filter order: categories, then ``max_users`` sampling, then the k-core (so the k-core holds
    in the result; it counts distinct user-item pairs unless ``options.repeats == "keep"``); the
    last two run in DuckDB (``core.data.filters``). Repeated pairs are then collapsed or kept by
    ``build_dataset``, which also takes ``texts_from`` (with a ``TEXT_KEY`` column).

    Raises:
        DatasetError: naming both files with example ids from each when no interaction names a
            known item; naming the filters when nothing is left after them.
    """
    for key in ZERO_COUNTS:
        report.counts.setdefault(key, 0)
    known_ids = set(items["item_id"].astype(str))
    known = inter["item_id"].astype(str).isin(known_ids)
    if len(inter) and not known.any():
        raise _no_match_error(name, inter, items, interactions_file, items_file)
    if (~known).any():
        n = int((~known).sum())
        report.add("unknown_item_interactions", n)
        report.warn(f"{interactions_file}: {n} interaction(s) name items missing from the items "
                    f"file (dropped; e.g. {_examples(inter.loc[~known, 'item_id'])})")
        inter = inter[known]
    if inter.empty:
        raise DatasetError(f"{name}: no interactions left after reading {interactions_file}")
    kept = filter_categories(items, options.categories)
    if len(kept) < len(items):
        report.add("items_dropped_by_categories", len(items) - len(kept))
        inter = inter[inter["item_id"].astype(str).isin(set(kept["item_id"].astype(str)))]
    inter = _sample_and_core(inter, options, report)
    if inter.empty:
        raise DatasetError(
            f"{name}: no interactions left after filters (categories={options.categories}, "
            f"max_users={options.max_users}, min_user={options.min_user_interactions}, "
            f"min_item={options.min_item_interactions}); loosen them"
        )
    if photos is not None and len(photos):  # photos of filtered-out items are not "unknown"
        photos = photos[photos["item_id"].astype(str).isin(set(inter["item_id"].astype(str)))]
    return build_dataset(name, inter, kept, photos, report=report, domain=domain,
                         repeats=options.repeats, interactions_file=str(interactions_file),
                         texts_from=texts_from)


def _sample_and_core(inter: pd.DataFrame, options: Any, report: LoadReport) -> pd.DataFrame:
    """``max_users`` sampling, then the k-core (``core.data.filters``), run in DuckDB on the
    frame's ids; the rows left, in their order."""
    if not (options.max_users or options.min_user_interactions > 1
            or options.min_item_interactions > 1):
        return inter
    import duckdb

    con = duckdb.connect()
    try:
        con.register("ids", pd.DataFrame({"row": np.arange(len(inter), dtype=np.int64),
                                          "user_id": inter["user_id"].to_numpy(),
                                          "item_id": inter["item_id"].to_numpy()}))
        con.execute("CREATE TEMP TABLE inter AS SELECT * FROM ids")
        con.unregister("ids")
        sample_users(con, "inter", options.max_users, options.seed, report)
        k_core(con, "inter", options.min_user_interactions, options.min_item_interactions,
               report, distinct_pairs=options.repeats == "collapse")
        rows = con.execute("SELECT row FROM inter ORDER BY row").fetchnumpy()["row"]
    finally:
        con.close()
    return inter.iloc[np.asarray(rows, dtype=np.int64)]


# --- the TOML-described loader -------------------------------------------------------------------
def _toml():
    """``tomllib`` (Python 3.11+), else the ``tomli`` backport on Python 3.10."""
    try:
        import tomllib
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10 only
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise DatasetError("csv: datasets need Python 3.11+ (tomllib) or the tomli "
                               "package on Python 3.10: pip install tomli") from None
    return tomllib


def _read_config(config: Path) -> dict[str, Any]:
    tomllib = _toml()
    if not config.is_file():
        raise DatasetError(f"dataset config not found: {config}")
    try:
        cfg = tomllib.loads(config.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise DatasetError(f"{config}: invalid TOML: {exc}") from None
    for section, body in cfg.items():
        if section not in _KEYS or not isinstance(body, dict):
            raise DatasetError(f"{config}: unknown section [{section}] (expected one of "
                               f"{', '.join(f'[{s}]' for s in _KEYS)})")
        unknown = sorted(set(body) - _KEYS[section])
        if unknown:
            raise DatasetError(f"{config}: unknown key(s) {unknown} in [{section}] (allowed: "
                               f"{', '.join(sorted(_KEYS[section]))})")
    for section, keys in (("interactions", ("path", "user", "item")),):
        body = cfg.get(section)
        if body is None:
            raise DatasetError(f"{config}: missing section [{section}]")
        for key in keys:
            if not body.get(key):
                raise DatasetError(f"{config}: [{section}] needs {key} = ...")
    if "items" in cfg:
        for key in ("path", "id"):
            if not cfg["items"].get(key):
                raise DatasetError(f"{config}: [items] needs {key} = ...")
    images = cfg.get("images")
    if images is not None:
        if bool(images.get("pattern")) == bool(images.get("column")):
            raise DatasetError(f"{config}: [images] needs either pattern = ... (with folder) or "
                               "column = ... (an image path column of the items file)")
        if images.get("pattern") and not images.get("folder"):
            raise DatasetError(f"{config}: [images] pattern needs folder = ...")
        if images.get("column") and "items" not in cfg:
            raise DatasetError(f"{config}: [images] column needs an [items] section")
    return cfg


def _columns(value: Any, config: Path, key: str) -> list[str]:
    """A column name or list of names from the config, validated as strings."""
    cols = [value] if isinstance(value, str) else value
    if not isinstance(cols, list) or not all(isinstance(c, str) and c for c in cols):
        raise DatasetError(f"{config}: {key} must be a column name or a list of column names")
    return cols


def _require(frame: pd.DataFrame, cols: list[str], config: Path, key: str, path: Path) -> None:
    available = [c for c in frame.columns if c != "_line"]
    for col in cols:
        if col not in frame.columns:
            raise DatasetError(
                f"{config}: {key} = {col!r}: no such column in {path}; available columns: "
                f"{', '.join(available)}"
            )


def _joined(frame: pd.DataFrame, cols: list[str]) -> pd.Series:
    """Non-empty values of ``cols`` joined with a space, per row."""
    out = frame[cols[0]].str.strip()
    for col in cols[1:]:
        part = frame[col].str.strip()
        joined = out + " " + part
        out = joined.where((out != "") & (part != ""), out + part)
    return out


def _categories(table: pd.DataFrame, cols: list[str], sep: str) -> list[str]:
    """Per row: every column's value split on ``sep``, each piece one category, ``", "``-joined
    (blank pieces and repeats left out)."""
    pieces = [table[c].str.split(sep, regex=False) for c in cols]
    out = []
    for row in zip(*pieces):
        cats: list[str] = []
        for parts in row:
            for part in parts:
                part = part.strip()
                if part and part not in cats:
                    cats.append(part)
        out.append(", ".join(cats))
    return out


def _drop_duplicate_review_ids(inter: pd.DataFrame, lines: pd.Series, path: Path, column: str,
                               report: LoadReport) -> pd.DataFrame:
    """Keep each non-empty review id once (the earliest copy; same time: the first line),
    counted as ``duplicate_review_ids`` (ids with more than one line; 0 when none)."""
    rid = inter["review_id"]
    ordered = inter.sort_values("timestamp", kind="stable")
    dup = ordered["review_id"].notna() & ordered["review_id"].duplicated(keep="first")
    dropped = ordered.index[dup.to_numpy()]
    n_ids = int(rid.loc[dropped].nunique())
    report.counts["duplicate_review_ids"] = n_ids
    if n_ids:
        first = inter.loc[dropped].index.min()
        report.warn(f"{path}: {n_ids} {column} value(s) occur on more than one line; kept the "
                    f"earliest copy of each ({len(dropped)} line(s) dropped, e.g. "
                    f"{rid.loc[first]!r} on line {int(lines.loc[first])})")
    return inter.drop(index=dropped)


def load_csv(config: Path, options: Any, name: str) -> Dataset:
    """Load the dataset a TOML config describes (see the module docstring for the format).

    The ``[interactions] text`` columns never reach the interactions frame: they are joined
    and written to disk as the file is read (``SpilledTexts``), and the texts of the rows left
    after the filters become the dataset's ``texts`` (a ``ParquetTexts``).

    Args:
        config: the ``.toml`` file; every path in it is relative to its folder.
        options: ``LoadOptions`` (categories substring filter, k-core, max_users, strict).
        name: the dataset's spec, used as its identity.
    Raises:
        DatasetError: missing config, file or mapped column (naming the key, column and file),
            invalid TOML (naming the line), malformed lines in strict mode, nothing left.
    """
    config = Path(config).expanduser()
    cfg = _read_config(config)
    base = config.resolve().parent
    report = LoadReport()
    report.counts["photos_missing_on_disk"] = 0
    strict = bool(options.strict)
    ic = cfg["interactions"]
    roles = {key: _columns(ic[key], config, f"[interactions] {key}")
             for key in ("user", "item", "rating", "timestamp", "review_id", "text")
             if ic.get(key)}
    with SpilledTexts() if "text" in roles else nullcontext() as spill:
        inter = _read_interactions(base / ic["path"], ic, roles, config, report, strict, spill)
        if "items" in cfg:
            items = _read_items(base / cfg["items"]["path"], cfg, config, report, strict)
        else:  # no items file: the interactions' item ids are the catalogue
            items = pd.DataFrame({"item_id": np.sort(inter["item_id"].unique())})
        photos = _photos(cfg.get("images"), items, inter, base, config, report)
        photos = screen_photos(photos, report, f"{config} [images]")
        domain = str(cfg.get("dataset", {}).get("domain", "item"))
        items = items.drop(columns=["_image"], errors="ignore")
        tpath_or_none = base / cfg["items"]["path"] if "items" in cfg else None
        return finish_dataset(name, inter, items, photos, report, options, domain,
                              base / ic["path"], tpath_or_none,
                              texts_from=spill.texts_from if spill is not None else None)


def _require_roles(frame: pd.DataFrame, roles: dict[str, list[str]], config: Path,
                   path: Path) -> None:
    """Every ``[interactions]`` role's columns are in ``frame`` (else a ``DatasetError``)."""
    for key, cols in roles.items():
        _require(frame, cols, config, f"[interactions] {key}", path)


def _read_interactions(ipath: Path, ic: dict[str, Any], roles: dict[str, list[str]],
                       config: Path, report: LoadReport, strict: bool,
                       spill: SpilledTexts | None) -> pd.DataFrame:
    """The interactions frame of ``[interactions]`` (raw ids, rating, timestamp, review id);
    with ``spill``, each row's joined text goes there under the row's position (its
    ``TEXT_KEY``) as the file is read, and the text columns are left out."""
    aside = None
    if spill is not None:
        others = {c for key, cols in roles.items() if key != "text" for c in cols}

        def take(chunk: pd.DataFrame) -> None:
            _require_roles(chunk, roles, config, ipath)
            spill.add(chunk.index.to_numpy(dtype=np.int64), _joined(chunk, roles["text"]))

        aside = SetAside(tuple(c for c in roles["text"] if c not in others), take)
    frame = read_table(ipath, report, fmt=ic.get("format"), sep=ic.get("sep", ","),
                       encoding=ic.get("encoding", "utf-8"), strict=strict,
                       what=f"{config} [interactions] path", aside=aside)
    if aside is None:  # with ``aside``, checked on the file's columns as they were read
        _require_roles(frame, roles, config, ipath)
    user = frame[roles["user"][0]].str.strip()
    item = frame[roles["item"][0]].str.strip()
    frame = reject_rows(frame, (user == "") | (item == ""), ipath,
                        f"empty {roles['user'][0]} or {roles['item'][0]}", report, strict)
    inter = pd.DataFrame({"user_id": user[frame.index], "item_id": item[frame.index]})
    if "rating" in roles:
        rating = pd.to_numeric(frame[roles["rating"][0]].str.strip(), errors="coerce")
        frame = reject_rows(frame, rating.isna(), ipath,
                            f"{roles['rating'][0]} is not a number", report, strict)
        inter = inter.loc[frame.index]
        inter["rating"] = rating[frame.index].astype(np.float32)
    else:
        inter["rating"] = np.float32(1.0)
    if "timestamp" in roles:
        seconds, bad = parse_timestamps(frame[roles["timestamp"][0]],
                                        unit=ic.get("timestamp_unit", "s"),
                                        fmt=ic.get("timestamp_format"))
        seconds = pd.Series(seconds, index=frame.index)
        frame = reject_rows(frame, bad, ipath, f"{roles['timestamp'][0]} is not a time",
                            report, strict)
        inter = inter.loc[frame.index]
        inter["timestamp"] = seconds[frame.index]
    else:  # no time column: the file order stands in for time
        inter["timestamp"] = np.arange(len(inter), dtype=np.int64)
    if "review_id" in roles:
        inter["review_id"] = frame[roles["review_id"][0]].where(
            frame[roles["review_id"][0]] != "", None)
    if spill is not None:  # the text itself is in ``spill``, under the row's position
        inter[TEXT_KEY] = inter.index.to_numpy(dtype=np.int64)
    if "review_id" in roles:
        inter = _drop_duplicate_review_ids(inter, frame["_line"], ipath, roles["review_id"][0],
                                           report)
    return inter


def _read_items(tpath: Path, cfg: dict[str, Any], config: Path, report: LoadReport,
                strict: bool) -> pd.DataFrame:
    """The items frame of ``[items]`` (and the ``[images] column``, as ``_image``)."""
    tc = cfg["items"]
    table = read_table(tpath, report, fmt=tc.get("format"), sep=tc.get("sep", ","),
                       encoding=tc.get("encoding", "utf-8"), strict=strict,
                       what=f"{config} [items] path")
    cols: dict[str, list[str]] = {}
    for key in ("id", "name", "categories", "description", "attributes"):
        if tc.get(key):
            cols[key] = _columns(tc[key], config, f"[items] {key}")
            _require(table, cols[key], config, f"[items] {key}", tpath)
    image_col = None
    if cfg.get("images", {}).get("column"):
        image_col = _columns(cfg["images"]["column"], config, "[images] column")[0]
        _require(table, [image_col], config, "[images] column", tpath)
    ids = table[cols["id"][0]].str.strip()
    table = reject_rows(table, ids == "", tpath, f"empty {cols['id'][0]}", report, strict)
    items = pd.DataFrame({"item_id": ids[table.index]})
    items["name"] = _joined(table, cols["name"]) if "name" in cols else ""
    if "categories" in cols:
        items["categories"] = _categories(table, cols["categories"],
                                          str(tc.get("categories_sep", ",")))
    items["description"] = _joined(table, cols["description"]) if "description" in cols \
        else ""
    attr_cols = cols.get("attributes", [])
    items["attributes"] = [
        {k: v for k, v in rec.items() if v != ""}
        for rec in table[attr_cols].to_dict("records")
    ] if attr_cols else [{} for _ in range(len(items))]
    if image_col:
        items["_image"] = table[image_col].str.strip()
    dupes = items["item_id"].duplicated()
    if dupes.any():
        report.add("duplicate_item_rows", int(dupes.sum()))
        report.warn(f"{tpath}: {int(dupes.sum())} duplicate item id row(s); kept the first")
        items = items[~dupes]
    return items


def _photos(images: dict[str, Any] | None, items: pd.DataFrame, inter: pd.DataFrame, base: Path,
            config: Path, report: LoadReport) -> pd.DataFrame | None:
    """One photo per item from ``[images]``; referenced files absent on disk are counted."""
    if not images:
        return None
    used = items[items["item_id"].isin(set(inter["item_id"]))]
    folder = base / images["folder"] if images.get("folder") else base
    if images.get("pattern"):
        pattern = str(images["pattern"])
        try:
            rel = [pattern.format(item_id=i) for i in used["item_id"]]
        except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
            raise DatasetError(
                f"{config}: [images] pattern = {pattern!r} is invalid ({exc}); use {{item_id}} "
                "as the placeholder; item_id is text, so pad with a string spec such as "
                "{item_id:0>10} (not a numeric one like {item_id:010d})"
            ) from None
        refs = pd.Series(rel, index=used.index)
    else:
        refs = used["_image"]
        refs = refs[refs != ""]
    paths = [(Path(r) if Path(r).is_absolute() else folder / r) for r in refs]
    exists = np.array([p.is_file() for p in paths], dtype=bool)
    missing = int((~exists).sum())
    report.counts["photos_missing_on_disk"] = missing
    if missing:
        first = paths[int(np.argmin(exists))]
        report.warn(f"{missing} image(s) referenced by {config} [images] are missing on disk "
                    f"(first: {first})")
    ids = used.loc[refs.index, "item_id"].to_numpy()[exists]
    names = used.loc[refs.index].get("name", pd.Series("", index=refs.index)).to_numpy()[exists]
    return pd.DataFrame({
        "photo_id": ids,
        "item_id": ids,
        "path": [str(p.resolve()) for p, ok in zip(paths, exists) if ok],
        "caption": names,
        "label": str(images.get("label", "image")),
    })
