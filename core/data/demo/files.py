"""Writing the demo in the Yelp Open Dataset layout: JSON lines with Yelp's field names.

The writers only format what the world model, the text and the drawing produced; they draw
nothing from the seeded generator (the per-business category order and the per-photo drawing
use their own ``random.Random`` seeded from the seed and the index).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Callable, TextIO

import numpy as np

from core.data.demo.drawing import photo_bytes
from core.data.demo.text import photo_caption
from core.data.demo.vocabulary import CITIES, CUISINES, FIRST_NAMES, OTHER_CATEGORIES, STREETS
from core.data.demo.world import PHOTO_LABELS, Details, PhotoPlan, World

#: Bumped whenever the generated files change; ``ensure_demo`` regenerates on a mismatch.
GENERATOR_VERSION = "1"
_WEEK = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")


def _dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _fmt_ts(seconds: np.ndarray) -> list[str]:
    """Unix seconds as Yelp's ``YYYY-MM-DD HH:MM:SS``."""
    text = np.datetime_as_string(seconds.astype("datetime64[s]"), unit="s").tolist()
    return [s.replace("T", " ") for s in text]


def write_reviews(f: TextIO, world: World, details: Details, texts: list[str]) -> None:
    """A region's lines of ``REVIEW_FILE`` (open as ``f``), sorted by date (then user, then
    business) as a stable file order."""
    rows, cols = world.user, world.business
    users, biz, votes = world.users, world.businesses, details.votes
    order = np.lexsort((cols, rows, world.time))
    dates = _fmt_ts(world.time)
    f.writelines(_dumps({
        "review_id": details.review_ids[i], "user_id": users.ids[rows[i]],
        "business_id": biz.ids[cols[i]], "stars": float(world.stars[i]),
        "useful": int(votes[i, 0]), "funny": int(votes[i, 1]), "cool": int(votes[i, 2]),
        "text": texts[i], "date": dates[i],
    }) + "\n" for i in order)


def _restaurant_fields(price: int, flags: np.ndarray, categories: tuple[str, ...],
                       rng_b: random.Random) -> tuple[dict[str, str], dict[str, str], str]:
    """(attributes, hours, categories) of a restaurant, Yelp's string-typed attributes."""
    cats = ["Restaurants", *categories]
    rng_b.shuffle(cats)
    attributes = {
        "RestaurantsPriceRange2": str(price),
        "RestaurantsTakeOut": str(bool(flags[0])),
        "RestaurantsDelivery": str(bool(flags[1])),
        "OutdoorSeating": str(bool(flags[2])),
        "WiFi": "u'free'" if flags[3] else "u'no'",
        "Alcohol": "u'full_bar'" if price >= 3 else
        ("u'beer_and_wine'" if flags[4] else "u'none'"),
        "GoodForKids": str(bool(flags[5])),
        "Ambience": "{'romantic': %s, 'casual': %s, 'classy': %s}" % (
            price >= 4, price <= 2, price >= 3),
    }
    hours = {d: "11:0-22:0" for d in _WEEK}
    hours["Sunday"] = "12:0-21:0"
    return attributes, hours, ", ".join(cats)


def _other_fields(b: int, flags: np.ndarray) -> tuple[dict[str, str], dict[str, str], str]:
    """(attributes, hours, categories) of the non-restaurant business ``b``."""
    attributes = {"ByAppointmentOnly": str(bool(flags[0]))}
    hours = {d: "9:0-18:0" for d in _WEEK[:5]}
    return attributes, hours, OTHER_CATEGORIES[b % len(OTHER_CATEGORIES)]


def write_businesses(f: TextIO, world: World, details: Details, names: list[str],
                     seed: int, first: int = 0) -> None:
    """A region's lines of ``BUSINESS_FILE`` (open as ``f``): stars and review counts from the
    reviews, an address in the city. ``first`` is the region's first business number over the
    whole file (it seeds each business's category order)."""
    biz, stars = world.businesses, world.stars
    nb = len(biz.ids)
    count = np.bincount(world.business, minlength=nb)
    b_stars = np.bincount(world.business, weights=stars, minlength=nb) / np.maximum(count, 1)
    b_stars = np.round(b_stars * 2) / 2
    street_no, offset = details.street_no, details.offset
    for b in range(nb):
        city = CITIES[biz.city[b]]
        if biz.cuisine[b] < len(CUISINES):
            attributes, hours, categories = _restaurant_fields(
                int(biz.price[b]), details.flags[b], CUISINES[biz.cuisine[b]].categories,
                random.Random(seed * 7919 + first + b))
        else:
            attributes, hours, categories = _other_fields(b, details.flags[b])
        f.write(_dumps({
            "business_id": biz.ids[b], "name": names[b],
            "address": f"{street_no[b]} {STREETS[street_no[b] % len(STREETS)]}",
            "city": city.name, "state": city.state,
            "postal_code": f"{city.zip_prefix}{street_no[b] % 100:02d}",
            "latitude": round(city.latitude + offset[b, 0], 6),
            "longitude": round(city.longitude + offset[b, 1], 6),
            "stars": float(b_stars[b]), "review_count": int(count[b]),
            "is_open": int(biz.rank[b] % 10 != 0), "attributes": attributes,
            "categories": categories, "hours": hours,
        }) + "\n")


