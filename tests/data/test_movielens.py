"""MovieLens loader on small fixtures written here: both layouts, posters, overviews, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.__main__ import main
from core.data import LoadOptions, load_dataset
from core.data.movielens import ML100K_GENRES, load_movielens
from core.errors import DatasetError

GENRE_FILE = "".join(f"{g}|{i}\n" for i, g in enumerate(ML100K_GENRES)) + "\n"


def _flags(*genres: str) -> str:
    return "|".join("1" if g in genres else "0" for g in ML100K_GENRES)


def _item(mid: int, title: str, date: str, *genres: str) -> str:
    return f"{mid}|{title}|{date}||http://imdb/{mid}|{_flags(*genres)}\n"


# user, item, rating, timestamp: users 1..3, movies 1..4; movie 4 rated once (by user 3)
RATINGS = [
    (1, 1, 5, 100), (1, 2, 3, 110), (1, 3, 4, 120),
    (2, 1, 4, 130), (2, 3, 2, 140),
    (3, 2, 1, 150), (3, 4, 5, 160),
]


def write_ml100k(root: Path, ratings=RATINGS, extra_data: str = "", genre_file: bool = True,
                 posters=(1, 2, 4), overviews: str | None = None) -> Path:
    """ML-100K layout in ``root/ml-100k`` with posters/ and overviews.csv at ``root``."""
    data = root / "ml-100k"
    data.mkdir(parents=True)
    (data / "u.data").write_text(
        "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in ratings) + extra_data)
    (data / "u.item").write_bytes((
        _item(1, "Toy Story (1995)", "01-Jan-1995", "Animation", "Children's", "Comedy")
        + _item(2, "GoldenEye (1995)", "01-Jan-1995", "Action", "Thriller")
        + _item(3, "Amélie (2001)", "25-Apr-2001", "Comedy", "Romance")
        + _item(4, "unknown", "", "unknown")
    ).encode("latin-1"))
    if genre_file:
        (data / "u.genre").write_text(GENRE_FILE)
    if posters:
        (root / "posters").mkdir()
        for mid in posters:
            (root / "posters" / f"{mid}.jpg").write_bytes(b"\xff\xd8\xff")
    if overviews is None:
        overviews = ('movie_id,overview\n1,"Toys come alive, and fight."\n2,\n'
                     '3,A shy waitress in Paris.\n')
    (root / "overviews.csv").write_text(overviews)
    return root


def write_latest(root: Path, ratings_extra: str = "", movies_extra: str = "") -> Path:
    """ml-latest-small layout directly in ``root`` (quoted titles, | genres)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,11,3.5,964981247\n"
        "2,11,5.0,964982224\n2,99,2.5,964983815\n" + ratings_extra)
    (root / "movies.csv").write_text(
        'movieId,title,genres\n1,Toy Story (1995),Adventure|Animation|Children\n'
        '11,"American President, The (1995)",Comedy|Drama|Romance\n'
        '99,Untitled,(no genres listed)\n' + movies_extra)
    return root


def test_ml100k_counts_items_photos_and_overviews(tmp_path):
    ds = load_movielens(write_ml100k(tmp_path), LoadOptions(), name="ml")
    assert (ds.n_users, ds.n_items, len(ds.interactions)) == (3, 4, 7)
    assert ds.domain == "movie"
    assert not ds.has_text and ds.texts.get(range(7)) == [None] * 7
    items = ds.items.set_index("item_id")
    assert items.loc["1", "name"] == "Toy Story (1995)"
    assert items.loc["1", "categories"] == "Animation, Children's, Comedy"
    assert items.loc["3", "name"] == "Amélie (2001)"  # latin-1 decoded
    assert items.loc["1", "attributes"] == {"year": 1995, "imdb_url": "http://imdb/1"}
    assert items.loc["3", "attributes"]["year"] == 2001
    assert "year" not in items.loc["4", "attributes"]
    assert items.loc["1", "description"] == "Toys come alive, and fight."
    assert items.loc["2", "description"] == ""
    assert "has_overview_row" not in ds.items.columns
    # photos: posters for 1, 2, 4; movie 3 has none
    assert sorted(ds.photos["photo_id"]) == ["poster-1", "poster-2", "poster-4"]
    row = ds.photos[ds.photos["photo_id"] == "poster-1"].iloc[0]
    assert row["label"] == "poster" and row["caption"] == "Toy Story (1995)"
    assert Path(row["path"]).is_file() and Path(row["path"]).is_absolute()
    assert ds.item_ids[row["item"]] == "1"
    counts = ds.report.counts
    assert counts["movies_without_poster"] == 1
    assert counts["items_without_photos"] == 1
    assert counts["empty_overviews"] == 1  # movie 2's row is blank
    assert counts["movies_without_overview"] == 1  # movie 4 has no row
    assert counts["malformed_lines"] == 0 and counts["unknown_item_interactions"] == 0
    # ratings and timestamps carried over, sorted by time
    assert ds.interactions["timestamp"].tolist() == [100, 110, 120, 130, 140, 150, 160]
    first = ds.interactions.iloc[0]
    assert (ds.user_ids[first["user"]], ds.item_ids[first["item"]], first["rating"]) == (
        "1", "1", 5.0)


