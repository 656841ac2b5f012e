"""``generate_demo``: the world, then its words, then its record details and photos, then the files.

One ``np.random.Generator`` seeded with ``seed`` feeds every step in a fixed order, so a seed gives
byte-identical files (``tests/data/test_demo.py`` pins them).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from core.data.demo import files
from core.data.demo.drawing import noise_frames
from core.data.demo.text import business_names, review_texts
from core.data.demo.world import build_world, draw_details, plan_photos
from core.errors import DatasetError


def generate_demo(
    out: Path,
    seed: int = 42,
    progress: bool = False,
    n_businesses: int = 300,
    n_users: int = 2000,
    n_photos: int = 1500,
) -> Path:
    """Write the synthetic demo dataset into ``out`` in the Yelp Open Dataset layout.

    Files: ``yelp_academic_dataset_{business,review,user}.json`` (JSON lines, Yelp's field names),
    ``photos.json`` + ``photos/<photo_id>.jpg`` and a ``README.txt`` saying the data is synthetic.
    The same ``seed`` gives byte-identical files. ``n_businesses`` counts restaurants; a few
    non-restaurant businesses (hair salons, shops, ...) are added for the category filter to drop.
    ``progress`` shows a bar while the photos are drawn and prints the counts and time.

    Returns:
        ``out`` (created if missing; existing demo files are overwritten).
    Raises:
        DatasetError: fewer than 10 businesses or users, or a negative ``n_photos``.
    """
    if n_businesses < 10 or n_users < 10 or n_photos < 0:
        raise DatasetError("demo: need at least 10 businesses and 10 users")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    # the order of these calls is the order of the draws: keep it
    world = build_world(rng, n_businesses, n_users)
    names = business_names(rng, world)
    texts = review_texts(rng, world)
    details = draw_details(rng, world)
    plan = plan_photos(rng, world.businesses, n_photos)
    noise = noise_frames(rng)

    files.write_reviews(out, world, details, texts)
    files.write_businesses(out, world, details, names, seed)
    files.write_users(out, world, details)
    files.write_photos(out, world, plan, noise, names, seed, progress=progress)
    files.write_readme(out, seed, world, len(plan.business))
    if progress:
        print(f"demo: {len(world.businesses.ids)} businesses, {len(world.users.ids)} users, "
              f"{len(world.user)} reviews, {len(plan.business)} photos "
              f"in {time.perf_counter() - t0:.1f} s")
    return out
