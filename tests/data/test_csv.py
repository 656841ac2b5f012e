"""Generic TOML-described loader (csv:<config.toml>) on fixtures written here."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from core.__main__ import main
from core.data import LoadOptions, load_dataset
from core.data.csvtable import load_csv, parse_timestamps
from core.errors import DatasetError

REVIEWS = (
    "reviewerID,asin,overall,unixReviewTime,summary,reviewText\n"
    "u1,A,5,1000,Great,\"Loved it, would buy again\"\n"
    "u1,B,3,1100,Meh,Average\n"
    "u2,A,4,1200,Good,Works\n"
    "u2,C,1,1300,Bad,Broke\n"
    "u3,B,2,1400,,Too small\n"
)
META = (
    "asin,title,category,description,feature,brand,price,image_path\n"
    "A,Blue mug,Home|Kitchen,A mug.,Dishwasher safe,Acme,9.99,img/A.jpg\n"
    "B,Red shoe,Fashion|Shoes,A shoe.,,Foot,,img/B.jpg\n"
    "C,Green lamp,Home|Lighting,,LED,Lux,20,img/missing.jpg\n"
)
CONFIG = """
[dataset]
domain = "product"

[interactions]
path = "reviews.csv"
user = "reviewerID"
item = "asin"
rating = "overall"
timestamp = "unixReviewTime"
review_id = "rid"
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
"""


def write(root: Path, config: str = CONFIG, reviews: str = REVIEWS, meta: str = META,
          images=("A", "B")) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    cfg = config
    if "rid" in cfg:  # give the fixture a review id column
        lines = reviews.splitlines()
        reviews = "\n".join([lines[0] + ",rid"] + [f"{line},r{i}" for i, line in
                                                   enumerate(lines[1:])]) + "\n"
    (root / "reviews.csv").write_text(reviews)
    (root / "meta.csv").write_text(meta)
    (root / "img").mkdir(exist_ok=True)
    for i in images:
        (root / "img" / f"{i}.jpg").write_bytes(b"\xff\xd8\xff")
    (root / "data.toml").write_text(cfg)
    return root / "data.toml"


def test_full_mapping(tmp_path):
    ds = load_csv(write(tmp_path), LoadOptions(), name="csv:x")
    assert ds.domain == "product"
    assert (ds.n_users, ds.n_items, len(ds.interactions)) == (3, 3, 5)
    items = ds.items.set_index("item_id")
    assert items.loc["A", "name"] == "Blue mug"
    assert items.loc["A", "categories"] == "Home, Kitchen"
    assert items.loc["A", "description"] == "A mug. Dishwasher safe"
    assert items.loc["C", "description"] == "LED"
    assert items.loc["A", "attributes"] == {"brand": "Acme", "price": "9.99"}
    assert items.loc["B", "attributes"] == {"brand": "Foot"}
    inter = ds.interactions
    assert inter["timestamp"].tolist() == [1000, 1100, 1200, 1300, 1400]
    assert inter["rating"].tolist() == [5.0, 3.0, 4.0, 1.0, 2.0]
    assert inter["text"].tolist()[0] == "Great Loved it, would buy again"
    assert inter["text"].tolist()[4] == "Too small"
    assert inter["review_id"].tolist() == ["r0", "r1", "r2", "r3", "r4"]
    assert ds.has_text
    # images: A and B on disk, C's path is missing
    assert sorted(ds.photos["photo_id"]) == ["A", "B"]
    assert ds.photos.set_index("photo_id").loc["A", "caption"] == "Blue mug"
    assert ds.report.counts["photos_missing_on_disk"] == 1
    assert ds.report.counts["items_without_photos"] == 1
    assert any("missing.jpg" in w for w in ds.report.warnings)


def test_minimal_config_defaults(tmp_path):
    cfg = '[interactions]\npath = "reviews.csv"\nuser = "reviewerID"\nitem = "asin"\n'
    ds = load_csv(write(tmp_path, config=cfg), LoadOptions(), name="csv:min")
    assert ds.domain == "item"
    assert ds.interactions["rating"].tolist() == [1.0] * 5
    # no timestamp column: file order stands in for time
    assert ds.interactions["timestamp"].tolist() == [0, 1, 2, 3, 4]
    assert sorted(ds.item_ids) == ["A", "B", "C"]
    assert ds.items["name"].tolist() == ["A", "B", "C"]  # name falls back to the id
    assert not ds.has_text and len(ds.photos) == 0


def test_date_strings_parquet_and_image_pattern(tmp_path):
    pd.DataFrame({
        "customer": ["c1", "c1", "c2"], "article": [10, 11, 10],
        "t_dat": ["2020-01-02", "2020-01-01", "2020-01-03"],
    }).to_parquet(tmp_path / "tx.parquet")
    pd.DataFrame({"article_id": [10, 11], "prod_name": ["Tee", "Sock"],
                  "detail_desc": ["Cotton tee", "Wool sock"]}).to_parquet(tmp_path / "art.parquet")
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "10.jpg").write_bytes(b"\xff\xd8\xff")
    cfg = tmp_path / "hm.toml"
    cfg.write_text(
        '[interactions]\npath = "tx.parquet"\nuser = "customer"\nitem = "article"\n'
        'timestamp = "t_dat"\n'
        '[items]\npath = "art.parquet"\nid = "article_id"\nname = "prod_name"\n'
        'description = "detail_desc"\n'
        '[images]\nfolder = "images"\npattern = "{item_id}.jpg"\nlabel = "product"\n'
    )
    ds = load_csv(cfg, LoadOptions(), name="csv:hm")
    assert ds.interactions["timestamp"].tolist() == [1577836800, 1577923200, 1578009600]
    assert ds.items.set_index("item_id").loc["11", "description"] == "Wool sock"
    assert ds.photos["photo_id"].tolist() == ["10"] and ds.photos["label"].tolist() == ["product"]
    assert ds.report.counts["photos_missing_on_disk"] == 1  # images/11.jpg


def test_parse_timestamps_units_and_bad_values():
    sec, bad = parse_timestamps(pd.Series(["1000", "2000"]), unit="ms")
    assert sec.tolist() == [1, 2] and not bad.any()
    sec, bad = parse_timestamps(pd.Series(["1970-01-02", "not a date"]))
    assert sec[0] == 86400 and bad.tolist() == [False, True]


def test_malformed_lines_counted_and_strict(tmp_path):
    bad = REVIEWS + "u4,A,4,1500,x,y,extra,fields\n" + "u5,B,notanumber,1600,x,y\n"
    cfg = write(tmp_path, reviews=bad)
    ds = load_csv(cfg, LoadOptions(), name="csv:x")
    assert ds.report.counts["malformed_lines"] == 2
    assert len(ds.interactions) == 5
    assert any("reviews.csv" in w and "line 8" in w for w in ds.report.warnings)
    with pytest.raises(DatasetError, match=r"reviews\.csv: line 7: malformed"):
        load_csv(cfg, LoadOptions(strict=True), name="csv:x")
    only_value = write(tmp_path / "v", reviews=REVIEWS + "u5,B,5,yesterday-ish,x,y\n")
    with pytest.raises(DatasetError, match=r"line 7: malformed line \(unixReviewTime"):
        load_csv(only_value, LoadOptions(strict=True), name="csv:x")


def test_missing_config_file_and_column(tmp_path):
    with pytest.raises(DatasetError, match="dataset config not found"):
        load_csv(tmp_path / "none.toml", LoadOptions(), name="csv:x")
    cfg = write(tmp_path)
    (tmp_path / "meta.csv").unlink()
    with pytest.raises(DatasetError, match=r"\[items\] path not found: .*meta\.csv"):
        load_csv(cfg, LoadOptions(), name="csv:x")
    cfg = write(tmp_path / "c", config=CONFIG.replace('"overall"', '"stars"'))
    with pytest.raises(DatasetError) as err:
        load_csv(cfg, LoadOptions(), name="csv:x")
    msg = str(err.value)
    assert "[interactions] rating = 'stars'" in msg and "reviews.csv" in msg
    assert "available columns: reviewerID, asin, overall" in msg


def test_bad_toml_and_unknown_keys(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[interactions]\npath = "a.csv"\nuser = \n')
    with pytest.raises(DatasetError, match=r"bad\.toml: invalid TOML: .*line 3"):
        load_csv(cfg, LoadOptions(), name="csv:x")
    cfg.write_text('[interactions]\npath = "a.csv"\nuser = "u"\nitem = "i"\nratng = "r"\n')
    with pytest.raises(DatasetError, match=r"unknown key\(s\) \['ratng'\] in \[interactions\]"):
        load_csv(cfg, LoadOptions(), name="csv:x")
    cfg.write_text('[interactions]\npath = "a.csv"\nuser = "u"\n')
    with pytest.raises(DatasetError, match=r"\[interactions\] needs item"):
        load_csv(cfg, LoadOptions(), name="csv:x")


def test_unknown_items_filters_and_empty_result(tmp_path):
    cfg = write(tmp_path, reviews=REVIEWS + "u3,Z,4,1500,,?\n")
    ds = load_csv(cfg, LoadOptions(), name="csv:x")
    assert ds.report.counts["unknown_item_interactions"] == 1
    assert len(ds.interactions) == 5
    home = load_csv(cfg, LoadOptions(categories=("kitchen", "lighting")), name="csv:x")
    assert sorted(home.item_ids) == ["A", "C"]
    # 2-core: item C (1) goes -> u2 keeps A only and goes -> A keeps u1 only and goes -> empty
    with pytest.raises(DatasetError, match="no interactions left after filters"):
        load_csv(cfg, LoadOptions(min_user_interactions=2, min_item_interactions=2),
                 name="csv:x")


def test_spec_and_cli_describe(tmp_path, capsys):
    cfg = write(tmp_path)
    assert load_dataset(f"csv:{cfg}").n_items == 3
    assert main(["datasets", "describe", f"csv:{cfg}"]) == 0
    out = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines()
               if not line.startswith("warning"))
    assert out["interactions"].strip() == "5"
    assert out["photos_missing_on_disk"].strip() == "1"
    assert out["interactions_with_text"].strip() == "5"
