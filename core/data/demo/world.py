"""The demo's world model: restaurants, users with latent tastes, who reviews what, and the stars.

Every function draws from the one seeded ``np.random.Generator`` it is given. The order of the
draws *is* the output: moving, adding or removing a draw changes every file after it, so the
functions here are called in a fixed order (``core.data.demo.generate``) and keep their draws in
the order they had when the files were pinned (``tests/data/test_demo.py``).

Indices: business ``b`` in ``0..n-1``; cuisine ``c`` indexes ``CUISINES``, and ``len(CUISINES)``
marks a non-restaurant business (hair salon, shop, ...); price level 1-4, 0 for non-restaurants.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.data.demo.vocabulary import CITIES, CUISINES, FIRST_NAMES

PHOTO_LABELS = ("food", "drink", "menu", "inside", "outside")
_LABEL_P = np.array([0.55, 0.12, 0.06, 0.15, 0.12])
_ID_ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))
_DAY = 86400


@dataclass(frozen=True)
class Businesses:
    """Restaurants first, then a few non-restaurants; one array entry per business."""

    ids: list[str]
    cuisine: np.ndarray  # index into CUISINES; len(CUISINES) = not a restaurant
    city: np.ndarray  # index into CITIES
    price: np.ndarray  # 1..4, 0 = not a restaurant
    rank: np.ndarray  # popularity rank, 1 = most popular
    pop: np.ndarray  # Zipf-like popularity, floored
    quality: np.ndarray
    n_other: int  # how many non-restaurants close the list


@dataclass(frozen=True)
class Users:
    """Latent tastes and habits, one entry (or row) per user."""

    ids: list[str]
    taste: np.ndarray  # (n_users, n_cuisines), rows sum to 1, mass on 1-3 cuisines
    city: np.ndarray  # home city, index into CITIES
    price: np.ndarray  # preferred price level
    sensitivity: np.ndarray  # how much a price gap puts the user off
    n_reviews: np.ndarray  # how many restaurants the user reviews


@dataclass(frozen=True)
class World:
    """Businesses, users and the reviews linking them: ``user[i]`` gave ``business[i]`` ``stars[i]``
    at ``time[i]`` (Unix seconds); ``joined`` is when each user joined (Unix seconds)."""

    businesses: Businesses
    users: Users
    user: np.ndarray
    business: np.ndarray
    stars: np.ndarray
    time: np.ndarray
    joined: np.ndarray


@dataclass(frozen=True)
class Details:
    """Record fields with no effect on the structure, drawn after the review text."""

    review_ids: list[str]
    votes: np.ndarray  # (n_reviews, 3): useful, funny, cool
    offset: np.ndarray  # (n_businesses, 2): latitude, longitude from the city centre
    street_no: np.ndarray
    flags: np.ndarray  # (n_businesses, 6) booleans behind the business attributes
    fans: np.ndarray
    first_name: np.ndarray  # index into FIRST_NAMES


@dataclass(frozen=True)
class PhotoPlan:
    """Which business each photo shows, its label (index into PHOTO_LABELS), id and caption pick."""

    business: np.ndarray
    label: np.ndarray
    ids: list[str]
    caption_pick: np.ndarray


def draw_ids(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` unique 22-character ids over Yelp's alphabet (base64url)."""
    while True:
        codes = rng.integers(0, 64, size=(n, 22))
        ids = ["".join(row) for row in _ID_ALPHABET[codes]]
        if len(set(ids)) == n:
            return ids


def _cuisine_shares() -> np.ndarray:
    return np.array([c.share for c in CUISINES])


def _city_shares() -> np.ndarray:
    return np.array([c.share for c in CITIES])


