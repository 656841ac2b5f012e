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
    assert ds.texts.get([0, 4]) == ["Great Loved it, would buy again", "Too small"]
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


# A fashion-transactions sample: article ids lost their leading zero in the transactions file
# (saved as numbers), c1 bought 0108775015 twice and c2 bought 0110065001 on two days.
TRANSACTIONS = (
    "t_dat,customer_id,article_id,price\n"
    "2020-09-01,c1,108775015,0.01\n"
    "2020-09-02,c2,110065001,0.02\n"
    "2020-09-03,c1,108775015,0.01\n"
    "2020-09-04,c2,111565001,0.03\n"
    "2020-09-05,c2,110065001,0.02\n"
    "2020-09-06,c3,111565001,0.03\n"
)
ARTICLES = (
    "article_id,prod_name,product_type_name,product_group_name,index_name,colour,detail_desc\n"
    "0108775015,Strap top,Vest top,Garment Upper body,Ladieswear|Basics,Black,Jersey top.\n"
    "0110065001,OP T-shirt,Bra,Underwear,Lingerie,White,Microfibre T-shirt bra.\n"
    "0111565001,20 den tights,Underwear Tights,Socks & Tights,Lingerie|Socks,Black,\n"
)
FASHION = """
[dataset]
domain = "product"

[interactions]
path = "transactions.csv"
user = "customer_id"
item = "article_id"
timestamp = "t_dat"

[items]
path = "articles.csv"
id = "article_id"
name = "prod_name"
categories = ["product_group_name", "product_type_name", "index_name"]
categories_sep = "|"
description = "detail_desc"
attributes = ["colour"]

[images]
folder = "images"
pattern = "{item_id:0>10}.jpg"
"""


def write_fashion(root: Path, transactions: str = TRANSACTIONS, articles: str = ARTICLES,
                  config: str = FASHION) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "transactions.csv").write_text(transactions)
    (root / "articles.csv").write_text(articles)
    (root / "images").mkdir(exist_ok=True)
    for aid in ("0108775015", "0110065001", "0111565001"):
        (root / "images" / f"{aid}.jpg").write_bytes(b"\xff\xd8\xff\xe0")
    (root / "fashion.toml").write_text(config)
    return root / "fashion.toml"


def test_ids_that_never_match_show_examples_from_both_files(tmp_path):
    cfg = write_fashion(tmp_path)
    with pytest.raises(DatasetError) as err:
        load_csv(cfg, LoadOptions(), name="csv:hm")
    msg = str(err.value)
    assert "every one of the 6 interaction(s)" in msg and "transactions.csv" in msg
    assert "articles.csv" in msg
    assert "'108775015'" in msg and "'0108775015'" in msg
    assert "leading zeros" in msg
    # ids that differ otherwise still get examples and the generic hint
    other = write_fashion(tmp_path / "b", transactions=TRANSACTIONS.replace(",1", ",9"))
    with pytest.raises(DatasetError, match=r"'908775015'.*'0108775015'.*leading zeros"):
        load_csv(other, LoadOptions(), name="csv:hm")


def _fixed_fashion(tmp_path) -> Path:
    return write_fashion(tmp_path, transactions=TRANSACTIONS.replace(",1", ",01"))


def test_repeat_purchases_are_counted_and_collapsed(tmp_path):
    cfg = _fixed_fashion(tmp_path)
    ds = load_csv(cfg, LoadOptions(), name="csv:hm")
    counts = ds.summary()
    assert counts["repeated_user_item_pairs"] == 2
    assert counts["repeat_interactions_collapsed"] == 2
    assert len(ds.interactions) == 4
    assert not ds.interactions.duplicated(["user", "item"]).any()
    c2 = ds.interactions[ds.interactions["user"] == ds.user_index("c2")]
    first_buy = c2[c2["item"] == ds.item_index("0110065001")]
    first_day = int(pd.Timestamp("2020-09-02", tz="UTC").timestamp())  # the first purchase
    assert first_buy["timestamp"].tolist() == [first_day]
    assert any("transactions.csv" in w and "2 user-item pair(s)" in w
               for w in ds.report.warnings)
    kept = load_csv(cfg, LoadOptions(repeats="keep"), name="csv:hm")
    assert len(kept.interactions) == 6
    assert kept.summary()["repeated_user_item_pairs"] == 2
    assert kept.summary()["repeat_interactions_collapsed"] == 0


