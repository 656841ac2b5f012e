"""Loader for the Yelp Open Dataset layout (and the synthetic demo, which uses the same layout).

Expected in ``root``:

* ``yelp_academic_dataset_business.json`` (required): ``business_id``, ``name``, ``categories``,
  ``city``, ``state``, ``attributes``, ...;
* ``yelp_academic_dataset_review.json`` (required): ``user_id``, ``business_id``, ``stars``,
  ``date`` (``review_id`` and ``text`` are used when present);
* ``yelp_academic_dataset_user.json`` (optional, only counted);
* ``photos.json`` + ``photos/<photo_id>.jpg`` (optional, the photo archive's layout).

All JSON-lines files are read by DuckDB, never line by line in Python: the real review file is
about 5 GB. Businesses and photos go through ``read_json``; reviews are read as numbered lines
parsed by DuckDB's JSON functions, ids, stars and dates only (the line number is each review's
key), and the business filters become a join there; the k-core and ``max_users`` filters run on
that table in DuckDB too (``core.data.filters``), so only the ids of the reviews left reach
pandas. Their texts are read once at the end, into a Parquet file (``Dataset.texts``).
Malformed lines are found by a separate DuckDB scan of the raw lines
(``json_valid`` + required fields), counted and skipped, or reported with their line number under
``strict``.

Hygiene, all counted in the ``LoadReport`` (``datasets describe`` shows them):

* a ``review_id`` that occurs on several usable lines is kept once, inside DuckDB (the copy with
  the earliest date, then the smaller user id, business id and stars), counted as
  ``duplicate_review_ids`` (review ids with more than one copy; 0 when none);
* repeated user-business pairs (a second review of the same restaurant) are collapsed by
  ``build_dataset`` unless ``LoadOptions.repeats == "keep"`` (``repeated_user_item_pairs``,
  ``repeat_interactions_collapsed``); the k-core counts distinct pairs accordingly;
* photos listed in ``photos.json`` but missing from ``photos/`` (``photos_missing_on_disk``),
  empty (``photos_zero_byte``) or with no image header (``photos_undecodable``) are left out.

The item document (``Dataset.item_text``) is the business name, its ``categories``, the
description ("address, city, state. Price range $$.") and the scalar ``attributes``
("WiFi: free; HasTV: False").
"""

from __future__ import annotations

import ast
import json
import os
import re
from functools import lru_cache
from itertools import islice
from pathlib import Path

import numpy as np
import pandas as pd

from core.data.dataset import TEXT_KEY, Dataset, LoadReport, build_dataset
from core.data.filters import k_core, sample_users
from core.data.photos import screen_photos
from core.data.texts import ParquetTexts, write_keyed_texts
from core.errors import DatasetError

BUSINESS_FILE = "yelp_academic_dataset_business.json"
REVIEW_FILE = "yelp_academic_dataset_review.json"
USER_FILE = "yelp_academic_dataset_user.json"
PHOTO_FILE = "photos.json"
PHOTO_DIR = "photos"
DEFAULT_CATEGORIES = ("Restaurants", "Food")

# Columns read from each file (DuckDB types) and the ones a line must have to be usable.
_BUSINESS_COLUMNS = {
    "business_id": "VARCHAR", "name": "VARCHAR", "address": "VARCHAR", "city": "VARCHAR",
    "state": "VARCHAR", "latitude": "DOUBLE", "longitude": "DOUBLE", "stars": "DOUBLE",
    "review_count": "BIGINT", "is_open": "BIGINT", "attributes": "JSON", "categories": "VARCHAR",
}
_BUSINESS_REQUIRED = {"business_id": "VARCHAR"}
_REVIEW_REQUIRED = {"user_id": "VARCHAR", "business_id": "VARCHAR", "stars": "DOUBLE",
                    "date": "TIMESTAMP"}
_PHOTO_COLUMNS = {"photo_id": "VARCHAR", "business_id": "VARCHAR", "caption": "VARCHAR",
                  "label": "VARCHAR"}
_PHOTO_REQUIRED = {"photo_id": "VARCHAR", "business_id": "VARCHAR"}
_MAX_LINE = 64 * 1024 * 1024


