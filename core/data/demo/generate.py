"""``generate_demo``: the world, then its words, then its record details and photos, then the files.

One ``np.random.Generator`` seeded with ``seed`` feeds every step in a fixed order, so a seed gives
byte-identical files (``tests/data/test_demo.py`` pins them). A larger ``scale`` repeats the steps
once per region, each region with its own generator, and appends its lines to the same files.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from core.data.demo import files
from core.data.demo.drawing import noise_frames
from core.data.demo.text import business_names, review_texts
from core.data.demo.world import build_world, draw_details, plan_photos
from core.data.yelp import BUSINESS_FILE, PHOTO_DIR, PHOTO_FILE, REVIEW_FILE, USER_FILE
from core.errors import DatasetError


def generate_demo(
    out: Path,
    seed: int = 42,
    progress: bool = False,
    n_businesses: int = 300,
    n_users: int = 2000,
    n_photos: int = 1500,
    scale: int = 1,
) -> Path:
    """Write the synthetic demo dataset into ``out`` in the Yelp Open Dataset layout.

    Files: ``yelp_academic_dataset_{business,review,user}.json`` (JSON lines, Yelp's field names),
    ``photos.json`` + ``photos/<photo_id>.jpg`` and a ``README.txt`` saying the data is synthetic.
    The same ``seed`` gives byte-identical files. ``n_businesses`` counts restaurants; a few
    non-restaurant businesses (hair salons, shops, ...) are added for the category filter to drop.
    ``scale`` N writes N regions one after the other, each drawn like the scale-1 demo (these
    counts) from its own generator (region 0 from ``seed``, region r from ``[seed, r]``), so
    ``scale=1`` is the demo itself and every count grows N times; users review businesses of
    their own region; photos are drawn at half size (112 px) when ``scale`` > 1, so a million
    reviews take minutes. One region is in memory at a time. ``progress`` shows a bar (regions, or
    photos at scale 1) and prints the counts and time.

    Returns:
        ``out`` (created if missing; existing demo files are overwritten).
    Raises:
        DatasetError: fewer than 10 businesses or users, a negative ``n_photos``, ``scale`` < 1,
            or (never seen; about 1e-27 at a million reviews) two regions drawing the same id.
    """
    if n_businesses < 10 or n_users < 10 or n_photos < 0:
        raise DatasetError("demo: need at least 10 businesses and 10 users")
    if scale < 1:
        raise DatasetError(f"demo: scale must be a whole number >= 1 (--scale), got {scale}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / PHOTO_DIR).mkdir(exist_ok=True)
    t0 = time.perf_counter()
    counts = dict.fromkeys(("businesses", "others", "users", "reviews", "photos"), 0)
    seen: dict[str, set[str]] = {"business": set(), "user": set(), "review": set(), "photo": set()}
    bar = _bar(progress, scale, n_photos)
    with ExitStack() as stack:
        handles = {name: stack.enter_context(open(out / name, "w", encoding="utf-8"))
                   for name in (REVIEW_FILE, BUSINESS_FILE, USER_FILE, PHOTO_FILE)}
        for region in range(scale):
            rng = np.random.default_rng(seed if region == 0 else [seed, region])
            # the order of these calls is the order of the draws: keep it
            world = build_world(rng, n_businesses, n_users)
            names = business_names(rng, world)
            texts = review_texts(rng, world)
            details = draw_details(rng, world)
            plan = plan_photos(rng, world.businesses, n_photos)
            noise = noise_frames(rng)
            if scale > 1:
                _check_new(seen, region, world, details, plan)

            files.write_reviews(handles[REVIEW_FILE], world, details, texts)
            files.write_businesses(handles[BUSINESS_FILE], world, details, names, seed,
                                   first=counts["businesses"])
            files.write_users(handles[USER_FILE], world, details)
            files.write_photos(out / PHOTO_DIR, handles[PHOTO_FILE], world, plan, noise, names,
                               seed, first=counts["photos"], small=scale > 1,
                               bar=bar.update if bar is not None and scale == 1 else None)
            counts["businesses"] += len(world.businesses.ids)
            counts["others"] += world.businesses.n_other
            counts["users"] += len(world.users.ids)
            counts["reviews"] += len(world.user)
            counts["photos"] += len(plan.business)
            if bar is not None and scale > 1:
                bar.update(1)
    if bar is not None:
        bar.close()
    files.write_readme(out, seed, counts, scale)
    if progress:
        print(f"demo: {counts['businesses']} businesses, {counts['users']} users, "
              f"{counts['reviews']} reviews, {counts['photos']} photos "
              f"in {time.perf_counter() - t0:.1f} s")
    return out


def _bar(progress: bool, scale: int, n_photos: int):
    if not progress:
        return None
    from tqdm import tqdm

    if scale == 1:
        return tqdm(total=n_photos, desc="demo photos", unit="photo")
    return tqdm(total=scale, desc="demo regions", unit="region")


def _check_new(seen: dict[str, set[str]], region: int, world, details, plan) -> None:
    """Raise if a region drew an id an earlier region has (ids are 22 random characters over 64
    symbols, so this never happens in practice; the check keeps it from going unnoticed)."""
    for kind, ids in (("business", world.businesses.ids), ("user", world.users.ids),
                      ("review", details.review_ids), ("photo", plan.ids)):
        if not seen[kind].isdisjoint(ids):
            raise DatasetError(f"demo: region {region} drew a {kind} id an earlier region has; "
                               "use another --seed")
        seen[kind].update(ids)
