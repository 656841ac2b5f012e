"""MovieLens loader (``movielens:<dir>``): ML-100K and ml-latest-small layouts, with posters.

Layouts, found in ``<dir>`` itself or in a single subfolder of it:

- ML-100K: ``u.data`` (tab-separated user, item, rating, timestamp), ``u.item`` (pipe-separated,
  latin-1: id, title, release date, video release date, IMDb URL, 19 genre flags) and ``u.genre``
  (genre names; the standard 19 are used when it is missing).
- ml-latest-small: ``ratings.csv`` (userId, movieId, rating, timestamp) and ``movies.csv``
  (movieId, title, genres separated by ``|``).

Optional extras, looked up in ``<dir>`` then in the data folder: ``posters/<movie_id>.jpg`` (one
photo per movie, label ``poster``, caption = title) and ``overviews.csv`` (``movie_id,overview``:
the plot summary becomes the item description). Ratings carry no review text.

The item document (``Dataset.item_text``) is the title, the genres as categories, the overview,
and the attributes (``year``, plus ``imdb_url`` for ML-100K). Posters that are empty or have no
image header are counted (``photos_zero_byte``, ``photos_undecodable``) and left out. A movie
rated twice by one user (possible in hand-made files) is one interaction unless
``LoadOptions.repeats == "keep"`` (``repeated_user_item_pairs``,
``repeat_interactions_collapsed``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.data.csvtable import finish_dataset, read_delimited, reject_rows
from core.data.dataset import Dataset, LoadReport
from core.data.photos import screen_photos
from core.errors import DatasetError

__all__ = ["ML100K_GENRES", "load_movielens"]

#: The 19 genres of ML-100K's ``u.genre``, in flag order (used when ``u.genre`` is missing).
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)
_POSTER_SUFFIXES = (".jpg", ".jpeg", ".png")


def load_movielens(root: Path, options: Any, name: str) -> Dataset:
    """Load a MovieLens directory (ML-100K or ml-latest-small layout) as a ``Dataset``.

    Args:
        root: the directory holding the files, or holding one subfolder that does.
        options: ``LoadOptions``: ``categories`` (genre substrings), k-core, ``max_users``,
            ``strict``.
        name: the dataset's spec, used as its identity.
    Returns:
        a ``Dataset`` with domain ``"movie"``: items named by title, genres as categories, the
        overview as description, ``{"year": ...}`` attributes, and posters as photos. The report
        counts ``malformed_lines``, ``unknown_item_interactions``, ``repeated_user_item_pairs``,
        ``repeat_interactions_collapsed``, ``movies_without_poster``, ``photos_zero_byte`` and
        ``photos_undecodable`` (with posters/), ``empty_overviews`` and
        ``movies_without_overview`` (when ``overviews.csv`` exists).
    Raises:
        DatasetError: missing directory or files, missing columns, a malformed line in strict
            mode (naming file and line), or nothing left after the filters.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"MovieLens directory not found: {root}")
    data_dir, layout = _find_layout(root)
    report = LoadReport()
    strict = bool(options.strict)
    if layout == "ml-100k":
        ratings_file, movies_file = data_dir / "u.data", data_dir / "u.item"
        inter = _read_100k_ratings(ratings_file, report, strict)
        items = _read_100k_items(data_dir, report, strict)
    else:
        ratings_file, movies_file = data_dir / "ratings.csv", data_dir / "movies.csv"
        inter = _read_latest_ratings(ratings_file, report, strict)
        items = _read_latest_items(movies_file, report, strict)

    overviews_file = _extra(root, data_dir, "overviews.csv")
    has_overviews = overviews_file is not None
    if has_overviews:
        overviews = _read_overviews(overviews_file, report, strict)
        items = items.merge(overviews, on="item_id", how="left")
    else:
        items["overview"] = np.nan
    items["has_overview_row"] = items["overview"].notna()
    items["description"] = items["overview"].fillna("").str.strip()
    items = items.drop(columns=["overview"])

    posters_dir = _extra(root, data_dir, "posters")
    photos = None
    if posters_dir is None:
        report.warn(f"no posters/ folder in {root}: movies have no photos")
    else:
        photos = screen_photos(_posters(posters_dir, items), report, str(posters_dir))

    ds = finish_dataset(name, inter, items, photos, report, options, "movie", ratings_file,
                        movies_file)
    final = ds.items
    with_poster = set(ds.photos["item"].tolist()) if len(ds.photos) else set()
    report.counts["movies_without_poster"] = int(len(final) - len(with_poster))
    if has_overviews:
        has_row = final["has_overview_row"].astype(bool)
        report.counts["empty_overviews"] = int((has_row & (final["description"] == "")).sum())
        report.counts["movies_without_overview"] = int((~has_row).sum())
    ds.items = final.drop(columns=["has_overview_row"])
    return ds