def _sql_str(value: str | os.PathLike) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _columns_sql(columns: dict[str, str]) -> str:
    return "{" + ", ".join(f"{_sql_str(k)}: {_sql_str(v)}" for k, v in columns.items()) + "}"


def _read_json_sql(path: Path, columns: dict[str, str]) -> str:
    return (f"read_json({_sql_str(path)}, format='newline_delimited', "
            f"columns={_columns_sql(columns)}, ignore_errors=true, "
            f"maximum_object_size={_MAX_LINE})")


def _lines_sql(path: Path) -> str:
    """The file as one VARCHAR column ``line`` numbered by ``ordinality`` (1-based line number)."""
    return (f"read_csv({_sql_str(path)}, columns={{'line': 'VARCHAR'}}, delim='\x01', quote='', "
            f"escape='', header=false, auto_detect=false, strict_mode=false, "
            f"max_line_size={_MAX_LINE}) WITH ORDINALITY")


def _check_fields(path: Path, required: dict[str, str], probe: int = 200) -> None:
    """Fail clearly if the first lines of ``path`` never carry a required field.

    Only the first ``probe`` lines are read, to tell "wrong file" (e.g. a CSV export, or the
    checkin file under the review file's name) from a few malformed lines.
    """
    keys: set[str] = set()
    parsed = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in islice(f, probe):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                keys.update(obj)
                parsed += 1
    if parsed == 0:
        return  # nothing parseable at the start: the malformed-line scan reports it
    missing = [c for c in required if c not in keys]
    if missing:
        raise DatasetError(
            f"{path}: no field {', '.join(repr(m) for m in missing)} in the first {probe} lines; "
            f"expected JSON lines with fields {', '.join(required)}"
        )


def _scan_malformed(con, path: Path, required: dict[str, str], report: LoadReport,
                    strict: bool) -> None:
    """Count lines that are not JSON objects with the required fields (DuckDB, no Python loop)."""
    paths = "[" + ", ".join(_sql_str(f"$.{k}") for k in required) + "]"
    checks = " AND ".join(
        f"try_cast(v[{i + 1}] AS {t}) IS NOT NULL" for i, t in enumerate(required.values())
    )
    sql = f"""
        WITH raw AS (
            SELECT ordinality AS n, line,
                   CASE WHEN line IS NULL OR trim(line) = '' THEN 0
                        WHEN NOT json_valid(line) THEN 1
                        WHEN json_type(line) <> 'OBJECT' THEN 1
                        ELSE 2 END AS kind
            FROM {_lines_sql(path)}
        ), fields AS (
            SELECT n, kind,
                   CASE WHEN kind = 2 THEN json_extract_string(line, {paths}) END AS v
            FROM raw
        )
        SELECT count(*) FILTER (WHERE bad), min(n) FILTER (WHERE bad)
        FROM (SELECT n, kind = 1 OR (kind = 2 AND NOT ({checks})) AS bad FROM fields)
    """
    n_bad, first = con.execute(sql).fetchone()
    if not n_bad:
        return
    if strict:
        raise DatasetError(
            f"{path}, line {first}: malformed line ({_why_malformed(path, int(first), required)}); "
            "run without --strict to skip and count malformed lines"
        )
    report.add("malformed_lines", int(n_bad))
    report.warn(f"{path.name}: skipped {int(n_bad)} malformed line(s), the first at line {first}")


def _why_malformed(path: Path, line_no: int, required: dict[str, str]) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        line = next(islice(f, line_no - 1, None), "")
    try:
        obj = json.loads(line)
    except ValueError as exc:
        return f"not valid JSON: {exc}"
    if not isinstance(obj, dict):
        return "not a JSON object"
    bad = [k for k in required if obj.get(k) is None]
    if bad:
        return f"missing field {', '.join(bad)}"
    return f"a field among {', '.join(required)} has the wrong type"