def test_ml100k_found_in_root_without_genre_file_or_extras(tmp_path):
    data = write_ml100k(tmp_path / "x", genre_file=False, posters=()) / "ml-100k"
    (tmp_path / "x" / "overviews.csv").unlink()
    ds = load_movielens(data, LoadOptions(), name="ml")  # files directly in root
    assert ds.items.set_index("item_id").loc["2", "categories"] == "Action, Thriller"
    assert len(ds.photos) == 0
    assert ds.report.counts["movies_without_poster"] == 4
    assert "empty_overviews" not in ds.report.counts
    assert any("no posters/" in w for w in ds.report.warnings)


def test_latest_small_layout_quoted_titles_and_genres(tmp_path):
    ds = load_movielens(write_latest(tmp_path / "ml-latest-small"), LoadOptions(), name="mls")
    items = ds.items.set_index("item_id")
    assert items.loc["11", "name"] == "American President, The (1995)"
    assert items.loc["11", "categories"] == "Comedy, Drama, Romance"
    assert items.loc["11", "attributes"] == {"year": 1995}
    assert items.loc["99", "categories"] == ""
    assert items.loc["99", "attributes"] == {}
    assert (ds.n_users, ds.n_items, len(ds.interactions)) == (2, 3, 4)
    assert sorted(ds.interactions["rating"].tolist()) == [2.5, 3.5, 4.0, 5.0]
    # found through the single subfolder as well
    assert load_movielens(tmp_path, LoadOptions(), name="mls").n_items == 3


def test_malformed_lines_are_skipped_and_counted(tmp_path):
    # line 8: too few fields; line 9: non-integer movie id; line 10: rating not a number
    extra = "4\t1\t3\n4\tabc\t3\t170\n4\t1\tfive\t180\n\n"
    ds = load_movielens(write_ml100k(tmp_path, extra_data=extra), LoadOptions(), name="ml")
    assert ds.report.counts["malformed_lines"] == 3
    assert len(ds.interactions) == 7 and ds.n_users == 3
    assert any("u.data" in w and "line 8" in w for w in ds.report.warnings)


def test_too_many_fields_counted_then_strict_names_file_and_line(tmp_path):
    root = write_latest(tmp_path, movies_extra="12,Extra,Comedy,oops\n")
    ds = load_movielens(root, LoadOptions(), name="mls")
    assert ds.report.counts["malformed_lines"] == 1
    assert any("movies.csv" in w and "line 5" in w for w in ds.report.warnings)
    with pytest.raises(DatasetError, match=r"movies\.csv: line 5"):
        load_movielens(root, LoadOptions(strict=True), name="mls")


def test_strict_fails_on_bad_value_with_line_number(tmp_path):
    bad = [(1, 1, 5, 100), (1, 2, 3, 110)]
    root = write_ml100k(tmp_path, ratings=bad, extra_data="2\tx\t1\t5\n")
    with pytest.raises(DatasetError, match=r"u\.data: line 3: malformed"):
        load_movielens(root, LoadOptions(strict=True), name="ml")


def test_unknown_movie_ids_are_counted_and_dropped(tmp_path):
    root = write_ml100k(tmp_path, ratings=RATINGS + [(3, 42, 4, 170), (1, 43, 4, 180)])
    ds = load_movielens(root, LoadOptions(), name="ml")
    assert ds.report.counts["unknown_item_interactions"] == 2
    assert len(ds.interactions) == 7
    assert any("u.data" in w for w in ds.report.warnings)


def test_filters_k_core_categories_and_empty_result(tmp_path):
    root = write_ml100k(tmp_path)
    # 2-core: movie 4 (one rating) goes, then user 3 has one rating left and goes,
    # then movie 2 has one rating (user 1) and goes; users 1, 2 x movies 1, 3 remain.
    ds = load_movielens(root, LoadOptions(min_user_interactions=2, min_item_interactions=2),
                        name="ml")
    assert sorted(ds.item_ids) == ["1", "3"] and list(ds.user_ids) == ["1", "2"]
    assert ds.report.counts["k_core_dropped_interactions"] == 3
    assert ds.report.counts["movies_without_poster"] == 1  # movie 3
    comedy = load_movielens(root, LoadOptions(categories=("comedy",)), name="ml")
    assert sorted(comedy.item_ids) == ["1", "3"]
    assert "photos_of_unknown_items" not in comedy.report.counts
    with pytest.raises(DatasetError, match="no interactions left after filters"):
        load_movielens(root, LoadOptions(min_user_interactions=5), name="ml")


