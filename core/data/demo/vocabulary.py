"""The demo's vocabulary, read once from ``vocabulary.toml`` beside this module.

Cuisines (dishes, drinks, name patterns, colours, prices), cities, street and first names, and the
review phrases, as typed, immutable Python values: tuples instead of TOML arrays, ``int`` keys
(stars, price level) instead of TOML's string keys.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

VOCABULARY_FILE = Path(__file__).with_name("vocabulary.toml")

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Cuisine:
    """One cuisine: its Yelp categories, vocabulary, look and typical price level."""

    name: str
    categories: tuple[str, ...]
    dishes: tuple[str, ...]
    drinks: tuple[str, ...]
    names: tuple[str, ...]  # name patterns, "{w}" filled from ``words``
    words: tuple[str, ...]
    motif: str
    table: tuple[RGB, RGB]  # background colours
    food: tuple[RGB, ...]  # food colours
    drink: RGB
    price: tuple[float, float, float, float]  # probability of price level 1..4
    share: float  # share of restaurants


@dataclass(frozen=True)
class City:
    """A city businesses and users live in; ``share`` of both."""

    name: str
    state: str
    latitude: float
    longitude: float
    zip_prefix: str
    share: float


@dataclass(frozen=True)
class Phrases:
    """Review sentences, keyed by stars (1-5); ``price`` by price level (1-4)."""

    open: Mapping[int, tuple[str, ...]]
    adjective: Mapping[int, tuple[str, ...]]
    service: Mapping[int, tuple[str, ...]]
    close: Mapping[int, tuple[str, ...]]
    cuisine_line: tuple[str, ...]
    verdict: Mapping[int, str]
    verdict2: Mapping[int, str]
    price: Mapping[int, tuple[str, ...]]
    other: Mapping[int, str]  # the whole review of a non-restaurant business


def _rgb(value: list[int]) -> RGB:
    r, g, b = value
    return (r, g, b)


def _cuisine(row: dict[str, Any]) -> Cuisine:
    return Cuisine(
        name=row["name"], categories=tuple(row["categories"]), dishes=tuple(row["dishes"]),
        drinks=tuple(row["drinks"]), names=tuple(row["names"]), words=tuple(row["words"]),
        motif=row["motif"], table=(_rgb(row["table"][0]), _rgb(row["table"][1])),
        food=tuple(_rgb(c) for c in row["food"]), drink=_rgb(row["drink"]),
        price=tuple(row["price"]), share=row["share"],
    )


def _by_stars(table: dict[str, Any]) -> Mapping[int, Any]:
    """TOML keys are strings: ``{"5": [...]}`` becomes ``{5: (...)}`` (read-only)."""
    return MappingProxyType({int(k): tuple(v) if isinstance(v, list) else v
                             for k, v in table.items()})


def _phrases(review: dict[str, Any]) -> Phrases:
    return Phrases(
        open=_by_stars(review["open"]), adjective=_by_stars(review["adjective"]),
        service=_by_stars(review["service"]), close=_by_stars(review["close"]),
        cuisine_line=tuple(review["cuisine_line"]), verdict=_by_stars(review["verdict"]),
        verdict2=_by_stars(review["verdict2"]), price=_by_stars(review["price"]),
        other=_by_stars(review["other"]),
    )


with VOCABULARY_FILE.open("rb") as _f:
    _DATA = tomllib.load(_f)

CUISINES: tuple[Cuisine, ...] = tuple(_cuisine(row) for row in _DATA["cuisine"])
CITIES: tuple[City, ...] = tuple(City(**row) for row in _DATA["city"])
OTHER_CATEGORIES: tuple[str, ...] = tuple(_DATA["other"]["categories"])
OTHER_NAMES: tuple[str, ...] = tuple(_DATA["other"]["names"])  # "{w}" = a first name
STREETS: tuple[str, ...] = tuple(_DATA["people"]["streets"])
FIRST_NAMES: tuple[str, ...] = tuple(_DATA["people"]["first_names"])
PHRASES = _phrases(_DATA["review"])
del _DATA