@lru_cache(maxsize=4096)
def _attr_value(raw: str) -> object:
    """One Yelp attribute value: ``"True"`` -> True, ``"u'free'"`` -> "free",
    ``"{'garage': False, ...}"`` -> dict, ``"2"`` -> 2, ``"None"`` -> None."""
    s = raw.strip()
    if s in ("True", "False"):
        return s == "True"
    if s in ("None", "", "null"):
        return None
    if s.isdigit():
        return int(s)
    if s[:1] == "{" or s[:2] in ("u'", 'u"') or s[:1] in ("'", '"'):
        try:
            value = ast.literal_eval(s)
        except (ValueError, SyntaxError):
            return s
        if isinstance(value, dict):
            return {str(k): v for k, v in value.items() if v is not None}
        return value
    return s


def parse_attributes(raw: object) -> dict[str, object]:
    """Yelp's ``attributes`` object (JSON text or dict of string-encoded Python literals) as a
    plain dict; null, NaN or anything but an object gives ``{}``."""
    if isinstance(raw, dict):
        obj = raw
    elif isinstance(raw, str) and raw:
        try:
            obj = json.loads(raw)
        except ValueError:
            return {}
    else:
        return {}
    if not isinstance(obj, dict):
        return {}
    out = {}
    for key, value in obj.items():
        parsed = _attr_value(value) if isinstance(value, str) else value
        if parsed is not None:
            out[key] = parsed
    return out


