"""Review texts beside the interactions: the Yelp loader never holds them in the Dataset."""

from __future__ import annotations

import gc
import json
import pickle
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from core.data import LoadOptions
from core.data.dataset import build_dataset
from core.data.demo import REVIEW_FILE, generate_demo
from core.data.texts import MemoryTexts, ParquetTexts
from core.data.yelp import _review_texts, load_yelp

SMALL = {"n_businesses": 30, "n_users": 80, "n_photos": 20}


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    return generate_demo(tmp_path_factory.mktemp("texts") / "d", seed=11, **SMALL)


def file_texts(root: Path) -> dict[str, str]:
    """review_id -> text, straight from the review file."""
    with open(root / REVIEW_FILE, encoding="utf-8") as f:
        return {r["review_id"]: r["text"] for r in map(json.loads, f)}


def strings_in(obj) -> set[str]:
    """Every str reachable from ``obj``'s frames, arrays and dicts (not from ``texts``)."""
    out: set[str] = set()
    for frame in (obj.interactions, obj.items, obj.photos):
        for col in frame.columns:
            values = frame[col].to_numpy(dtype=object)
            out.update(v for v in values if isinstance(v, str))
    out.update(str(u) for u in obj.user_ids)
    out.update(obj.report.warnings)
    return out


def test_loading_never_puts_review_text_in_the_dataset(demo_dir: Path):
    texts = file_texts(demo_dir)
    ds = load_yelp(demo_dir, LoadOptions(), name="yelp:t")
    assert "text" not in ds.interactions.columns
    assert isinstance(ds.texts, ParquetTexts) and ds.texts.path.is_file()
    held = strings_in(ds)
    assert not held & set(texts.values())
    # and the texts are there, on disk, one per interaction row, matching the file
    got = ds.texts.get(ds.interactions.index)
    assert got == [texts[r] for r in ds.interactions["review_id"]]
    assert ds.has_text and ds.summary()["interactions_with_text"] == len(ds.interactions)


def test_get_order_batches_and_bad_rows(demo_dir: Path):
    ds = load_yelp(demo_dir, LoadOptions(), name="yelp:t")
    n = len(ds.interactions)
    everything = ds.texts.get(range(n))
    rows = np.array([n - 1, 0, 7, 7, 3])
    assert ds.texts.get(rows) == [everything[i] for i in rows]
    many = np.random.default_rng(0).permutation(n)[:3000]  # more than one IN list
    assert ds.texts.get(many) == [everything[i] for i in many]
    streamed, starts = [], []
    for start, batch in ds.texts.batches(size=500):
        starts.append(start)
        streamed.extend(batch)
    assert streamed == everything and starts == list(range(0, n, 500))
    assert ds.texts.get([]) == []
    with pytest.raises(IndexError, match=str(n)):
        ds.texts.get([n])


def test_texts_file_lives_with_its_dataset(demo_dir: Path):
    ds = load_yelp(demo_dir, LoadOptions(), name="yelp:t")
    folder = ds.texts.path.parent
    copy = pickle.loads(pickle.dumps(ds.texts))
    assert copy.get([0, 1]) == ds.texts.get([0, 1])
    del copy
    gc.collect()
    assert folder.is_dir()  # a copy does not own the file
    del ds
    gc.collect()
    assert not folder.exists()


def test_collapsed_repeats_join_texts_like_the_in_memory_path(tmp_path: Path):
    """The SQL join of a collapsed pair's texts equals ``collapse_repeats`` on a text column:
    distinct non-blank texts, time order, blank line between; single rows keep theirs as is."""
    frame = pd.DataFrame({
        "user_id": ["u1", "u1", "u1", "u2", "u2", "u3", "u3"],
        "item_id": ["a", "a", "a", "a", "b", "b", "b"],
        "rating": [5.0, 4.0, 3.0, 2.0, 1.0, 3.0, 3.0],
        "timestamp": [30, 10, 20, 5, 6, 40, 41],
        "review_id": ["r1", "r2", "r3", "r4", "r5", "r6", "r7"],
        "text": ["late", "early", "early", "  ", None, " ", "  \n"],
    })
    items = pd.DataFrame({"item_id": ["a", "b"]})
    memory = build_dataset("m", frame, items, None)
    lines = tmp_path / "lines.json"
    lines.write_text("".join(json.dumps({"text": t if isinstance(t, str) else None}) + "\n"
                             for t in frame["text"]))
    con = duckdb.connect()

    def from_lines(rows, keys, order):  # the loader's own texts_from, on this file's lines
        return _review_texts(con, lines, rows, keys, order)

    keyed = build_dataset("k", frame.drop(columns="text").assign(text_key=np.arange(1, 8)),
                          items, None, texts_from=from_lines)
    pd.testing.assert_frame_equal(memory.interactions, keyed.interactions)
    assert isinstance(memory.texts, MemoryTexts)
    n = len(memory.interactions)
    assert keyed.texts.get(range(n)) == memory.texts.get(range(n))
    # u1-a: r2 (t=10), r3 (same text), r1 (t=30); u3-b: both blank; u2-a: single, kept as is
    assert sorted(memory.texts.to_list(), key=str) == sorted(["early\n\nlate", None, "  ",
                                                               None], key=str)
    np.testing.assert_array_equal(keyed.texts.nonblank(), memory.texts.nonblank())


