"""The synthetic demo: Yelp layout, determinism, edge cases, the structure techniques rely on."""

from __future__ import annotations

import functools
import hashlib
import json
import re
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.__main__ import main
from core.data import LoadOptions, load_dataset
from core.data import demo as demo_mod
from core.data.demo import (
    BUSINESS_FILE,
    CUISINES,
    GENERATOR_VERSION,
    MARKER,
    PHOTO_FILE,
    REVIEW_FILE,
    USER_FILE,
    ensure_demo,
    generate_demo,
)
from core.data.yelp import load_yelp

SMALL = {"n_businesses": 60, "n_users": 200, "n_photos": 120}
DATE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
YELP_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return generate_demo(tmp_path_factory.mktemp("demo") / "d", seed=3, **SMALL)


@pytest.fixture(scope="module")
def medium(tmp_path_factory) -> dict[str, list[dict]]:
    """Default scale without photos (photos are drawn last, so the rest is the real demo)."""
    root = generate_demo(tmp_path_factory.mktemp("demo") / "m", n_photos=0)
    return {name: read_lines(root / name) for name in (BUSINESS_FILE, REVIEW_FILE)}


@pytest.fixture(scope="module")
def files(small: Path) -> dict[str, list[dict]]:
    return {name: read_lines(small / name)
            for name in (BUSINESS_FILE, REVIEW_FILE, USER_FILE, PHOTO_FILE)}


def cuisine_of(categories: str) -> int | None:
    cats = {c.strip() for c in categories.split(",")}
    for k, cu in enumerate(CUISINES):
        if cu.categories[0] in cats:
            return k
    return None


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_same_seed_same_bytes(small: Path, tmp_path: Path):
    again = generate_demo(tmp_path / "again", seed=3, **SMALL)
    a, b = tree_bytes(small), tree_bytes(again)
    assert a.keys() == b.keys()
    assert all(a[k] == b[k] for k in a)
    other = generate_demo(tmp_path / "other", seed=4, **SMALL)
    assert tree_bytes(other)[REVIEW_FILE] != a[REVIEW_FILE]


# sha256 of the files of ``generate_demo(seed=3, **SMALL)``, taken from the generator before it
# was split into a package (issue 9): a refactor must leave them alone; a deliberate change of the
# output bumps GENERATOR_VERSION and takes new hashes. The photos also depend on Pillow's drawing
# and JPEG encoder, so their digest (over "path sha256" lines) holds for the Pillow it was taken
# with (constraints.txt).
PINNED_FILES = {
    "README.txt": "3dd43dd10c3572544469be1567d5acec57a1bcd169dd1741624108d464b61718",
    PHOTO_FILE: "336da595766170fd97bb3ce33434848e6262f52edab94642c2c97e9bb0dfd74a",
    BUSINESS_FILE: "22e0b01f6cbf4f0d23b568e60c52a5b99f7afc9e31f480c0b580659a2947a9bd",
    REVIEW_FILE: "023a208a74176e1d3b0207abaeafaa20e482eb2ebae265da91dd8ad72a096e70",
    USER_FILE: "da20f443c3c747335dbdfccd7af6fe625e0c69ff16e4b98143015312ab1c9834",
}
#: Mean RGB of the first photos (by file name) of the small demo, taken with the original
#: generator. Compared with a tolerance of 2 grey levels: JPEG codecs of other Pillow builds move
#: pixels by a level or two, a change in what is drawn moves the means by far more.
PINNED_PHOTO_MEANS = {
    "06SbKDQtR5VMjXApsozM06.jpg": (112.8, 102.3, 108.8),
    "0MkbgtlnxOLqDlKnEveYg4.jpg": (119.2, 153.7, 130.4),
    "0Qx_cQC-tMeVcju1pKsSGn.jpg": (80.6, 58.6, 63.2),
    "1o8PU6wyjOd7z6X1sddtbS.jpg": (175.8, 176.8, 151.0),
    "296pTPY97-UXPBhREuPAwk.jpg": (107.2, 150.3, 133.4),
    "29OdTS52DcHqDY80jTot9U.jpg": (149.3, 163.4, 188.5),
    "2TBda8y0nWgFQgU46yudCi.jpg": (198.8, 115.0, 124.4),
    "2gv9_bpDXMB68pWyMxxyAX.jpg": (153.7, 169.4, 195.1),
}


