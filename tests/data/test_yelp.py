"""The yelp: loader on tiny Yelp-layout fixtures written by the tests themselves."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from core.data import LoadOptions, load_dataset
from core.data.yelp import BUSINESS_FILE, PHOTO_FILE, REVIEW_FILE, USER_FILE, load_yelp
from core.errors import DatasetError

BUSINESSES = [
    {"business_id": "b1", "name": "Pizza Place", "address": "1 Main St", "city": "Phoenix",
     "state": "AZ", "latitude": 33.4, "longitude": -112.0, "stars": 4.5, "review_count": 3,
     "is_open": 1, "categories": "Restaurants, Italian, Pizza",
     "attributes": {"RestaurantsPriceRange2": "2", "WiFi": "u'free'", "HasTV": "False",
                    "Ambience": "{'romantic': False, 'casual': True}", "Smoking": "None"},
     "hours": {"Monday": "11:0-22:0"}},
    {"business_id": "b2", "name": "Taco Spot", "address": "2 Oak Ave", "city": "Tucson",
     "state": "AZ", "latitude": 32.2, "longitude": -110.9, "stars": 4.0, "review_count": 2,
     "is_open": 1, "categories": "Mexican, Restaurants", "attributes": None, "hours": None},
    {"business_id": "b3", "name": "Bread Co", "address": "3 Elm St", "city": "phoenix ",
     "state": "AZ", "latitude": 33.5, "longitude": -112.1, "stars": 3.5, "review_count": 2,
     "is_open": 0, "categories": "Food, Bakeries", "attributes": {}, "hours": None},
    {"business_id": "b4", "name": "Cut & Curl", "address": "4 Elm St", "city": "Phoenix",
     "state": "AZ", "latitude": 33.5, "longitude": -112.1, "stars": 5.0, "review_count": 2,
     "is_open": 1, "categories": "Beauty & Spas, Hair Salons", "attributes": None,
     "hours": None},
    {"business_id": "b5", "name": "Vegas Diner", "address": "5 Strip", "city": "Las Vegas",
     "state": "NV", "latitude": 36.1, "longitude": -115.1, "stars": 3.0, "review_count": 1,
     "is_open": 1, "categories": "Restaurants, Diners", "attributes": None, "hours": None},
]

# (review_id, user, business, stars, date)
REVIEWS = [
    ("r1", "u1", "b1", 5, "2018-01-01 12:00:00"),
    ("r2", "u1", "b2", 4, "2018-02-01 12:00:00"),
    ("r3", "u1", "b3", 3, "2018-03-01 12:00:00"),
    ("r4", "u2", "b1", 4, "2019-01-01 12:00:00"),
    ("r5", "u2", "b2", 2, "2019-02-01 12:00:00"),
    ("r6", "u3", "b1", 1, "2020-01-01 12:00:00"),
    ("r7", "u3", "b4", 5, "2020-01-02 12:00:00"),
    ("r8", "u4", "b3", 4, "2021-01-01 12:00:00"),
    ("r9", "u4", "b4", 5, "2021-01-02 12:00:00"),
    ("r10", "u5", "b5", 3, "2022-06-30 18:30:00"),
    ("r11", "u5", "bX", 2, "2022-07-01 10:00:00"),  # business not in the business file
]


def _review(rid, user, biz, stars, date):
    return {"review_id": rid, "user_id": user, "business_id": biz, "stars": float(stars),
            "useful": 0, "funny": 0, "cool": 0, "text": f"review {rid} of {biz}", "date": date}


def write_yelp(root: Path, businesses=BUSINESSES, reviews=REVIEWS, extra_review_lines=(),
               users=True, photos=None, photo_files=()) -> Path:
    """Write a tiny Yelp-layout directory; ``extra_review_lines`` = (position, raw line)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / BUSINESS_FILE).write_text("".join(json.dumps(b) + "\n" for b in businesses))
    lines = [json.dumps(_review(*r)) for r in reviews]
    for pos, raw in extra_review_lines:
        lines.insert(pos, raw)
    (root / REVIEW_FILE).write_text("\n".join(lines) + "\n")
    if users:
        ids = sorted({r[1] for r in reviews})
        (root / USER_FILE).write_text("".join(
            json.dumps({"user_id": u, "name": u.upper(), "review_count": 1}) + "\n" for u in ids))
    if photos is not None:
        (root / PHOTO_FILE).write_text("".join(json.dumps(p) + "\n" for p in photos))
        (root / "photos").mkdir(exist_ok=True)
        for pid in photo_files:
            (root / "photos" / f"{pid}.jpg").write_bytes(b"\xff\xd8\xff\xe0fake")
    return root


