"""Dataset snapshots: the second load of an unchanged folder reads the snapshot (the loader is not
called), and anything that changes the loaded dataset (a source file, the options) loads again."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import core.data.yelp as yelp
from core.data import LoadOptions, load_dataset, snapshot
from tests.data.test_yelp import REVIEWS, write_yelp


@pytest.fixture
def counted(monkeypatch):
    """The Yelp loader, counting its calls."""
    calls = []
    real = yelp.load_yelp

    def load_yelp(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(yelp, "load_yelp", load_yelp)
    monkeypatch.delenv(snapshot.SNAPSHOT_ENV, raising=False)
    return calls


def _same(a, b) -> None:
    pd.testing.assert_frame_equal(a.interactions, b.interactions)
    pd.testing.assert_frame_equal(a.items, b.items)
    pd.testing.assert_frame_equal(a.photos, b.photos)
    assert list(a.user_ids) == list(b.user_ids)
    assert a.report.counts == b.report.counts and a.report.warnings == b.report.warnings
    rows = np.arange(len(a.interactions))
    assert a.texts.get(rows) == b.texts.get(rows)
    assert np.array_equal(a.texts.nonblank(), b.texts.nonblank())


def test_second_load_reads_the_snapshot(tmp_path: Path, counted):
    root = write_yelp(tmp_path / "yelp")
    spec, cache = f"yelp:{root}", tmp_path / "cache"
    first = load_dataset(spec, cache_dir=cache)
    second = load_dataset(spec, cache_dir=cache)
    assert len(counted) == 1
    _same(first, second)
    assert "review" in second.texts.get([0])[0]  # the texts moved into the snapshot, readable
    assert second.user_index(second.user_ids[0]) == 0  # rebuilt through Dataset's own checks
    (folder,) = (cache / snapshot.FOLDER).iterdir()
    assert (folder / "texts.parquet").is_file() and first.texts.path == folder / "texts.parquet"


def test_a_changed_file_or_other_options_load_again(tmp_path: Path, counted):
    root = write_yelp(tmp_path / "yelp")
    spec, cache = f"yelp:{root}", tmp_path / "cache"
    before = load_dataset(spec, cache_dir=cache)
    # the same size and modification time, one review's stars changed: still a new key
    path = root / yelp.REVIEW_FILE
    stat = path.stat()
    text = path.read_text()
    assert '"stars": 5.0' in text
    path.write_text(text.replace('"stars": 5.0', '"stars": 4.0', 1))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    after = load_dataset(spec, cache_dir=cache)
    assert len(counted) == 2
    assert after.interactions["rating"].sum() == before.interactions["rating"].sum() - 1
    load_dataset(spec, cache_dir=cache, options=LoadOptions(min_user_interactions=2))
    assert len(counted) == 3
    # a photo added under the folder changes the key too
    (root / "photos").mkdir()
    (root / "photos" / "new.jpg").write_bytes(b"\xff\xd8\xff\xe0fake")
    load_dataset(spec, cache_dir=cache)
    assert len(counted) == 4
    load_dataset(spec, cache_dir=cache)
    assert len(counted) == 4


def test_unreadable_snapshot_is_replaced_and_switch_turns_it_off(tmp_path: Path, counted,
                                                                monkeypatch):
    root = write_yelp(tmp_path / "yelp")
    spec, cache = f"yelp:{root}", tmp_path / "cache"
    first = load_dataset(spec, cache_dir=cache)
    (folder,) = (cache / snapshot.FOLDER).iterdir()
    (folder / "dataset.pkl").write_bytes(b"not a pickle")
    again = load_dataset(spec, cache_dir=cache)
    assert len(counted) == 2
    _same(first, again)
    assert (folder / "dataset.pkl").read_bytes() != b"not a pickle"  # written anew
    monkeypatch.setenv(snapshot.SNAPSHOT_ENV, "0")
    load_dataset(spec, cache_dir=cache)
    load_dataset(spec, cache_dir=cache)
    assert len(counted) == 4


def test_only_the_most_recently_used_snapshots_stay(tmp_path: Path, counted, monkeypatch):
    monkeypatch.setattr(snapshot, "KEEP", 2)
    cache = tmp_path / "cache"
    roots = [write_yelp(tmp_path / f"yelp{i}", reviews=REVIEWS[: len(REVIEWS) - i])
             for i in range(4)]
    for root in roots[:3]:
        load_dataset(f"yelp:{root}", cache_dir=cache)
    folders = cache / snapshot.FOLDER
    assert len(list(folders.iterdir())) == 3  # all in use by this process: none removed
    for marker in folders.glob("*/in-use.*"):  # as if the process that loaded them had ended
        marker.rename(marker.with_name("in-use.999999999"))
    load_dataset(f"yelp:{roots[2]}", cache_dir=cache)  # read back: the most recently used
    load_dataset(f"yelp:{roots[3]}", cache_dir=cache)  # a new one: the two oldest go
    assert len(counted) == 4 and len(list(folders.iterdir())) == 2
    load_dataset(f"yelp:{roots[2]}", cache_dir=cache)  # kept: read back
    assert len(counted) == 4
    load_dataset(f"yelp:{roots[0]}", cache_dir=cache)  # removed: loaded again
    assert len(counted) == 5