# --- layout --------------------------------------------------------------------------------------
def _layout_of(folder: Path) -> str | None:
    if (folder / "u.data").is_file():
        return "ml-100k"
    if (folder / "ratings.csv").is_file():
        return "ml-latest"
    return None


def _find_layout(root: Path) -> tuple[Path, str]:
    """The folder holding the rating file (root or its single matching subfolder) and layout."""
    layout = _layout_of(root)
    if layout:
        return root, layout
    found = [(d, _layout_of(d)) for d in sorted(root.iterdir()) if d.is_dir()]
    found = [(d, lay) for d, lay in found if lay]
    if not found:
        raise DatasetError(
            f"{root}: no MovieLens files found (expected u.data + u.item for ML-100K, or "
            "ratings.csv + movies.csv for ml-latest-small, here or in one subfolder)"
        )
    if len(found) > 1:
        names = ", ".join(d.name for d, _ in found)
        raise DatasetError(f"{root}: several MovieLens folders ({names}); point at one of them")
    return found[0]


def _extra(root: Path, data_dir: Path, name: str) -> Path | None:
    """An optional extra (``posters``, ``overviews.csv``) in root, else in the data folder."""
    for folder in (root, data_dir):
        path = folder / name
        if path.exists():
            return path
    return None


# --- ML-100K -------------------------------------------------------------------------------------
def _validate_ratings(frame: pd.DataFrame, path: Path, report: LoadReport,
                      strict: bool) -> pd.DataFrame:
    """Ratings with an integer item id, a numeric rating and an integer timestamp."""
    frame = frame.assign(**{c: frame[c].str.strip() for c in ("user", "item", "rating",
                                                              "timestamp")})
    item = pd.to_numeric(frame["item"], errors="coerce")
    rating = pd.to_numeric(frame["rating"], errors="coerce")
    ts = pd.to_numeric(frame["timestamp"], errors="coerce")
    bad = ((frame["user"] == "") | item.isna() | (item % 1 != 0) | rating.isna() | ts.isna()
           | (ts % 1 != 0))
    frame = reject_rows(frame, bad, path, "expected user, integer movie id, numeric rating and "
                        "integer timestamp", report, strict)
    return pd.DataFrame({
        "user_id": frame["user"],
        "item_id": item[frame.index].astype(np.int64).astype(str),
        "rating": rating[frame.index].astype(np.float32),
        "timestamp": ts[frame.index].astype(np.int64),
    })


def _read_100k_ratings(path: Path, report: LoadReport, strict: bool) -> pd.DataFrame:
    frame = read_delimited(path, report, sep="\t", names=["user", "item", "rating", "timestamp"],
                           quoted=False, strict=strict, what="MovieLens ratings file u.data")
    return _validate_ratings(frame, path, report, strict)


def _genre_names(data_dir: Path) -> list[str]:
    """Genre names from ``u.genre`` (``name|index`` lines), else the standard 19."""
    path = data_dir / "u.genre"
    if not path.is_file():
        return list(ML100K_GENRES)
    pairs = []
    for line in path.read_text(encoding="latin-1").splitlines():
        name, sep, idx = line.strip().rpartition("|")
        if sep and idx.strip().isdigit():
            pairs.append((int(idx), name))
    names = [n for _, n in sorted(pairs)]
    return names if len(names) == len(ML100K_GENRES) else list(ML100K_GENRES)


def _year(values: pd.Series) -> pd.Series:
    """The first 4-digit year (1800-2099) found in each string, as float (NaN if none)."""
    return pd.to_numeric(values.str.extract(r"((?:18|19|20)\d\d)", expand=False), errors="coerce")


def _attributes(year: pd.Series, extra: dict[str, pd.Series] | None = None) -> list[dict]:
    out = []
    cols = extra or {}
    for i, y in enumerate(year.to_numpy()):
        attrs: dict[str, object] = {} if np.isnan(y) else {"year": int(y)}
        for key, col in cols.items():
            value = col.iloc[i]
            if value:
                attrs[key] = value
        out.append(attrs)
    return out