def draw_businesses(rng: np.random.Generator, n_restaurants: int) -> Businesses:
    """Restaurants (cuisine by share, city, price level, popularity, quality) + non-restaurants."""
    nc = len(CUISINES)
    n_other = max(3, n_restaurants // 25)
    nb = n_restaurants + n_other
    shares = _cuisine_shares()
    cuisine = np.concatenate([
        rng.choice(nc, size=n_restaurants, p=shares / shares.sum()),
        np.full(n_other, nc),
    ])
    city = rng.choice(len(CITIES), size=nb, p=_city_shares())
    price = np.array([rng.choice(4, p=CUISINES[c].price) + 1 if c < nc else 0 for c in cuisine])
    # Zipf-like popularity over a random order, with a floor so every business gets reviews
    rank = rng.permutation(nb) + 1
    pop = np.maximum(rank.astype(float) ** -1.0, 0.003)
    log_pop = np.log(pop)
    quality = 0.35 * (log_pop - log_pop.mean()) / log_pop.std() + rng.normal(0, 0.45, nb)
    return Businesses(ids=draw_ids(rng, nb), cuisine=cuisine, city=city, price=price, rank=rank,
                      pop=pop, quality=quality, n_other=n_other)


def draw_users(rng: np.random.Generator, n_users: int, n_businesses: int) -> Users:
    """Users: a taste over 1-3 cuisines (likelier for common cuisines), a home city, a preferred
    price level, a price sensitivity and a heavy-tailed number of reviews (some exactly one)."""
    nu, nc = n_users, len(CUISINES)
    ids = draw_ids(rng, nu)
    k_liked = rng.choice([1, 2, 3], size=nu, p=[0.35, 0.45, 0.20])
    taste = np.zeros((nu, nc))
    gumbel = rng.gumbel(size=(nu, nc)) + np.log(_cuisine_shares())
    order = np.argsort(-gumbel, axis=1)
    weights = rng.dirichlet(np.full(3, 1.5), size=nu)
    for j in range(3):
        mask = k_liked > j
        taste[np.nonzero(mask)[0], order[mask, j]] = weights[mask, j]
    taste /= taste.sum(axis=1, keepdims=True)
    city = rng.choice(len(CITIES), size=nu, p=_city_shares())
    price = np.clip(np.round(rng.normal(2.1, 0.7, nu)), 1, 4)
    sensitivity = rng.uniform(0.0, 1.2, nu)
    n_rev = np.clip(np.round(np.exp(rng.normal(np.log(8.5), 0.95, nu))), 2, 150).astype(int)
    one = rng.random(nu) < 0.06
    n_rev[one] = 1
    n_rev = np.minimum(n_rev, n_businesses - 1)
    return Users(ids=ids, taste=taste, city=city, price=price, sensitivity=sensitivity,
                 n_reviews=n_rev)


def price_fit(users: Users, biz: Businesses) -> np.ndarray:
    """(n_users, n_businesses): 1 at the user's price level, falling with the gap."""
    price_gap = np.abs(biz.price[None, :] - users.price[:, None]) * (biz.price[None, :] > 0)
    return np.exp(-users.sensitivity[:, None] * price_gap)


def _affinity(users: Users, biz: Businesses, fit: np.ndarray) -> np.ndarray:
    """(n_users, n_businesses) log-affinity: taste x popularity x price fit x locality."""
    nc = len(CUISINES)
    taste_full = 0.03 / nc + 0.97 * users.taste  # a little mass on every cuisine
    nu = len(users.ids)
    tb = np.concatenate([taste_full, np.full((nu, 1), 0.004)], axis=1)[:, biz.cuisine]
    local = np.where(biz.city[None, :] == users.city[:, None], 1.0, 0.15)
    return np.log(tb) + np.log(biz.pop)[None, :] + np.log(fit) + np.log(local)


def choose_reviews(rng: np.random.Generator, users: Users, biz: Businesses,
                   fit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(user, business) of every review: each user's ``n_reviews`` businesses by Gumbel top-k
    without replacement over the affinity, then a top-up so every business has two reviews."""
    logit = _affinity(users, biz, fit)
    keys = logit + rng.gumbel(size=logit.shape)
    top = np.argsort(-keys, axis=1)
    rows = np.repeat(np.arange(len(users.ids)), users.n_reviews)
    cols = top[rows, np.concatenate([np.arange(k) for k in users.n_reviews])]
    return _top_up(rng, users, biz, rows, cols)


def _top_up(rng: np.random.Generator, users: Users, biz: Businesses, rows: np.ndarray,
            cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every business gets at least two reviews, from users of its city (not already reviewing
    it, and with more than one review, so one-review users stay exactly that)."""
    counts = np.bincount(cols, minlength=len(biz.ids))
    extra_r, extra_c = [], []
    for b in np.nonzero(counts < 2)[0]:
        have = set(rows[cols == b].tolist())
        pool = np.nonzero(users.city == biz.city[b])[0]
        pool = pool[~np.isin(pool, list(have)) & (users.n_reviews[pool] > 1)]
        pick = rng.choice(pool, size=2 - counts[b], replace=False)
        extra_r += pick.tolist()
        extra_c += [b] * len(pick)
    rows = np.concatenate([rows, np.array(extra_r, dtype=int)])
    cols = np.concatenate([cols, np.array(extra_c, dtype=int)])
    return rows, cols


def draw_stars(rng: np.random.Generator, users: Users, biz: Businesses, rows: np.ndarray,
               cols: np.ndarray, fit: np.ndarray) -> np.ndarray:
    """Stars 1-5 from taste match + quality + price fit + noise, cut at Yelp-like quantiles."""
    nc = len(CUISINES)
    is_rest = biz.cuisine[cols] < nc
    cu_idx = np.minimum(biz.cuisine[cols], nc - 1)
    taste = users.taste
    match = np.where(is_rest, taste[rows, cu_idx] / taste[rows].max(axis=1), 0.5)
    z = (1.6 * match + 0.9 * biz.quality[cols] + 0.5 * fit[rows, cols]
         + rng.normal(0, 0.85, len(rows)))
    cuts = np.quantile(z, [0.11, 0.19, 0.30, 0.54])
    return (1 + np.searchsorted(cuts, z)).astype(int)


def draw_dates(rng: np.random.Generator, n_users: int,
               rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(when each user joined, when each review was written), Unix seconds: users join 2010-2021
    and review during an active span within 2015-2022, at a time of day between 8:00 and 23:00."""
    t_lo = int(np.datetime64("2015-01-01", "s").astype(int))
    t_hi = int(np.datetime64("2022-12-31", "s").astype(int))
    joined = rng.integers(int(np.datetime64("2010-06-01", "s").astype(int)),
                          int(np.datetime64("2021-06-01", "s").astype(int)), n_users)
    start = np.maximum(joined, t_lo)
    span = (t_hi - start) * rng.uniform(0.3, 1.0, n_users)  # each user is active for a while
    ts = (start[rows] + rng.random(len(rows)) * span[rows]).astype(np.int64)
    ts = ts // _DAY * _DAY + rng.integers(8 * 3600, 23 * 3600, len(rows))
    return joined, ts


def build_world(rng: np.random.Generator, n_restaurants: int, n_users: int) -> World:
    """Draw the businesses, the users, who reviews what, the stars and the dates, in that order."""
    biz = draw_businesses(rng, n_restaurants)
    users = draw_users(rng, n_users, len(biz.ids))
    fit = price_fit(users, biz)
    rows, cols = choose_reviews(rng, users, biz, fit)
    stars = draw_stars(rng, users, biz, rows, cols, fit)
    joined, ts = draw_dates(rng, n_users, rows)
    return World(businesses=biz, users=users, user=rows, business=cols, stars=stars, time=ts,
                 joined=joined)


def draw_details(rng: np.random.Generator, world: World) -> Details:
    """Review ids and votes, business addresses and attribute flags, user fans and first names."""
    nr, nb, nu = len(world.user), len(world.businesses.ids), len(world.users.ids)
    review_ids = draw_ids(rng, nr)
    votes = rng.poisson(0.6, size=(nr, 3)) * (rng.random((nr, 1)) < 0.5)
    offset = rng.normal(0, 0.04, size=(nb, 2))
    street_no = rng.integers(100, 9999, nb)
    flags = rng.random((nb, 6)) < np.array([0.85, 0.6, 0.5, 0.45, 0.3, 0.7])
    fans = rng.poisson(np.bincount(world.user, minlength=nu) / 8)
    first_name = rng.integers(0, len(FIRST_NAMES), nu)
    return Details(review_ids=review_ids, votes=votes, offset=offset, street_no=street_no,
                   flags=flags, fans=fans, first_name=first_name)


def plan_photos(rng: np.random.Generator, biz: Businesses, n_photos: int) -> PhotoPlan:
    """``n_photos`` photos over restaurants: about 12% (mostly unpopular ones) have none, the
    others one each plus the rest spread by popularity; labels as in the real photo archive."""
    restaurants = np.nonzero(biz.cuisine < len(CUISINES))[0]
    no_photo_p = 1.0 / (1.0 + biz.pop[restaurants] * 40)
    no_photo = rng.random(len(restaurants)) < no_photo_p * 0.22
    with_photo = restaurants[~no_photo]
    if n_photos < len(with_photo):
        with_photo = np.sort(rng.choice(with_photo, size=n_photos, replace=False))
    per = np.ones(len(with_photo), dtype=int) if n_photos else np.zeros(len(with_photo), int)
    rest = n_photos - per.sum()
    if rest > 0:
        w = biz.pop[with_photo] ** 0.6
        per += rng.multinomial(rest, w / w.sum())
    business = np.repeat(with_photo, per)
    label = rng.choice(len(PHOTO_LABELS), size=len(business), p=_LABEL_P)
    ids = draw_ids(rng, len(business))
    caption_pick = rng.integers(0, 1 << 30, size=len(business))
    return PhotoPlan(business=business, label=label, ids=ids, caption_pick=caption_pick)