# --- csv: the same guarantee ---------------------------------------------------------------------
CSV_REVIEWS = (
    "user,item,ts,rid,summary,body\n"
    "u1,A,10,r1,Great,\"Loved it, would buy again\"\n"
    "u1,B,11,r2,Meh,Average\n"
    "u2,A,12,r3,Good,\"Works,\nsort of\"\n"
    "u2,A,13,r4,,Works again\n"  # a repeat of u2-A: collapsed, texts joined
    "u2,C,14,r5,Bad,Broke,extra field\n"  # malformed: skipped
    "\n"
    "u3,B,15,r6,,\n"
    "u3,C,16,r7,  Fine ,  \n"
    "u4,C,17,r8,Lonely,Only review of u4\n"
)
CSV_CONFIG = ('[interactions]\npath = "{path}"\nuser = "user"\nitem = "item"\ntimestamp = "ts"\n'
              'review_id = "rid"\ntext = ["summary", "body"]\n')
CSV_TEXTS = {"r1": "Great Loved it, would buy again", "r2": "Meh Average",
             "r3": "Good Works,\nsort of\n\nWorks again", "r6": "", "r7": "Fine",
             "r8": "Lonely Only review of u4"}


def write_csv(root: Path, parquet: bool = False) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "r.csv").write_text(CSV_REVIEWS)
    path = "r.csv"
    if parquet:
        frame = pd.read_csv(root / "r.csv", dtype=str, on_bad_lines="skip", keep_default_na=False)
        frame.to_parquet(root / "r.parquet", row_group_size=2)
        path = "r.parquet"
    (root / "data.toml").write_text(CSV_CONFIG.format(path=path))
    return root / "data.toml"


@pytest.mark.parametrize("parquet", [False, True])
def test_csv_loading_never_puts_review_text_in_the_dataset(tmp_path: Path, monkeypatch,
                                                           parquet: bool):
    from core.data import csvtable

    monkeypatch.setenv("MMREC_TMP_DIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    config = write_csv(tmp_path / "d", parquet=parquet)
    whole = csvtable.load_csv(config, LoadOptions(), name="csv:t")
    monkeypatch.setattr(csvtable, "CHUNK_ROWS", 2)  # the file read (and set aside) 2 rows a time
    ds = csvtable.load_csv(config, LoadOptions(), name="csv:t")
    assert "text" not in ds.interactions.columns
    assert isinstance(ds.texts, ParquetTexts) and ds.texts.path.is_file()
    assert not strings_in(ds) & {p for t in CSV_TEXTS.values() for p in t.split("\n\n") if p}
    got = dict(zip(ds.interactions["review_id"], ds.texts.get(ds.interactions.index)))
    assert got == CSV_TEXTS
    assert ds.summary()["interactions_with_text"] == 5
    pd.testing.assert_frame_equal(ds.interactions, whole.interactions)
    assert ds.texts.to_list() == whole.texts.to_list()
    assert ds.report.counts == whole.report.counts
    assert ds.report.counts["malformed_lines"] == (0 if parquet else 1)
    # only the two datasets' text files are left: the texts set aside while reading are gone
    assert sorted(p.name[:12] for p in (tmp_path / "tmp").iterdir()) == ["mmrec-texts-"] * 2


def test_csv_texts_of_rows_left_by_the_filters(tmp_path: Path):
    from core.data.csvtable import load_csv

    config = write_csv(tmp_path / "d")
    ds = load_csv(config, LoadOptions(min_user_interactions=2, max_users=2, seed=0),
                  name="csv:t")
    got = dict(zip(ds.interactions["review_id"], ds.texts.get(ds.interactions.index)))
    assert got and got == {r: CSV_TEXTS[r] for r in got}
    assert "r8" not in got  # u4 has one review: out of the 2-core