def sha256_tree(root: Path) -> dict[str, str]:
    return {name: hashlib.sha256(data).hexdigest() for name, data in tree_bytes(root).items()}


def test_pinned_bytes(small: Path):
    hashes = sha256_tree(small)
    assert {k: v for k, v in hashes.items() if not k.startswith("photos/")} == PINNED_FILES


def test_pinned_photos(small: Path, tmp_path: Path):
    """What is drawn is pinned (mean colours, codec-tolerant) and the same seed gives the same
    photo bytes on this machine."""
    photos = sorted((small / "photos").iterdir())
    assert len(photos) == SMALL["n_photos"]
    for path in photos[:len(PINNED_PHOTO_MEANS)]:
        pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
        assert pixels.shape == (224, 224, 3)
        np.testing.assert_allclose(pixels.mean(axis=(0, 1)), PINNED_PHOTO_MEANS[path.name],
                                   atol=2.0, err_msg=path.name)
    again = generate_demo(tmp_path / "again", seed=3, **SMALL)
    assert sha256_tree(again) == sha256_tree(small)


def test_yelp_fields_and_formats(small: Path, files):
    biz, reviews, users, photos = (files[n] for n in
                                   (BUSINESS_FILE, REVIEW_FILE, USER_FILE, PHOTO_FILE))
    for b in biz:
        assert set(b) >= {"business_id", "name", "address", "city", "state", "postal_code",
                          "latitude", "longitude", "stars", "review_count", "is_open",
                          "attributes", "categories", "hours"}
        assert YELP_ID.match(b["business_id"])
        assert isinstance(b["categories"], str) and ", " in b["categories"]
        assert b["stars"] in np.arange(1, 5.5, 0.5)
    restaurants = [b for b in biz if "Restaurants" in b["categories"]]
    assert len(restaurants) == SMALL["n_businesses"]
    assert all(b["attributes"]["RestaurantsPriceRange2"] in "1234" for b in restaurants)
    assert len(biz) > len(restaurants)  # non-restaurants for the category filter to drop
    for r in reviews:
        assert set(r) == {"review_id", "user_id", "business_id", "stars", "useful", "funny",
                          "cool", "text", "date"}
        assert DATE.match(r["date"]) and r["stars"] in (1.0, 2.0, 3.0, 4.0, 5.0)
        assert YELP_ID.match(r["review_id"])
    assert len(users) == SMALL["n_users"]
    assert all({"user_id", "name", "review_count", "yelping_since", "useful", "funny", "cool",
                "fans", "average_stars"} <= set(u) for u in users)
    counts = Counter(r["user_id"] for r in reviews)
    assert all(u["review_count"] == counts[u["user_id"]] for u in users)
    assert len(photos) == 120
    assert {p["label"] for p in photos} == {"food", "drink", "menu", "inside", "outside"}
    assert set(photos[0]) == {"photo_id", "business_id", "caption", "label"}
    assert "SYNTHETIC" in (small / "README.txt").read_text()


def test_photos_are_jpegs(small: Path, files):
    for p in files[PHOTO_FILE]:
        with Image.open(small / "photos" / f"{p['photo_id']}.jpg") as img:
            assert img.format == "JPEG" and img.size == (224, 224)
            img.load()