def _require(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DatasetError(
            f"{path}: file not found; a Yelp dataset directory needs {BUSINESS_FILE} and "
            f"{REVIEW_FILE} ({what})"
        )
    return path


def _keep_businesses(biz: pd.DataFrame, options) -> pd.Series:
    keep = pd.Series(True, index=biz.index)
    cats = DEFAULT_CATEGORIES if options.categories is None else tuple(options.categories)
    if cats:
        pattern = "|".join(re.escape(c.lower()) for c in cats)
        keep &= biz["categories"].fillna("").str.lower().str.contains(pattern, regex=True)
    if options.city:
        keep &= biz["city"].fillna("").str.strip().str.lower() == options.city.strip().lower()
    if options.state:
        keep &= biz["state"].fillna("").str.strip().str.lower() == options.state.strip().lower()
    return keep


def _filters_text(options) -> str:
    cats = DEFAULT_CATEGORIES if options.categories is None else tuple(options.categories)
    parts = [f"categories={','.join(cats) if cats else 'all'}"]
    if options.city:
        parts.append(f"city={options.city}")
    if options.state:
        parts.append(f"state={options.state}")
    return ", ".join(parts)


def load_yelp(root: Path, options, name: str) -> Dataset:
    """Load a Yelp Open Dataset directory (see the module docstring) as a ``Dataset``.

    Args:
        root: directory holding the Yelp JSON-lines files (and optionally ``photos.json`` +
            ``photos/``).
        options: ``LoadOptions``; ``categories=None`` keeps businesses whose categories contain
            "Restaurants" or "Food" (case-insensitive substrings), ``()`` keeps all; ``city`` and
            ``state`` match exactly (case-insensitive); then the k-core and ``max_users`` filters.
        name: the dataset's name (its spec).
    Returns:
        A ``Dataset`` with ``domain="restaurant"``; items carry ``name``, ``categories``,
        ``description`` ("address, city, state. Price range $$."), parsed ``attributes`` and the
        extra columns ``stars``, ``city``, ``state``, ``price`` (1-4 or NaN), ``latitude``,
        ``longitude``, ``review_count``; ratings are review stars, timestamps the review dates.
    Raises:
        DatasetError: missing directory/file/field, a malformed line under ``options.strict``
            (with its line number), or nothing left after the filters.
    """
    import duckdb

    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DatasetError(f"{name}: directory {root} not found")
    report = LoadReport()
    business_path = _require(root / BUSINESS_FILE, "the businesses")
    review_path = _require(root / REVIEW_FILE, "the reviews")
    _check_fields(business_path, _BUSINESS_REQUIRED | {"name": "VARCHAR"})
    _check_fields(review_path, _REVIEW_REQUIRED)

    con = duckdb.connect()
    try:
        # --- businesses: all of them (to tell filtered from unknown), then the filters ---------
        _scan_malformed(con, business_path, _BUSINESS_REQUIRED, report, options.strict)
        biz = con.execute(
            f"SELECT * FROM {_read_json_sql(business_path, _BUSINESS_COLUMNS)} "
            "WHERE business_id IS NOT NULL"
        ).df()
        biz = biz.drop_duplicates("business_id").reset_index(drop=True)
        keep = _keep_businesses(biz, options)
        report.counts["businesses_in_file"] = len(biz)
        if not keep.any():
            raise DatasetError(
                f"{name}: no business in {BUSINESS_FILE} matches the filters "
                f"({_filters_text(options)})"
            )
        con.register("biz_keep", pd.DataFrame({
            "business_id": biz["business_id"].astype(str).to_numpy(),
            "keep": keep.to_numpy(dtype=bool),
        }))

        # --- reviews of kept (or unknown) businesses, joined inside DuckDB ---------------------
        # Ids, stars and dates only, each review keyed by its line in the file, kept in a DuckDB
        # table through the filters; only the rows left reach pandas. The texts of the reviews
        # that survive are read once at the end (into a Parquet file), so no review text ever
        # reaches pandas.
        _scan_malformed(con, review_path, _REVIEW_REQUIRED, report, options.strict)
        _reviews_once(con, review_path, report=report)
        n_unknown = con.execute("SELECT count(*) FROM reviews WHERE unknown").fetchone()[0]
        if n_unknown:
            report.add("unknown_item_interactions", int(n_unknown))
            report.warn(f"{REVIEW_FILE}: {n_unknown} review(s) name a business_id missing from "
                        f"{BUSINESS_FILE}; skipped")
            con.execute("DELETE FROM reviews WHERE unknown")
        con.execute("ALTER TABLE reviews DROP COLUMN unknown")
        if not con.execute("SELECT count(*) FROM reviews").fetchone()[0]:
            raise DatasetError(
                f"{name}: no reviews in {REVIEW_FILE} for the {int(keep.sum())} business(es) "
                f"matching the filters ({_filters_text(options)})"
            )
        k_on = options.min_user_interactions > 1 or options.min_item_interactions > 1
        distinct = options.repeats == "collapse"
        k_core(con, "reviews", options.min_user_interactions, options.min_item_interactions,
               report, distinct_pairs=distinct)
        sample_users(con, "reviews", options.max_users, options.seed, report)
        if options.max_users and k_on:  # sampling can break the k-core: restore it
            k_core(con, "reviews", options.min_user_interactions,
                   options.min_item_interactions, report, distinct_pairs=distinct)
        inter = con.execute(f"SELECT * FROM reviews ORDER BY {TEXT_KEY}").df()
        con.execute("DROP TABLE reviews")
        if inter.empty:
            raise DatasetError(
                f"{name}: nothing left after the k-core filter (min user interactions "
                f"{options.min_user_interactions}, min item interactions "
                f"{options.min_item_interactions}) on {_filters_text(options)}"
            )
        used = set(inter["item_id"].unique())

        # --- users file: optional, only counted ----------------------------------------------
        user_path = root / USER_FILE
        if user_path.is_file():
            con.register("kept_users", pd.DataFrame({"user_id": inter["user_id"].unique()}))
            n_profiles = con.execute(
                f"SELECT count(DISTINCT u.user_id) FROM "
                f"{_read_json_sql(user_path, {'user_id': 'VARCHAR'})} u "
                "SEMI JOIN kept_users k ON u.user_id = k.user_id"
            ).fetchone()[0]
            report.counts["users_with_profile"] = int(n_profiles)

        # --- photos -----------------------------------------------------------------------------
        photos = _load_photos(con, root, biz, used, report, options.strict)

        items = _items_frame(biz[biz["business_id"].isin(used)])
        return build_dataset(
            name, inter, items, photos, report=report, domain="restaurant",
            repeats=options.repeats, interactions_file=str(review_path),
            texts_from=lambda rows, keys, order: _review_texts(con, review_path, rows, keys,
                                                               order))
    finally:
        con.close()


def _reviews_once(con, path: Path, report: LoadReport) -> None:
    """``_query_reviews`` into the temp table ``reviews``, each review id once, counted as
    ``duplicate_review_ids``.

    Deduplicating costs DuckDB two windows over every row (about half the query's time again),
    so the query runs without them first and is rerun with them only when an id repeats.
    """
    _query_reviews(con, path, dedupe=False)
    n_ids, n_distinct = con.execute(
        "SELECT count(review_id), count(DISTINCT review_id) FROM reviews").fetchone()
    if n_ids > n_distinct:
        _query_reviews(con, path, dedupe=True)
    n_ids, n_extra = con.execute(
        "SELECT count(*) FILTER (WHERE copies > 1), coalesce(sum(copies - 1), 0) "
        "FROM reviews").fetchone()
    con.execute("ALTER TABLE reviews DROP COLUMN copies")
    report.counts["duplicate_review_ids"] = int(n_ids)
    if n_ids:
        report.warn(f"{path}: {n_ids} review_id(s) occur on more than one line; kept one copy "
                    f"each ({int(n_extra)} line(s) dropped)")


def _review_fields_sql(path: Path) -> str:
    """The usable review lines of ``path``: ``line_no`` (1-based), ``review_id``, ``user_id``,
    ``business_id``, ``stars`` (DOUBLE) and ``ts`` (TIMESTAMP), read as lines and parsed by
    DuckDB's JSON functions (one parse per line), so each review keeps its line number."""
    fields = "[" + ", ".join(_sql_str(f"$.{k}") for k in
                             ("review_id", "user_id", "business_id", "stars", "date")) + "]"
    return f"""
        SELECT line_no, v[1] AS review_id, v[2] AS user_id, v[3] AS business_id,
               try_cast(v[4] AS DOUBLE) AS stars, try_cast(v[5] AS TIMESTAMP) AS ts
        FROM (SELECT ordinality AS line_no,
                     CASE WHEN json_valid(line) THEN json_extract_string(line, {fields})
                     END AS v
              FROM {_lines_sql(path)})
        WHERE v IS NOT NULL
    """


def _query_reviews(con, path: Path, dedupe: bool = True) -> None:
    """The temp table ``reviews`` (replaced): usable reviews of kept or unknown businesses
    (``unknown`` flags the latter), without text: ``text_key`` (the line number),
    ``review_id``, ``user_id``, ``item_id``, ``rating``, ``timestamp``, ``unknown``, ``copies``.

    With ``dedupe``, a ``review_id`` on several usable lines is kept once (earliest date, then
    user id, business id, stars, line) and ``copies`` is how many lines carried the kept row's
    review id (1 without an id); without it, ``copies`` is 1 and every line stays.
    """
    copies, qualify = "1", ""
    if dedupe:
        copies = ("CASE WHEN r.review_id IS NULL THEN 1 "
                  "ELSE count(*) OVER (PARTITION BY r.review_id) END")
        qualify = ("QUALIFY r.review_id IS NULL OR row_number() OVER (PARTITION BY r.review_id "
                   "ORDER BY r.ts, r.user_id, r.business_id, r.stars, r.line_no) = 1")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE reviews AS
        SELECT r.line_no AS {TEXT_KEY}, r.review_id, r.user_id, r.business_id AS item_id,
               CAST(r.stars AS FLOAT) AS rating, CAST(epoch(r.ts) AS BIGINT) AS timestamp,
               b.keep IS NULL AS unknown, {copies} AS copies
        FROM ({_review_fields_sql(path)}) r
        LEFT JOIN biz_keep b ON r.business_id = b.business_id
        WHERE r.user_id IS NOT NULL AND r.business_id IS NOT NULL AND r.stars IS NOT NULL
          AND r.ts IS NOT NULL AND (b.keep OR b.keep IS NULL)
        {qualify}
    """)


def _review_texts(con, path: Path, rows: np.ndarray, keys: np.ndarray,
                  order: np.ndarray) -> ParquetTexts:
    """The texts of the kept reviews (``build_dataset``'s ``texts_from``): row ``rows[j]`` takes
    the text on line ``keys[j]`` of ``path`` (``write_keyed_texts``: a collapsed repeat joins its
    lines' distinct non-blank texts), written into a Parquet file while the file is scanned once."""
    return write_keyed_texts(
        con, rows, keys, order,
        source_sql=f"SELECT ordinality AS key, line AS raw FROM {_lines_sql(path)}",
        text_sql="CASE WHEN json_valid(s.raw) THEN json_extract_string(s.raw, '$.text') END")


def _items_frame(biz: pd.DataFrame) -> pd.DataFrame:
    attrs = [parse_attributes(a) for a in biz["attributes"]]
    price = pd.array(
        [a.get("RestaurantsPriceRange2") if isinstance(a.get("RestaurantsPriceRange2"), int)
         else None for a in attrs], dtype="Int64")
    city = biz["city"].fillna("").astype(str)
    state = biz["state"].fillna("").astype(str)
    address = biz["address"].fillna("").astype(str)
    place = (address + ", " + city + ", " + state).str.strip(", ").str.replace(
        r"^, |, ,", "", regex=True)
    dollars = pd.Series(["" if pd.isna(p) else f" Price range {'$' * int(p)}." for p in price],
                        index=biz.index)
    return pd.DataFrame({
        "item_id": biz["business_id"].astype(str).to_numpy(),
        "name": biz["name"].fillna("").astype(str).to_numpy(),
        "categories": biz["categories"].fillna("").astype(str).to_numpy(),
        "description": (place + "." + dollars).str.replace(r"^\.\s*", "", regex=True).to_numpy(),
        "attributes": attrs,
        "stars": biz["stars"].astype(float).to_numpy(),
        "city": city.to_numpy(),
        "state": state.to_numpy(),
        "price": price,
        "latitude": biz["latitude"].astype(float).to_numpy(),
        "longitude": biz["longitude"].astype(float).to_numpy(),
        "review_count": biz["review_count"].astype("Int64").to_numpy(),
    })


def _load_photos(con, root: Path, biz: pd.DataFrame, used: set, report: LoadReport,
                 strict: bool) -> pd.DataFrame | None:
    """Photos of the kept businesses that exist on disk and have an image header (others
    counted: ``photos_missing_on_disk``, ``photos_zero_byte``, ``photos_undecodable``), or None."""
    path = root / PHOTO_FILE
    if not path.is_file():
        if (root / PHOTO_DIR).is_dir():
            report.warn(f"{root / PHOTO_DIR} exists but {PHOTO_FILE} is missing: no photos loaded")
        return None
    _check_fields(path, _PHOTO_REQUIRED)
    _scan_malformed(con, path, _PHOTO_REQUIRED, report, strict)
    ph = con.execute(
        f"SELECT * FROM {_read_json_sql(path, _PHOTO_COLUMNS)} "
        "WHERE photo_id IS NOT NULL AND business_id IS NOT NULL"
    ).df()
    known = ph["business_id"].isin(set(biz["business_id"]))
    if (~known).any():
        report.add("photos_of_unknown_items", int((~known).sum()))
        report.warn(f"{PHOTO_FILE}: {int((~known).sum())} photo(s) name a business_id missing "
                    f"from {BUSINESS_FILE}")
    ph = ph[ph["business_id"].isin(used)]
    folder = root / PHOTO_DIR
    try:
        on_disk = {e.name for e in os.scandir(folder) if e.is_file()}
    except OSError:
        on_disk = set()
    files = ph["photo_id"].astype(str) + ".jpg"
    present = files.isin(on_disk).to_numpy()
    n_missing = int((~present).sum())
    if n_missing:
        report.add("photos_missing_on_disk", n_missing)
        example = files[~present].iloc[0]
        report.warn(f"{n_missing} photo(s) listed in {PHOTO_FILE} are missing from {folder} "
                    f"(e.g. {example})")
    ph = ph[present]
    return screen_photos(pd.DataFrame({
        "photo_id": ph["photo_id"].astype(str).to_numpy(),
        "item_id": ph["business_id"].astype(str).to_numpy(),
        "path": (str(folder) + os.sep + files[present]).to_numpy(),
        "caption": ph["caption"].fillna("").astype(str).to_numpy(),
        "label": ph["label"].fillna("").astype(str).to_numpy(),
    }), report, str(folder))


__all__ = ["DEFAULT_CATEGORIES", "load_yelp", "parse_attributes"]