def load(root: Path, **kw) -> object:
    return load_yelp(root, LoadOptions(**kw), name=f"yelp:{root}")


@pytest.fixture
def yelp_dir(tmp_path: Path) -> Path:
    return write_yelp(tmp_path / "yelp")


def test_default_filter_keeps_restaurants_and_food(yelp_dir: Path):
    ds = load(yelp_dir)
    assert ds.domain == "restaurant"
    assert sorted(ds.items["item_id"]) == ["b1", "b2", "b3", "b5"]  # the hair salon is dropped
    assert len(ds.interactions) == 8  # r7, r9 (salon) and r11 (unknown business) are gone
    assert ds.report.counts["unknown_item_interactions"] == 1
    assert ds.report.counts["businesses_in_file"] == 5
    assert any(REVIEW_FILE in w for w in ds.report.warnings)
    # u3 (pizza), u4 (bakery) and u5 (diner) keep one review each
    assert ds.summary()["users_with_one_interaction"] == 3
    assert ds.report.counts["users_with_profile"] == 5


def test_ratings_timestamps_text_and_items(yelp_dir: Path):
    ds = load(yelp_dir)
    inter = ds.interactions
    row = inter[inter["review_id"] == "r10"].iloc[0]
    assert row["rating"] == 3.0
    assert row["timestamp"] == int(pd.Timestamp("2022-06-30 18:30:00").timestamp())
    assert ds.texts.get([row.name]) == ["review r10 of b5"]
    assert ds.user_ids[row["user"]] == "u5"
    assert ds.item_ids[row["item"]] == "b5"
    assert inter["timestamp"].is_monotonic_increasing
    b1 = ds.items.iloc[ds.item_index("b1")]
    assert b1["name"] == "Pizza Place"
    assert b1["categories"] == "Restaurants, Italian, Pizza"
    assert b1["attributes"] == {"RestaurantsPriceRange2": 2, "WiFi": "free", "HasTV": False,
                                "Ambience": {"romantic": False, "casual": True}}
    assert b1["price"] == 2
    assert (b1["city"], b1["state"], b1["stars"]) == ("Phoenix", "AZ", 4.5)
    assert b1["description"] == "1 Main St, Phoenix, AZ. Price range $$."
    b2 = ds.items.iloc[ds.item_index("b2")]
    assert b2["attributes"] == {} and pd.isna(b2["price"])
    assert b2["description"] == "2 Oak Ave, Tucson, AZ."


def test_category_filters(yelp_dir: Path):
    assert sorted(load(yelp_dir, categories=("mexican",)).items["item_id"]) == ["b2"]
    everything = load(yelp_dir, categories=())
    assert sorted(everything.items["item_id"]) == ["b1", "b2", "b3", "b4", "b5"]
    assert len(everything.interactions) == 10
    assert sorted(load(yelp_dir, categories=("Hair",)).items["item_id"]) == ["b4"]


def test_city_and_state_filters(yelp_dir: Path):
    # case-insensitive, surrounding spaces ignored ("phoenix " in the file)
    assert sorted(load(yelp_dir, city="PHOENIX").items["item_id"]) == ["b1", "b3"]
    assert sorted(load(yelp_dir, state="nv").items["item_id"]) == ["b5"]
    assert sorted(load(yelp_dir, state="AZ").items["item_id"]) == ["b1", "b2", "b3"]


def test_k_core(yelp_dir: Path):
    # restaurants+food reviews: u1:{b1,b2,b3} u2:{b1,b2} u3:{b1} u4:{b3} u5:{b5}
    ds = load(yelp_dir, min_user_interactions=2)
    assert sorted(ds.user_ids) == ["u1", "u2"]
    assert len(ds.interactions) == 5
    # items with >= 2 then users with >= 2: b5 goes, then u5/u3/u4 stay only if >= 2 left
    ds = load(yelp_dir, min_user_interactions=2, min_item_interactions=2)
    # b1:3, b2:2, b3:2 -> u1:3, u2:2 kept; u3 (1) and u4 (1) dropped -> b3 has 1 -> dropped
    # -> u1: b1,b2 ; u2: b1,b2 -> stable
    assert sorted(ds.user_ids) == ["u1", "u2"]
    assert sorted(ds.items["item_id"]) == ["b1", "b2"]
    assert ds.report.counts["k_core_dropped_interactions"] == 8 - 4