def test_edge_cases(files):
    biz, reviews, photos = files[BUSINESS_FILE], files[REVIEW_FILE], files[PHOTO_FILE]
    with_photos = {p["business_id"] for p in photos}
    restaurants = {b["business_id"] for b in biz if "Restaurants" in b["categories"]}
    assert restaurants - with_photos, "some restaurants have no photo"
    per_user = Counter(r["user_id"] for r in reviews)
    assert sum(1 for n in per_user.values() if n == 1) >= 3, "some users have one review"
    years = {int(r["date"][:4]) for r in reviews}
    assert min(years) <= 2016 and max(years) >= 2021
    assert len({(r["user_id"], r["business_id"]) for r in reviews}) == len(reviews)
    assert all(b["review_count"] >= 2 for b in biz)


def test_structure_tastes_stars_popularity_text(medium):
    biz = {b["business_id"]: b for b in medium[BUSINESS_FILE]}
    reviews = [r for r in medium[REVIEW_FILE] if cuisine_of(biz[r["business_id"]]["categories"])
               is not None]
    cuisine = np.array([cuisine_of(biz[r["business_id"]]["categories"]) for r in reviews])
    users = np.array([r["user_id"] for r in reviews])
    stars = np.array([r["stars"] for r in reviews])

    # users concentrate on their favourite cuisine far more than chance
    share, chance_share, fav_stars, other_stars = [], [], [], []
    rng = np.random.default_rng(0)
    shuffled = rng.permutation(cuisine)
    for u in np.unique(users):
        m = users == u
        if m.sum() < 5:
            continue
        counts = np.bincount(cuisine[m], minlength=len(CUISINES))
        share.append(counts.max() / m.sum())
        chance_share.append(np.bincount(shuffled[m]).max() / m.sum())
        fav = cuisine[m] == counts.argmax()
        fav_stars += stars[m][fav].tolist()
        other_stars += stars[m][~fav].tolist()
    assert np.mean(share) > np.mean(chance_share) + 0.3  # about 0.71 vs 0.30
    # taste-matched reviews get more stars (about 4.2 vs 3.3)
    assert np.mean(fav_stars) > np.mean(other_stars) + 0.5

    # popularity skew: the top 10% of restaurants hold far more than 10% of reviews
    per_item = np.sort(np.array(list(Counter(r["business_id"] for r in reviews).values())))[::-1]
    assert per_item[: max(1, len(per_item) // 10)].sum() / per_item.sum() > 0.25

    # text names a dish of the restaurant's cuisine, and sentiment follows the stars
    for r, c in zip(reviews, cuisine):
        assert any(d in r["text"] for d in CUISINES[c].dishes)
    for r in reviews[:2000]:
        words = set(re.findall(r"[a-z]+", r["text"].lower()))
        if r["stars"] == 5:
            assert words & {"loved", "favorite", "wow", "disappoints", "incredible", "five"}
        if r["stars"] == 1:
            assert words & {"terrible", "avoid", "worst", "never", "awful", "recommend"}


def test_food_photos_look_like_their_cuisine(small: Path, files):
    """A nearest-centroid classifier on 8x8 thumbnails recognises the cuisine of food photos."""
    biz = {b["business_id"]: b for b in files[BUSINESS_FILE]}
    xs, ys = [], []
    for p in files[PHOTO_FILE]:
        if p["label"] != "food":
            continue
        with Image.open(small / "photos" / f"{p['photo_id']}.jpg") as img:
            xs.append(np.asarray(img.resize((8, 8)), dtype=np.float32).ravel() / 255)
        ys.append(cuisine_of(biz[p["business_id"]]["categories"]))
    x, y = np.array(xs), np.array(ys)
    correct = 0
    for i in range(len(y)):  # leave-one-out
        rest = np.arange(len(y)) != i
        classes = np.unique(y[rest])
        centroids = np.array([x[rest][y[rest] == c].mean(0) for c in classes])
        correct += classes[np.argmin(((centroids - x[i]) ** 2).sum(1))] == y[i]
    assert correct / len(y) > 0.6  # chance is about 0.1-0.2


def test_loads_through_the_yelp_loader(small: Path, files):
    ds = load_yelp(small, LoadOptions(), name="demo-small")
    assert ds.domain == "restaurant"
    assert ds.n_items == SMALL["n_businesses"]  # only restaurants by default
    assert ds.summary()["users_with_one_interaction"] > 0
    assert ds.summary()["items_without_photos"] > 0
    assert ds.has_text
    assert set(ds.photos["label"]) == {"food", "drink", "menu", "inside", "outside"}
    assert ds.items["price"].notna().all()
    everything = load_yelp(small, LoadOptions(categories=()), name="demo-all")
    assert everything.n_items == len(files[BUSINESS_FILE])


def _small_generate(calls: list, delay: float = 0.0):
    real = generate_demo

    @functools.wraps(real)
    def fake(out, seed=42, progress=False, **kw):
        calls.append(out)
        time.sleep(delay)
        return real(out, seed=seed, progress=progress, n_businesses=12, n_users=30, n_photos=10)
    return fake


def test_ensure_demo_generates_once_atomically(tmp_path: Path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(demo_mod, "generate_demo", _small_generate(calls, delay=0.3))
    root = tmp_path / "cache" / "demo"
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(ensure_demo(root)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [root, root]
    assert len(calls) == 1  # the second caller waited and found the data complete
    assert calls[0] != root  # written elsewhere, then renamed into place
    assert (root / MARKER).read_text().strip() == GENERATOR_VERSION
    assert (root / REVIEW_FILE).is_file()
    assert sorted(p.name for p in root.parent.iterdir()) == [".demo.lock", "demo"]
    ensure_demo(root)
    assert len(calls) == 1  # complete: nothing regenerated


def test_ensure_demo_replaces_incomplete(tmp_path: Path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(demo_mod, "generate_demo", _small_generate(calls))
    root = tmp_path / "demo"
    root.mkdir()
    (root / REVIEW_FILE).write_text("half written")  # no marker: an interrupted run
    ensure_demo(root)
    assert len(calls) == 1
    assert (root / REVIEW_FILE).read_text() != "half written"
    (root / MARKER).write_text("0\n")  # an older generator version
    ensure_demo(root)
    assert len(calls) == 2


def test_cli_demo_and_describe(tmp_path: Path, monkeypatch, capsys):
    calls: list = []
    monkeypatch.setattr(demo_mod, "generate_demo", _small_generate(calls))
    out = tmp_path / "demo-out"
    assert main(["demo", "--out", str(out)]) == 0
    assert (out / BUSINESS_FILE).is_file() and len(calls) == 1
    capsys.readouterr()
    assert main(["datasets", "describe", f"yelp:{out}"]) == 0
    printed = capsys.readouterr().out
    ds = load_dataset(f"yelp:{out}")
    fields = dict(line.split(None, 1) for line in printed.splitlines() if line.strip())
    assert int(fields["items"]) == ds.n_items == 12
    assert int(fields["interactions"]) == len(ds.interactions)
    assert int(fields["photos"]) == len(ds.photos)
    assert main(["datasets", "describe", f"yelp:{tmp_path / 'missing'}"]) == 2
    assert "not found" in capsys.readouterr().err


@pytest.mark.slow
def test_full_demo_matches_the_issue(tmp_path: Path):
    """Default scale through `--dataset demo`: counts and size as the issue asks (its speed is
    measured in bench/, not asserted here)."""
    ds = load_dataset("demo", cache_dir=tmp_path)
    root = tmp_path / "demo"
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert size < 50 * 2**20
    assert 280 <= ds.n_items <= 300 and ds.n_users > 1900
    assert 20_000 <= len(ds.interactions) <= 30_000
    assert len(read_lines(root / PHOTO_FILE)) == 1500
    assert (root / MARKER).is_file()
