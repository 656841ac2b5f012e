"""The demo's words: business names, review texts and photo captions, from the vocabulary.

A review names the restaurant's cuisine and one or two of its dishes, with sentiment words tied to
its stars: an opening, the first dish, two to five optional sentences (second dish, cuisine
verdict, service, price, drink) and a closing line.
"""

from __future__ import annotations

import numpy as np

from core.data.demo.vocabulary import (
    CITIES,
    CUISINES,
    FIRST_NAMES,
    OTHER_NAMES,
    PHRASES,
    Cuisine,
)
from core.data.demo.world import World


def business_names(rng: np.random.Generator, world: World) -> list[str]:
    """One name per business: a cuisine's pattern and word, or a shop pattern and a first name."""
    biz = world.businesses
    names = []
    for b in range(len(biz.ids)):
        if biz.cuisine[b] < len(CUISINES):
            cu = CUISINES[biz.cuisine[b]]
            pat = cu.names[rng.integers(len(cu.names))]
            names.append(pat.format(w=cu.words[rng.integers(len(cu.words))]))
        else:
            pat = OTHER_NAMES[b % len(OTHER_NAMES)]
            names.append(pat.format(w=FIRST_NAMES[rng.integers(len(FIRST_NAMES))]))
    return names


def review_texts(rng: np.random.Generator, world: World) -> list[str]:
    """The text of every review, in ``world``'s review order."""
    biz = world.businesses
    nr = len(world.user)
    pick = rng.integers(0, 1 << 30, size=(nr, 10))
    n_sent = rng.integers(2, 6, nr)
    texts = []
    for i in range(nr):
        b, stars = world.business[i], int(world.stars[i])
        if biz.cuisine[b] >= len(CUISINES):
            texts.append(PHRASES.other[stars])
            continue
        texts.append(_restaurant_review(CUISINES[biz.cuisine[b]], stars, int(biz.price[b]),
                                        CITIES[biz.city[b]].name, pick[i], int(n_sent[i])))
    return texts


def _restaurant_review(cu: Cuisine, stars: int, price: int, city: str, p: np.ndarray,
                       n_sent: int) -> str:
    """One review from ten random picks ``p``: the opening, the first dish, ``n_sent`` draws of
    the optional sentences (repeats dropped, kept in their fixed order) and the closing."""
    d1 = cu.dishes[p[0] % 10]
    d2 = cu.dishes[(p[0] + 1 + p[1] % 9) % 10]
    adjective = PHRASES.adjective[stars]
    parts = [PHRASES.open[stars][p[2] % 6].format(city=city),
             f"The {d1} was {adjective[p[3] % 6]}."]
    optional = [
        f"We also tried the {d2}, which was {adjective[p[4] % 6]}.",
        PHRASES.cuisine_line[p[5] % 4].format(cuisine=cu.name, verdict=PHRASES.verdict[stars],
                                              verdict2=PHRASES.verdict2[stars]),
        PHRASES.service[stars][p[6] % 3],
        PHRASES.price[price][p[7] % 2],
        f"Had the {cu.drinks[p[8] % 4]} too.",
    ]
    chosen = sorted((p[9] + j * 7) % 5 for j in range(n_sent))
    parts += [optional[j] for j in dict.fromkeys(chosen)]
    parts.append(PHRASES.close[stars][p[1] % 3])
    return " ".join(parts)


def photo_caption(cu: Cuisine, label: str, name: str, pick: int) -> str:
    """A photo's caption: empty for a quarter (as many real ones are), else by label."""
    if pick % 4 == 0:
        return ""
    if label == "food":
        return cu.dishes[pick % 10].capitalize()
    if label == "drink":
        return cu.drinks[pick % 4].capitalize()
    if label == "menu":
        return "Menu"
    if label == "inside":
        return f"Inside {name}"
    return f"{name} storefront"