def test_missing_directory_files_and_columns(tmp_path):
    with pytest.raises(DatasetError, match="directory not found"):
        load_movielens(tmp_path / "nope", LoadOptions(), name="ml")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"u\.data \+ u\.item"):
        load_movielens(tmp_path / "empty", LoadOptions(), name="ml")
    root = write_ml100k(tmp_path / "a")
    (root / "ml-100k" / "u.item").unlink()
    with pytest.raises(DatasetError, match=r"u\.item not found: .*u\.item"):
        load_movielens(root, LoadOptions(), name="ml")
    latest = write_latest(tmp_path / "b")
    (latest / "ratings.csv").write_text("userId,movie,rating,timestamp\n1,1,4,5\n")
    with pytest.raises(DatasetError, match=r"ratings\.csv: missing column\(s\) \['movieId'\]"):
        load_movielens(latest, LoadOptions(), name="ml")
    both = tmp_path / "both"
    write_latest(both / "one")
    write_latest(both / "two")
    with pytest.raises(DatasetError, match="several MovieLens folders"):
        load_movielens(both, LoadOptions(), name="ml")


def test_load_dataset_spec_routes_to_the_loader(tmp_path):
    ds = load_dataset(f"movielens:{write_ml100k(tmp_path)}")
    assert ds.name == f"movielens:{tmp_path}" and ds.n_items == 4


def test_cli_describe_prints_the_counts(tmp_path, capsys):
    root = write_ml100k(tmp_path, ratings=RATINGS + [(3, 42, 4, 170)], extra_data="oops\n")
    assert main(["datasets", "describe", f"movielens:{root}"]) == 0
    lines = [line.split(None, 1) for line in capsys.readouterr().out.splitlines()]
    printed = {k: v.strip() for k, v in lines if not k.startswith("warning")}
    assert printed["users"] == "3"
    assert printed["items"] == "4"
    assert printed["interactions"] == "7"
    assert printed["photos"] == "3"
    assert printed["movies_without_poster"] == "1"
    assert printed["empty_overviews"] == "1"
    assert printed["malformed_lines"] == "1"
    assert printed["unknown_item_interactions"] == "1"
    assert main(["datasets", "describe", f"movielens:{root}", "--strict"]) == 2
    assert "u.data: line 9: malformed" in capsys.readouterr().err


def test_repeated_ratings_are_counted_and_collapsed(tmp_path):
    # user 1 rated movie 1 again later (2 stars); user 2 rated movie 3 three times
    again = RATINGS + [(1, 1, 2, 200), (2, 3, 5, 210), (2, 3, 4, 220)]
    root = write_ml100k(tmp_path / "a", ratings=again)
    ds = load_movielens(root, LoadOptions(), name="ml")
    assert ds.report.counts["repeated_user_item_pairs"] == 2
    assert ds.report.counts["repeat_interactions_collapsed"] == 3
    assert len(ds.interactions) == 7
    first = ds.interactions[(ds.interactions["user"] == ds.user_index("1"))
                            & (ds.interactions["item"] == ds.item_index("1"))]
    assert first[["rating", "timestamp"]].values.tolist() == [[5.0, 100]]  # the earliest rating
    kept = load_movielens(write_ml100k(tmp_path / "b", ratings=again),
                          LoadOptions(repeats="keep"), name="ml")
    assert len(kept.interactions) == 10
    assert kept.report.counts["repeat_interactions_collapsed"] == 0
    plain = load_movielens(write_ml100k(tmp_path / "c"), LoadOptions(), name="ml")
    assert plain.report.counts["repeated_user_item_pairs"] == 0


def test_empty_and_undecodable_posters_are_counted_and_left_out(tmp_path):
    root = write_ml100k(tmp_path)
    (root / "posters" / "2.jpg").write_bytes(b"")
    (root / "posters" / "4.jpg").write_bytes(b"GIF-but-not-really")
    ds = load_movielens(root, LoadOptions(), name="ml")
    assert ds.photos["photo_id"].tolist() == ["poster-1"]
    assert ds.report.counts["photos_zero_byte"] == 1
    assert ds.report.counts["photos_undecodable"] == 1
    assert ds.report.counts["movies_without_poster"] == 3
    assert any("2.jpg" in w for w in ds.report.warnings)


def test_item_text_includes_the_year_attribute(tmp_path):
    ds = load_movielens(write_latest(tmp_path), LoadOptions(), name="mls")
    assert ds.item_text()[ds.item_index("1")] == (
        "Toy Story (1995) Categories: Adventure, Animation, Children. Attributes: year: 1995.")