def test_max_users_is_reproducible(yelp_dir: Path):
    a = load(yelp_dir, max_users=2, seed=7)
    b = load(yelp_dir, max_users=2, seed=7)
    assert a.n_users == 2
    assert list(a.user_ids) == list(b.user_ids)
    assert a.report.counts["users_dropped_by_max_users"] == 3
    seen = {tuple(load(yelp_dir, max_users=2, seed=s).user_ids) for s in range(8)}
    assert len(seen) > 1  # the seed matters
    # the id-only first pass + text second pass gives the same rows as one pass
    full, capped = load(yelp_dir), load(yelp_dir, max_users=50)
    pd.testing.assert_frame_equal(full.interactions, capped.interactions)
    assert full.texts.get(range(len(full.interactions))) == \
        capped.texts.get(range(len(capped.interactions)))
    kept = a.interactions
    assert a.texts.get(kept.index) == ("review " + kept["review_id"] + " of "
                                       + pd.Series(a.item_ids[kept["item"]])).tolist()


def test_malformed_lines_are_skipped_and_counted(tmp_path: Path):
    root = write_yelp(tmp_path / "y", extra_review_lines=[
        (2, '{"review_id": "bad1", "user_id": "u9", "business_id": "b1", "stars": 5'),  # line 3
        (5, '{"review_id": "bad2", "user_id": "u9", "business_id": "b1", '
            '"date": "2020-01-01 00:00:00"}'),  # no stars: line 6
        (7, "[1, 2, 3]"),  # not an object: line 8
    ])
    ds = load(root)
    assert ds.report.counts["malformed_lines"] == 3
    assert len(ds.interactions) == 8
    assert "u9" not in set(ds.user_ids)
    assert any("first at line 3" in w and REVIEW_FILE in w for w in ds.report.warnings)
    with pytest.raises(DatasetError, match=rf"{REVIEW_FILE}, line 3: malformed line"):
        load(root, strict=True)


def test_strict_names_missing_field_line(tmp_path: Path):
    root = write_yelp(tmp_path / "y", extra_review_lines=[
        (4, '{"review_id": "bad", "user_id": "u9", "business_id": "b1", "stars": 5, '
            '"date": "not a date"}'),
    ])
    assert load(root).report.counts["malformed_lines"] == 1
    with pytest.raises(DatasetError, match=r"line 5: malformed line \(a field among"):
        load(root, strict=True)


def test_blank_lines_are_not_malformed(tmp_path: Path):
    root = write_yelp(tmp_path / "y", extra_review_lines=[(3, ""), (6, "   ")])
    ds = load(root, strict=True)
    assert "malformed_lines" not in ds.report.counts
    assert len(ds.interactions) == 8


def test_missing_directory_file_and_field(tmp_path: Path):
    with pytest.raises(DatasetError, match="not found"):
        load(tmp_path / "nope")
    root = write_yelp(tmp_path / "y")
    (root / REVIEW_FILE).unlink()
    with pytest.raises(DatasetError, match=REVIEW_FILE):
        load(root)
    root = write_yelp(tmp_path / "z")
    (root / REVIEW_FILE).write_text(
        "".join(json.dumps({"user_id": "u1", "business_id": "b1", "date": "2020-01-01"}) + "\n"
                for _ in range(3)))
    with pytest.raises(DatasetError, match=rf"{REVIEW_FILE}: no field 'stars'"):
        load(root)