def _read_100k_items(data_dir: Path, report: LoadReport, strict: bool) -> pd.DataFrame:
    path = data_dir / "u.item"
    genres = _genre_names(data_dir)
    cols = ["id", "title", "release_date", "video_date", "imdb_url"] + [f"g{i}" for i in
                                                                        range(len(genres))]
    frame = read_delimited(path, report, sep="|", names=cols, encoding="latin-1", quoted=False,
                           strict=strict, what="MovieLens movies file u.item")
    flag_cols = cols[5:]
    ids = pd.to_numeric(frame["id"].str.strip(), errors="coerce")
    flags_ok = frame[flag_cols].apply(lambda s: s.str.strip().isin(["0", "1"])).all(axis=1)
    bad = ids.isna() | (ids % 1 != 0) | ~flags_ok
    frame = reject_rows(frame, bad, path, f"expected an integer movie id and {len(genres)} "
                        "0/1 genre flags", report, strict)
    flags = frame[flag_cols].apply(lambda s: s.str.strip() == "1").to_numpy()
    names = np.asarray(genres, dtype=object)
    categories = [", ".join(names[row]) for row in flags]
    return pd.DataFrame({
        "item_id": ids[frame.index].astype(np.int64).astype(str).to_numpy(),
        "name": frame["title"].str.strip().to_numpy(),
        "categories": categories,
        "attributes": _attributes(_year(frame["release_date"]),
                                  {"imdb_url": frame["imdb_url"].str.strip()}),
    })


# --- ml-latest-small -----------------------------------------------------------------------------
def _require(frame: pd.DataFrame, cols: list[str], path: Path) -> None:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        found = [c for c in frame.columns if c != "_line"]
        raise DatasetError(f"{path}: missing column(s) {missing} in the header line "
                           f"(expected {cols}, found {found})")


def _read_latest_ratings(path: Path, report: LoadReport, strict: bool) -> pd.DataFrame:
    frame = read_delimited(path, report, strict=strict, what="MovieLens ratings file ratings.csv")
    _require(frame, ["userId", "movieId", "rating", "timestamp"], path)
    frame = frame.rename(columns={"userId": "user", "movieId": "item"})
    return _validate_ratings(frame, path, report, strict)


def _read_latest_items(path: Path, report: LoadReport, strict: bool) -> pd.DataFrame:
    frame = read_delimited(path, report, strict=strict, what="MovieLens movies file movies.csv")
    _require(frame, ["movieId", "title", "genres"], path)
    ids = pd.to_numeric(frame["movieId"].str.strip(), errors="coerce")
    frame = reject_rows(frame, ids.isna() | (ids % 1 != 0), path, "movieId is not an integer",
                        report, strict)
    genres = frame["genres"].str.strip().replace("(no genres listed)", "")
    title = frame["title"].str.strip()
    return pd.DataFrame({
        "item_id": ids[frame.index].astype(np.int64).astype(str).to_numpy(),
        "name": title.to_numpy(),
        "categories": genres.str.split("|", regex=False)
        .map(lambda g: ", ".join(x.strip() for x in g if x.strip())).to_numpy(),
        "attributes": _attributes(_year(title.str.extract(r"\((\d{4})\)\s*$", expand=False)
                                        .fillna(""))),
    })


# --- extras --------------------------------------------------------------------------------------
def _read_overviews(path: Path, report: LoadReport, strict: bool) -> pd.DataFrame:
    """``movie_id`` (or ``movieId``) -> ``overview`` (empty string when blank)."""
    frame = read_delimited(path, report, strict=strict, what="overviews file")
    if "movieId" in frame.columns and "movie_id" not in frame.columns:
        frame = frame.rename(columns={"movieId": "movie_id"})
    _require(frame, ["movie_id", "overview"], path)
    ids = pd.to_numeric(frame["movie_id"].str.strip(), errors="coerce")
    frame = reject_rows(frame, ids.isna() | (ids % 1 != 0), path, "movie_id is not an integer",
                        report, strict)
    out = pd.DataFrame({
        "item_id": ids[frame.index].astype(np.int64).astype(str).to_numpy(),
        "overview": frame["overview"].to_numpy(),
    })
    return out.drop_duplicates("item_id")


def _posters(folder: Path, items: pd.DataFrame) -> pd.DataFrame:
    """One ``poster-<id>`` photo per movie with a ``posters/<id>.jpg`` (or .jpeg/.png) file."""
    files: dict[str, Path] = {}
    if folder.is_dir():
        for entry in sorted(folder.iterdir()):
            if entry.suffix.lower() in _POSTER_SUFFIXES and entry.is_file():
                files.setdefault(entry.stem, entry)
    have = items[items["item_id"].isin(set(files))]
    return pd.DataFrame({
        "photo_id": ("poster-" + have["item_id"]).to_numpy(),
        "item_id": have["item_id"].to_numpy(),
        "path": [str(files[i].resolve()) for i in have["item_id"]],
        "caption": have["name"].to_numpy(),
        "label": "poster",
    })

