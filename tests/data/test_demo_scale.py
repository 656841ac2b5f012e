"""The scaled demo (`python -m core demo --scale N`): N regions, deterministic, region 0 = demo."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from PIL import Image

from core.__main__ import main
from core.data import LoadOptions
from core.data.demo import (
    BUSINESS_FILE,
    PHOTO_DIR,
    PHOTO_FILE,
    REVIEW_FILE,
    USER_FILE,
    generate_demo,
)
from core.data.yelp import load_yelp
from core.errors import DatasetError

SMALL = {"n_businesses": 30, "n_users": 80, "n_photos": 40}
FILES = (BUSINESS_FILE, REVIEW_FILE, USER_FILE, PHOTO_FILE)


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def one(tmp_path_factory) -> Path:
    return generate_demo(tmp_path_factory.mktemp("scale") / "one", seed=5, **SMALL)


@pytest.fixture(scope="module")
def three(tmp_path_factory) -> Path:
    return generate_demo(tmp_path_factory.mktemp("scale") / "three", seed=5, scale=3, **SMALL)


def test_scale_is_deterministic(three: Path, tmp_path: Path):
    again = generate_demo(tmp_path / "again", seed=5, scale=3, **SMALL)
    assert digest(again) == digest(three)
    other = generate_demo(tmp_path / "other", seed=6, scale=3, **SMALL)
    assert (other / REVIEW_FILE).read_bytes() != (three / REVIEW_FILE).read_bytes()


def test_region_zero_is_the_scale_one_demo(one: Path, three: Path):
    """Each file of scale 3 starts with exactly the lines of scale 1 (same seed), and the two
    later regions add about as many again, each: the records of region 0 are the demo's."""
    for name in FILES:
        small, big = lines(one / name), lines(three / name)
        assert big[:len(small)] == small, name
        if name != PHOTO_FILE:  # photo counts per region are fixed; others vary a little
            assert 2.5 * len(small) < len(big) < 3.5 * len(small), name
    assert len(lines(three / PHOTO_FILE)) == 3 * SMALL["n_photos"]


def test_ids_unique_and_reviews_stay_in_their_region(three: Path):
    biz = [json.loads(x) for x in lines(three / BUSINESS_FILE)]
    users = [json.loads(x) for x in lines(three / USER_FILE)]
    reviews = [json.loads(x) for x in lines(three / REVIEW_FILE)]
    photos = [json.loads(x) for x in lines(three / PHOTO_FILE)]
    for rows, key in ((biz, "business_id"), (users, "user_id"), (reviews, "review_id"),
                      (photos, "photo_id")):
        ids = [r[key] for r in rows]
        assert len(set(ids)) == len(ids), key
    n_biz = len(biz) // 3  # every region has the same number of businesses
    region_of_biz = {b["business_id"]: i // n_biz for i, b in enumerate(biz)}
    region_of_user: dict[str, set[int]] = {}
    for r in reviews:
        region_of_user.setdefault(r["user_id"], set()).add(region_of_biz[r["business_id"]])
    assert all(len(regions) == 1 for regions in region_of_user.values())
    assert {next(iter(r)) for r in region_of_user.values()} == {0, 1, 2}


def test_scaled_photos_are_small_and_load(three: Path):
    photos = [json.loads(x) for x in lines(three / PHOTO_FILE)]
    with Image.open(three / PHOTO_DIR / f"{photos[-1]['photo_id']}.jpg") as img:
        assert img.size == (112, 112)
    ds = load_yelp(three, LoadOptions(), name="yelp:three")
    n_reviews = len(lines(three / REVIEW_FILE))
    assert 0.9 * n_reviews < len(ds.interactions) <= n_reviews  # only non-restaurants dropped
    assert len(ds.photos) == len(photos)


def test_scale_must_be_positive(tmp_path: Path):
    with pytest.raises(DatasetError, match="scale"):
        generate_demo(tmp_path / "bad", scale=0, **SMALL)


def test_cli_scale(tmp_path: Path, capsys):
    assert main(["demo", "--out", str(tmp_path / "cli"), "--scale", "2"]) == 0
    out = capsys.readouterr().out
    assert "demo dataset written to" in out
    readme = (tmp_path / "cli" / "README.txt").read_text(encoding="utf-8")
    assert "Scale 2: 2 regions" in readme
    n = len(lines(tmp_path / "cli" / REVIEW_FILE))
    assert f"{n} reviews" in readme