def test_photos_missing_on_disk_and_unknown(tmp_path: Path):
    photos = [
        {"photo_id": "p1", "business_id": "b1", "caption": "Pizza", "label": "food"},
        {"photo_id": "p2", "business_id": "b1", "caption": "", "label": "inside"},  # no file
        {"photo_id": "p3", "business_id": "bX", "caption": "", "label": "food"},  # unknown biz
        {"photo_id": "p4", "business_id": "b4", "caption": "", "label": "inside"},  # filtered
    ]
    root = write_yelp(tmp_path / "y", photos=photos, photo_files=["p1", "p3", "p4"])
    ds = load(root)
    assert list(ds.photos["photo_id"]) == ["p1"]
    row = ds.photos.iloc[0]
    assert Path(row["path"]).is_absolute() and Path(row["path"]).is_file()
    assert (row["caption"], row["label"], ds.item_ids[row["item"]]) == ("Pizza", "food", "b1")
    assert ds.report.counts["photos_missing_on_disk"] == 1
    assert ds.report.counts["photos_of_unknown_items"] == 1
    assert ds.report.counts["items_without_photos"] == 3
    assert any("p2.jpg" in w for w in ds.report.warnings)


def test_users_file_is_optional(tmp_path: Path):
    ds = load(write_yelp(tmp_path / "y", users=False))
    assert ds.n_users == 5 and "users_with_profile" not in ds.report.counts


def test_empty_after_filters_is_a_clear_error(yelp_dir: Path):
    with pytest.raises(DatasetError, match=r"no business .* city=Atlantis"):
        load(yelp_dir, city="Atlantis")
    with pytest.raises(DatasetError, match="k-core"):
        load(yelp_dir, min_user_interactions=10)


def test_load_dataset_spec(yelp_dir: Path, tmp_path: Path):
    ds = load_dataset(f"yelp:{yelp_dir}", cache_dir=tmp_path / "cache")
    assert ds.name == f"yelp:{yelp_dir}"
    assert ds.n_items == 4


# One review id on two lines (r4 again: a later date and other stars, so that keeping it would
# also make (u2, b1) a repeated pair) and three repeated user-business pairs: (u1, b1) three
# times, (u2, b2) and (u5, b5) twice; r14 is older than r10, so it is u5's kept copy.
REPEATS = REVIEWS + [
    ("r4", "u2", "b1", 1, "2019-06-01 12:00:00"),
    ("r12", "u1", "b1", 2, "2019-05-01 12:00:00"),
    ("r15", "u1", "b1", 3, "2020-05-01 12:00:00"),
    ("r13", "u2", "b2", 5, "2020-03-01 12:00:00"),
    ("r14", "u5", "b5", 4, "2021-01-01 12:00:00"),
]


def _pair(ds, user: str, item: str) -> pd.DataFrame:
    inter = ds.interactions
    return inter[(inter["user"] == ds.user_index(user)) & (inter["item"] == ds.item_index(item))]


def test_duplicate_review_id_kept_once_and_repeated_pairs_collapsed(tmp_path: Path):
    root = write_yelp(tmp_path / "y", reviews=REPEATS)
    ds = load(root)
    counts = ds.summary()
    assert counts["duplicate_review_ids"] == 1
    assert counts["repeated_user_item_pairs"] == 3
    assert counts["repeat_interactions_collapsed"] == 4  # 12 rows -> 8 pairs
    inter = ds.interactions
    assert len(inter) == 8
    assert not inter.duplicated(["user", "item"]).any()
    assert (inter["review_id"] == "r4").sum() == 1
    assert any(REVIEW_FILE in w and "review_id" in w for w in ds.report.warnings)
    # r4's first line (2019-01-01, 4 stars) is the copy kept
    r4 = _pair(ds, "u2", "b1").iloc[0]
    assert (r4["review_id"], r4["rating"]) == ("r4", 4.0)
    assert r4["timestamp"] == int(pd.Timestamp("2019-01-01 12:00:00").timestamp())
    # the earliest copy's time, rating and id; later texts appended in time order
    u1b1 = _pair(ds, "u1", "b1").iloc[0]
    assert (u1b1["review_id"], u1b1["rating"]) == ("r1", 5.0)
    assert u1b1["timestamp"] == int(pd.Timestamp("2018-01-01 12:00:00").timestamp())
    assert ds.texts.get([u1b1.name]) == ["review r1 of b1\n\nreview r12 of b1\n\nreview r15 of b1"]
    u5b5 = _pair(ds, "u5", "b5").iloc[0]
    assert (u5b5["review_id"], u5b5["rating"]) == ("r14", 4.0)
    assert ds.texts.get([u5b5.name]) == ["review r14 of b5\n\nreview r10 of b5"]
    # the id-only first pass (k-core / sampling) dedupes and collapses alike
    pd.testing.assert_frame_equal(inter, load(root, max_users=50).interactions)