def test_list_categories_attributes_and_padded_image_pattern(tmp_path):
    ds = load_csv(_fixed_fashion(tmp_path), LoadOptions(), name="csv:hm")
    items = ds.items.set_index("item_id")
    # each column's value(s) are separate categories (index_name split on "|")
    assert items.loc["0108775015", "categories"] == (
        "Garment Upper body, Vest top, Ladieswear, Basics")
    assert items.loc["0111565001", "categories"] == (
        "Socks & Tights, Underwear Tights, Lingerie, Socks")
    filtered = load_csv(_fixed_fashion(tmp_path / "f"), LoadOptions(categories=("socks",)),
                        name="csv:hm")
    assert list(filtered.item_ids) == ["0111565001"]
    doc = ds.item_text()[ds.item_index("0108775015")]
    assert doc == ("Strap top Categories: Garment Upper body, Vest top, Ladieswear, Basics. "
                   "Jersey top. Attributes: colour: Black.")
    assert sorted(ds.photos["photo_id"]) == ["0108775015", "0110065001", "0111565001"]


def test_image_pattern_pads_text_ids_and_rejects_numeric_specs(tmp_path):
    # items file without leading zeros, image files with them: "{item_id:0>10}" bridges them
    articles = ARTICLES.replace("\n0", "\n")
    ds = load_csv(write_fashion(tmp_path, articles=articles), LoadOptions(), name="csv:hm")
    assert sorted(ds.photos["photo_id"]) == ["108775015", "110065001", "111565001"]
    assert ds.report.counts["photos_missing_on_disk"] == 0
    numeric = FASHION.replace("{item_id:0>10}", "{item_id:010d}")
    cfg = write_fashion(tmp_path / "n", articles=articles, config=numeric)
    with pytest.raises(DatasetError, match=r"\[images\] pattern = '\{item_id:010d\}\.jpg' is "
                                           r"invalid.*\{item_id:0>10\}"):
        load_csv(cfg, LoadOptions(), name="csv:hm")


def test_duplicate_review_ids_kept_once(tmp_path):
    reviews = REVIEWS.replace("reviewText\n", "reviewText,rid\n", 1)
    lines = reviews.splitlines()
    ids = ["r1", "r2", "r3", "r4", "r5"]
    body = [f"{line},{rid}" for line, rid in zip(lines[1:], ids)]
    body.append("u3,B,2,1400,,Too small,r5")  # r5's line again
    cfg = write(tmp_path, config=CONFIG.replace('"rid"', '"review"'),
                reviews="\n".join([lines[0].replace(",rid", ",review")] + body) + "\n")
    ds = load_csv(cfg, LoadOptions(), name="csv:x")
    counts = ds.summary()
    assert counts["duplicate_review_ids"] == 1
    assert counts["repeated_user_item_pairs"] == 0  # the copy is gone before pairs are counted
    assert ds.interactions["review_id"].tolist() == ids
    assert any("reviews.csv" in w and "'r5' on line 7" in w for w in ds.report.warnings)
    # no duplicates: reported as 0 when a review id column is mapped, absent otherwise
    assert load_csv(write(tmp_path / "ok"), LoadOptions(),
                    name="csv:x").report.counts["duplicate_review_ids"] == 0
    cfg = '[interactions]\npath = "reviews.csv"\nuser = "reviewerID"\nitem = "asin"\n'
    plain = load_csv(write(tmp_path / "p", config=cfg), LoadOptions(), name="csv:x")
    assert "duplicate_review_ids" not in plain.report.counts
    assert plain.report.counts["repeated_user_item_pairs"] == 0


def test_zero_byte_and_undecodable_images_are_counted(tmp_path):
    cfg = write(tmp_path)
    (tmp_path / "img" / "A.jpg").write_bytes(b"")
    (tmp_path / "img" / "B.jpg").write_text("not an image at all")
    ds = load_csv(cfg, LoadOptions(), name="csv:x")
    assert len(ds.photos) == 0
    counts = ds.summary()
    assert (counts["photos_zero_byte"], counts["photos_undecodable"]) == (1, 1)
    assert counts["photos_missing_on_disk"] == 1  # C's image path
    assert counts["items_without_photos"] == 3
    assert any("A.jpg" in w and "0 bytes" in w for w in ds.report.warnings)
    assert any("B.jpg" in w and "data.toml [images]" in w for w in ds.report.warnings)