def write_users(f: TextIO, world: World, details: Details) -> None:
    """A region's lines of ``USER_FILE`` (open as ``f``): review counts, average stars and vote
    totals from the reviews."""
    nu = len(world.users.ids)
    count = np.bincount(world.user, minlength=nu)
    avg = np.bincount(world.user, weights=world.stars, minlength=nu) / np.maximum(count, 1)
    votes = np.zeros((nu, 3), dtype=int)
    np.add.at(votes, world.user, details.votes)
    since = _fmt_ts(world.joined)
    f.writelines(_dumps({
        "user_id": world.users.ids[u], "name": FIRST_NAMES[details.first_name[u]],
        "review_count": int(count[u]), "yelping_since": since[u],
        "useful": int(votes[u, 0]), "funny": int(votes[u, 1]), "cool": int(votes[u, 2]),
        "elite": "", "friends": "None", "fans": int(details.fans[u]),
        "average_stars": round(float(avg[u]), 2),
        "compliment_hot": 0, "compliment_more": 0, "compliment_photos": 0,
    }) + "\n" for u in range(nu))


def write_photos(folder: Path, f: TextIO, world: World, plan: PhotoPlan, noise: np.ndarray,
                 names: list[str], seed: int, first: int = 0, small: bool = False,
                 bar: Callable[[int], object] | None = None) -> None:
    """A region's photos: lines of ``PHOTO_FILE`` (open as ``f``) and ``folder/<photo_id>.jpg``.
    ``first`` is the region's first photo number over the whole file (it seeds each drawing);
    ``small`` draws them at half size (``photo_bytes``);
    ``bar(n)`` is called after each photo when given (a progress bar's ``update``)."""
    biz = world.businesses
    lines = []
    for i in range(len(plan.business)):
        b = plan.business[i]
        cu = CUISINES[biz.cuisine[b]]
        label = PHOTO_LABELS[plan.label[i]]
        caption = photo_caption(cu, label, names[b], int(plan.caption_pick[i]))
        data = photo_bytes(cu, label, names[b], random.Random(seed * 1_000_003 + first + i),
                           noise[i % 4], small=small)
        (folder / f"{plan.ids[i]}.jpg").write_bytes(data)
        lines.append(_dumps({"photo_id": plan.ids[i], "business_id": biz.ids[b],
                             "caption": caption, "label": label}) + "\n")
        if bar is not None:
            bar(1)
    f.writelines(lines)


def write_readme(out: Path, seed: int, counts: dict[str, int], scale: int = 1) -> None:
    """``README.txt``: says the data is synthetic, how it was made, and the counts
    (``businesses``, ``others``, ``users``, ``reviews``, ``photos``)."""
    how = "`python -m core demo`" if scale == 1 else f"`python -m core demo --scale {scale}`"
    regions = "" if scale == 1 else (
        f"Scale {scale}: {scale} regions, each drawn like the scale-1 demo from its own seed\n"
        "(region 0 holds the scale-1 demo's records); users review businesses of their own\n"
        "region only; photos are drawn at half size.\n")
    (out / "README.txt").write_text(
        f"SYNTHETIC DEMO DATA in the Yelp Open Dataset layout, generated by {how}\n"
        f"(generator version {GENERATOR_VERSION}, seed {seed}). Not real Yelp data: businesses,\n"
        "users, reviews and photos are made up. Structure: 10 cuisines with price levels; users\n"
        "with latent cuisine tastes, a home city and price sensitivity; Zipf-like popularity;\n"
        "stars from taste match + quality + noise; review text naming cuisine and dishes;\n"
        "procedurally drawn photos (food, drink, menu, inside, outside).\n"
        f"{regions}"
        f"Counts: {counts['businesses']} businesses ({counts['others']} non-restaurants), "
        f"{counts['users']} users, {counts['reviews']} reviews,\n"
        f"{counts['photos']} photos.\n", encoding="utf-8")