def test_repeats_keep_keeps_every_copy(tmp_path: Path):
    root = write_yelp(tmp_path / "y", reviews=REPEATS)
    ds = load(root, repeats="keep")
    counts = ds.summary()
    assert counts["duplicate_review_ids"] == 1  # review ids are deduplicated either way
    assert counts["repeated_user_item_pairs"] == 3
    assert counts["repeat_interactions_collapsed"] == 0
    assert len(ds.interactions) == 12
    assert sorted(_pair(ds, "u1", "b1")["review_id"]) == ["r1", "r12", "r15"]


def test_k_core_counts_distinct_items_when_collapsing(tmp_path: Path):
    root = write_yelp(tmp_path / "y", reviews=REPEATS)
    # u5 reviewed b5 twice: one restaurant, so out of a 2-core once repeats are collapsed
    assert "u5" not in set(load(root, min_user_interactions=2).user_ids)
    assert "u5" in set(load(root, min_user_interactions=2, repeats="keep").user_ids)


def test_no_duplicates_reports_zero(yelp_dir: Path):
    counts = load(yelp_dir).summary()
    assert counts["duplicate_review_ids"] == 0
    assert counts["repeated_user_item_pairs"] == 0
    assert counts["repeat_interactions_collapsed"] == 0


def test_cli_describe_shows_hygiene_counts_and_repeats_flag(tmp_path: Path, capsys):
    from core.__main__ import main

    root = write_yelp(tmp_path / "y", reviews=REPEATS)

    def describe(*flags: str) -> dict[str, str]:
        assert main(["datasets", "describe", f"yelp:{root}", *flags]) == 0
        return dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines()
                    if not line.startswith("warning"))

    out = describe()
    assert out["duplicate_review_ids"].strip() == "1"
    assert out["repeated_user_item_pairs"].strip() == "3"
    assert out["repeat_interactions_collapsed"].strip() == "4"
    assert out["interactions"].strip() == "8"
    kept = describe("--repeats", "keep")
    assert kept["interactions"].strip() == "12"
    assert kept["repeat_interactions_collapsed"].strip() == "0"


def test_unknown_repeats_mode_names_the_setting():
    with pytest.raises(DatasetError, match=r"repeats = 'drop'.*collapse, keep"):
        LoadOptions(repeats="drop")


def test_zero_byte_and_undecodable_photos_are_counted_and_left_out(tmp_path: Path):
    photos = [{"photo_id": p, "business_id": "b1", "caption": "", "label": "food"}
              for p in ("p1", "p2", "p3", "p4")]
    root = write_yelp(tmp_path / "y", photos=photos, photo_files=["p1"])
    from PIL import Image

    Image.new("RGB", (4, 4)).save(root / "photos" / "p4.jpg", format="PNG")  # PNG named .jpg
    (root / "photos" / "p2.jpg").write_bytes(b"")
    (root / "photos" / "p3.jpg").write_bytes(b"<html><body>403 Forbidden</body></html>")
    ds = load(root)
    assert sorted(ds.photos["photo_id"]) == ["p1", "p4"]
    counts = ds.summary()
    assert (counts["photos_zero_byte"], counts["photos_undecodable"]) == (1, 1)
    assert "photos_missing_on_disk" not in counts
    assert any("p2.jpg" in w and "0 bytes" in w for w in ds.report.warnings)
    assert any("p3.jpg" in w and "not readable as an image" in w for w in ds.report.warnings)


def test_item_text_has_name_categories_description_and_scalar_attributes(yelp_dir: Path):
    ds = load(yelp_dir)
    doc = ds.item_text()[ds.item_index("b1")]
    assert doc == ("Pizza Place Categories: Restaurants, Italian, Pizza. 1 Main St, Phoenix, AZ. "
                   "Price range $$. Attributes: RestaurantsPriceRange2: 2; WiFi: free; "
                   "HasTV: False.")
    assert "Ambience" not in doc and "Smoking" not in doc  # nested / None left out
    assert "Attributes" not in ds.item_text()[ds.item_index("b2")]  # no attributes
