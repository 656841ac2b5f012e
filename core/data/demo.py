"""A synthetic restaurant dataset in the exact Yelp Open Dataset layout, generated offline.

The demo is small (about 300 restaurants, 2,000 users, 25k reviews, 1,500 photos) but carries real
structure, so techniques differ for honest reasons:

* ten cuisines, each with its dishes, drinks, colour palette and drawing motif, and price levels;
* every user has latent tastes (a preference over 1-3 cuisines, a home city, a preferred price
  level and a price sensitivity) and restaurants have a Zipf-like popularity and a quality;
* which restaurants a user reviews follows taste x popularity x locality x price fit, so
  collaborative filtering beats most-popular, which beats random;
* stars follow taste match + restaurant quality + price fit + noise; review text names the
  cuisine and its dishes with sentiment words tied to the stars;
* photos are drawn with PIL so their look reflects the cuisine (food and drinks), plus menus,
  interiors and storefronts as in the real photo archive;
* reviews span 2015-2022; some restaurants have no photo and some users exactly one review.

Everything is drawn from one seeded generator, so a seed gives byte-identical files.
``ensure_demo`` generates the data once into a cache directory (atomically, safe under concurrency).
"""

from __future__ import annotations

import io
import json
import math
import os
import random
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from core.errors import DatasetError

#: Bumped whenever the generated files change; ``ensure_demo`` regenerates on a mismatch.
GENERATOR_VERSION = "1"
MARKER = ".demo-complete"
BUSINESS_FILE = "yelp_academic_dataset_business.json"
REVIEW_FILE = "yelp_academic_dataset_review.json"
USER_FILE = "yelp_academic_dataset_user.json"
PHOTO_FILE = "photos.json"
PHOTO_DIR = "photos"
PHOTO_SIZE = 224
PHOTO_LABELS = ("food", "drink", "menu", "inside", "outside")
_LABEL_P = np.array([0.55, 0.12, 0.06, 0.15, 0.12])
_ID_ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))


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
    table: tuple[tuple[int, int, int], tuple[int, int, int]]  # background colours
    food: tuple[tuple[int, int, int], ...]  # food colours
    drink: tuple[int, int, int]
    price: tuple[float, float, float, float]  # probability of price level 1..4
    share: float  # share of restaurants


CUISINES: tuple[Cuisine, ...] = (
    Cuisine("Italian", ("Italian", "Pizza"),
            ("margherita pizza", "spaghetti carbonara", "lasagna", "risotto", "tiramisu",
             "gnocchi", "fettuccine alfredo", "bruschetta", "osso buco", "cannoli"),
            ("chianti", "espresso", "limoncello", "negroni"),
            ("Trattoria {w}", "{w}'s Pizzeria", "Osteria {w}", "Bella {w}", "{w} Pasta Bar"),
            ("Roma", "Luigi", "Napoli", "Toscana", "Giovanni", "Vesuvio", "Sorrento", "Milano"),
            "pizza", ((180, 30, 35), (245, 240, 235)),
            ((222, 184, 135), (200, 45, 30), (250, 215, 110), (40, 140, 50)), (115, 15, 35),
            (0.15, 0.5, 0.28, 0.07), 0.13),
    Cuisine("Mexican", ("Mexican", "Tacos"),
            ("carne asada tacos", "al pastor tacos", "enchiladas", "guacamole", "burrito",
             "chile relleno", "carnitas", "churros", "quesadilla", "mole poblano"),
            ("horchata", "margarita", "agua fresca", "michelada"),
            ("Taqueria {w}", "El {w}", "La Casa de {w}", "{w} Cantina", "Tacos {w}"),
            ("Jalisco", "Oaxaca", "Sol", "Guadalupe", "Azteca", "Paloma", "Morelia", "Puebla"),
            "tacos", ((30, 160, 170), (240, 130, 40)),
            ((240, 200, 90), (120, 70, 40), (60, 160, 60), (220, 50, 40)), (240, 235, 215),
            (0.45, 0.42, 0.1, 0.03), 0.12),
    Cuisine("Japanese", ("Japanese", "Sushi Bars"),
            ("salmon nigiri", "tonkotsu ramen", "spicy tuna roll", "tempura", "sashimi",
             "miso soup", "gyoza", "unagi don", "udon", "edamame"),
            ("sake", "green tea", "japanese whisky", "ramune"),
            ("Sushi {w}", "{w} Ramen", "Izakaya {w}", "{w} Japanese Kitchen", "Kura {w}"),
            ("Sakura", "Kaito", "Hana", "Fuji", "Koi", "Umi", "Matsu", "Kyoto"),
            "sushi", ((35, 30, 30), (90, 60, 40)),
            ((250, 250, 245), (250, 120, 70), (200, 30, 50), (60, 120, 60)), (150, 170, 70),
            (0.1, 0.45, 0.35, 0.1), 0.10),
    Cuisine("Chinese", ("Chinese", "Dim Sum"),
            ("pork dumplings", "kung pao chicken", "mapo tofu", "peking duck", "fried rice",
             "chow mein", "xiaolongbao", "char siu", "hot and sour soup", "egg rolls"),
            ("jasmine tea", "oolong tea", "bubble tea", "tsingtao"),
            ("Golden {w}", "{w} Garden", "Lucky {w}", "{w} Dragon", "Jade {w} Kitchen"),
            ("Panda", "Lotus", "Bamboo", "Phoenix", "Szechuan", "Canton", "Peking", "Jade"),
            "dumplings", ((170, 20, 25), (60, 20, 15)),
            ((245, 240, 225), (205, 160, 90), (235, 200, 70), (90, 160, 60)), (175, 115, 45),
            (0.4, 0.45, 0.12, 0.03), 0.11),
    Cuisine("Indian", ("Indian", "Pakistani"),
            ("chicken tikka masala", "butter chicken", "palak paneer", "garlic naan", "biryani",
             "samosas", "lamb vindaloo", "chana masala", "tandoori chicken", "dal makhani"),
            ("mango lassi", "masala chai", "kingfisher", "rose sherbet"),
            ("Taj {w}", "{w} Palace", "Curry {w}", "{w} Tandoor", "House of {w}"),
            ("Mahal", "Bombay", "Delhi", "Punjab", "Saffron", "Masala", "Jaipur", "Kerala"),
            "curry", ((190, 140, 50), (110, 50, 30)),
            ((235, 120, 30), (245, 190, 50), (70, 120, 40), (225, 190, 140)), (250, 190, 60),
            (0.25, 0.55, 0.17, 0.03), 0.08),
    Cuisine("Thai", ("Thai",),
            ("pad thai", "green curry", "tom yum soup", "massaman curry", "papaya salad",
             "drunken noodles", "mango sticky rice", "larb", "pad see ew", "satay"),
            ("thai iced tea", "coconut water", "singha", "lemongrass soda"),
            ("Thai {w}", "{w} Thai Kitchen", "Bangkok {w}", "Siam {w}", "Baan {w}"),
            ("Orchid", "Basil", "Lemongrass", "Elephant", "Chiang Mai", "Lanna", "Sukho", "Mali"),
            "greencurry", ((40, 110, 45), (200, 175, 110)),
            ((150, 200, 80), (235, 140, 50), (250, 240, 220), (200, 40, 40)), (230, 130, 50),
            (0.3, 0.55, 0.13, 0.02), 0.08),
    Cuisine("American", ("American (Traditional)", "Burgers"),
            ("cheeseburger", "french fries", "buffalo wings", "mac and cheese", "bbq ribs",
             "milkshake", "chicken tenders", "onion rings", "club sandwich", "apple pie"),
            ("craft beer", "cola", "root beer float", "bourbon"),
            ("{w}'s Burgers", "The {w} Grill", "{w} Diner", "Big {w} Burger Joint",
             "{w} Tavern"),
            ("Joe", "Liberty", "Main Street", "Route 66", "Hank", "Eagle", "Frontier", "Buddy"),
            "burger", ((150, 100, 55), (200, 40, 40)),
            ((190, 120, 50), (90, 50, 25), (250, 200, 40), (80, 170, 60)), (220, 160, 40),
            (0.35, 0.5, 0.13, 0.02), 0.16),
    Cuisine("French", ("French", "Bakeries"),
            ("duck confit", "coq au vin", "croissant", "beef bourguignon", "creme brulee",
             "french onion soup", "escargots", "ratatouille", "steak frites", "macarons"),
            ("bordeaux", "champagne", "cafe au lait", "kir royale"),
            ("Chez {w}", "Le {w}", "Bistro {w}", "La Petite {w}", "Brasserie {w}"),
            ("Margaux", "Lyon", "Provence", "Michel", "Belle", "Montmartre", "Rivage", "Amelie"),
            "plated", ((240, 238, 232), (205, 200, 195)),
            ((120, 60, 40), (230, 190, 100), (160, 40, 50), (90, 140, 70)), (240, 225, 150),
            (0.03, 0.27, 0.45, 0.25), 0.06),
    Cuisine("Mediterranean", ("Mediterranean", "Greek"),
            ("chicken gyro", "falafel", "hummus", "greek salad", "moussaka", "spanakopita",
             "lamb souvlaki", "baba ganoush", "tabbouleh", "baklava"),
            ("ouzo", "mint lemonade", "greek coffee", "retsina"),
            ("{w} Taverna", "Olive {w}", "The {w} Grill", "Aegean {w}", "Mykonos {w}"),
            ("Santorini", "Athena", "Cyprus", "Olympia", "Crete", "Zeus", "Delphi", "Ionian"),
            "salad", ((30, 90, 170), (245, 245, 250)),
            ((220, 50, 40), (110, 170, 70), (250, 250, 245), (40, 35, 35)), (235, 240, 200),
            (0.3, 0.55, 0.13, 0.02), 0.08),
    Cuisine("Korean", ("Korean", "Barbeque"),
            ("bulgogi", "bibimbap", "kimchi jjigae", "korean fried chicken", "galbi",
             "japchae", "tteokbokki", "pork belly", "haemul pajeon", "sundubu"),
            ("soju", "makgeolli", "barley tea", "yuzu tea"),
            ("{w} Korean BBQ", "Seoul {w}", "{w} House", "Gangnam {w}", "Bibim {w}"),
            ("Hanok", "Busan", "Arirang", "Kimchi", "Maru", "Jeju", "Hangang", "Gogi"),
            "bbq", ((50, 45, 45), (120, 110, 100)),
            ((150, 60, 40), (220, 50, 40), (90, 160, 60), (240, 200, 80)), (80, 160, 90),
            (0.15, 0.55, 0.25, 0.05), 0.08),
)

_OTHER_CATEGORIES = (
    "Beauty & Spas, Hair Salons", "Shopping, Books, Mags, Music & Video",
    "Automotive, Auto Repair", "Home Services, Plumbing",
    "Active Life, Gyms, Fitness & Instruction",
    "Shopping, Flowers & Gifts, Florists",
)
_OTHER_NAMES = ("Studio {w}", "{w} Books", "{w} Auto Care", "{w} Plumbing", "{w} Fitness",
                "{w} Flowers")
_CITIES = (  # name, state, lat, lon, zip prefix, share of businesses and users
    ("Philadelphia", "PA", 39.9526, -75.1652, "191", 0.34),
    ("Tampa", "FL", 27.9506, -82.4572, "336", 0.24),
    ("Nashville", "TN", 36.1627, -86.7816, "372", 0.23),
    ("Tucson", "AZ", 32.2226, -110.9747, "857", 0.19),
)
_STREETS = ("Main St", "Market St", "Oak Ave", "Broadway", "Walnut St", "Elm St", "Church St",
            "Maple Ave", "2nd Ave", "Park Blvd", "Chestnut St", "Washington Ave", "Lake Dr")
_FIRST = ("Emma", "Liam", "Olivia", "Noah", "Ava", "Mason", "Sophia", "Lucas", "Mia", "Ethan",
          "Isabella", "James", "Amelia", "Benjamin", "Harper", "Elijah", "Evelyn", "Logan",
          "Abigail", "Jacob", "Emily", "Daniel", "Ella", "Henry", "Chloe", "Jack", "Grace", "Leo",
          "Zoe", "Owen", "Nora", "Samuel", "Lily", "David", "Hannah", "Carlos", "Priya", "Wei",
          "Yuki", "Fatima", "Omar", "Ana", "Jin", "Sara", "Mateo", "Aisha", "Ravi", "Mei")

_OPEN = {
    5: ("Absolutely loved this place!", "Hands down one of my favorite spots in {city}.",
        "Wow, what a meal.", "This place never disappoints.", "Five stars, no question.",
        "An incredible experience from start to finish."),
    4: ("Really enjoyed our dinner here.", "Solid spot, would come back.",
        "Very good meal overall.", "Glad we finally tried this place.",
        "A great find in {city}.", "Pretty great, with a couple of small misses."),
    3: ("It was okay.", "Decent, but nothing special.", "A mixed experience.",
        "Average at best.", "Not bad, not great.", "Some hits and some misses here."),
    2: ("Pretty disappointing.", "I expected a lot more.", "Not worth the hype.",
        "Below average, sadly.", "Meh.", "I wanted to like this place more."),
    1: ("Terrible experience.", "Avoid this place.", "One of the worst meals I've had.",
        "Never again.", "Truly awful.", "I can't recommend this place to anyone."),
}
_ADJ = {
    5: ("perfectly cooked", "absolutely delicious", "incredible", "fresh and flavorful",
        "out of this world", "amazing"),
    4: ("really tasty", "well seasoned", "very good", "fresh", "satisfying", "flavorful"),
    3: ("fine", "okay", "a bit bland", "average", "decent but forgettable", "just alright"),
    2: ("bland", "lukewarm", "overcooked", "too salty", "underwhelming", "greasy"),
    1: ("cold", "inedible", "burnt", "disgusting", "stale", "awful"),
}
_SERVICE = {
    5: ("Our server was attentive and friendly.", "The staff made us feel at home.",
        "Service was fast and warm."),
    4: ("Service was friendly.", "The staff was helpful.", "Service was quick."),
    3: ("Service was a little slow.", "The staff seemed busy.", "Service was fine."),
    2: ("Our server forgot part of our order.", "We waited a long time for our food.",
        "The staff seemed uninterested."),
    1: ("The server was rude.", "We waited almost an hour and nobody checked on us.",
        "The manager did not care at all."),
}
_CLOSE = {
    5: ("Will definitely be back!", "Highly recommend.", "Can't wait to return."),
    4: ("We'll be back.", "Recommended.", "Worth a visit."),
    3: ("Maybe I'll give it another try.", "It's fine if you're nearby.",
        "Probably won't rush back."),
    2: ("Probably won't return.", "There are better options nearby.", "Skip it."),
    1: ("Save your money.", "Stay away.", "Zero stars if I could."),
}
_CUISINE_LINE = (
    "If you're craving {cuisine} food, {verdict}.", "As far as {cuisine} places go, {verdict}.",
    "I've eaten a lot of {cuisine} food and {verdict}.", "Authentic {cuisine} flavors? {verdict2}",
)
_VERDICT = {5: "this is the place", 4: "this is a good choice", 3: "it's passable",
            2: "look elsewhere", 1: "run the other way"}
_VERDICT2 = {5: "Absolutely.", 4: "Mostly, yes.", 3: "Sort of.", 2: "Not really.",
             1: "Not at all."}
_PRICE_LINE = {1: ("Cheap and cheerful.", "Great value for the money."),
               2: ("Prices are reasonable.", "Fair prices for the portions."),
               3: ("A little pricey.", "On the expensive side."),
               4: ("Very expensive, so save it for a special occasion.",
                   "Expect a big bill.")}
_OTHER_TEXT = {5: "Great service, very professional. Highly recommend.",
               4: "Good experience overall, friendly staff.",
               3: "It was fine, nothing special.",
               2: "Slow and a bit overpriced.",
               1: "Terrible service, would not go back."}


def _ids(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` unique 22-character ids over Yelp's alphabet (base64url)."""
    while True:
        codes = rng.integers(0, 64, size=(n, 22))
        ids = ["".join(row) for row in _ID_ALPHABET[codes]]
        if len(set(ids)) == n:
            return ids


def _fmt_ts(seconds: np.ndarray) -> list[str]:
    text = np.datetime_as_string(seconds.astype("datetime64[s]"), unit="s").tolist()
    return [s.replace("T", " ") for s in text]


def _dumps(obj: dict) -> str:
    return json.dumps(obj, separators=(",", ":"))


# --- photos ---------------------------------------------------------------------------------------
_FONT_CACHE: dict[int, ImageFont.ImageFont] = {}


def _font(size: int) -> ImageFont.ImageFont:
    if size not in _FONT_CACHE:
        try:
            _FONT_CACHE[size] = ImageFont.load_default(size=size)
        except Exception:  # Pillow without FreeType: the fixed bitmap font
            _FONT_CACHE[size] = ImageFont.load_default()
    return _FONT_CACHE[size]


def _jitter(c: tuple[int, int, int], r: random.Random, amount: int = 18) -> tuple[int, int, int]:
    return tuple(max(0, min(255, v + r.randint(-amount, amount))) for v in c)  # type: ignore


def _background(d: ImageDraw.ImageDraw, cu: Cuisine, r: random.Random) -> None:
    a, b = _jitter(cu.table[0], r), _jitter(cu.table[1], r)
    s = PHOTO_SIZE
    if cu.motif == "pizza":  # checkered tablecloth
        d.rectangle([0, 0, s, s], fill=b)
        step = r.choice((28, 32, 37))
        for i in range(0, s, step):
            for j in range(0, s, step):
                if (i // step + j // step) % 2 == 0:
                    d.rectangle([i, j, i + step, j + step], fill=a)
    elif cu.motif in ("sushi", "burger", "curry"):  # wood grain
        d.rectangle([0, 0, s, s], fill=a)
        for y in range(0, s, r.choice((9, 12, 15))):
            d.line([0, y + r.randint(-3, 3), s, y + r.randint(-3, 3)], fill=b, width=2)
    elif cu.motif == "tacos":  # tiles
        d.rectangle([0, 0, s, s], fill=a)
        for i in range(0, s, 56):
            for j in range(0, s, 56):
                d.regular_polygon((i + 28, j + 28, 20), 4, rotation=45, fill=b)
    elif cu.motif == "salad":  # blue and white stripes
        d.rectangle([0, 0, s, s], fill=b)
        for x in range(0, s, 40):
            d.rectangle([x, 0, x + 18, s], fill=a)
    else:
        d.rectangle([0, 0, s, s], fill=a)
        d.ellipse([-40, -40, s // 2, s // 2], fill=b)


def _plate(d: ImageDraw.ImageDraw, cx: float, cy: float, rad: float, r: random.Random,
           color: tuple[int, int, int] = (245, 245, 242)) -> None:
    d.ellipse([cx - rad, cy - rad, cx + rad, cy + rad], fill=_jitter(color, r, 6),
              outline=(200, 200, 200), width=2)
    d.ellipse([cx - rad * 0.78, cy - rad * 0.78, cx + rad * 0.78, cy + rad * 0.78],
              outline=(225, 225, 222), width=1)


def _dots(d: ImageDraw.ImageDraw, cx: float, cy: float, rad: float, n: int,
          colors: tuple[tuple[int, int, int], ...], size: float, r: random.Random) -> None:
    for _ in range(n):
        a, rr = r.uniform(0, 2 * math.pi), rad * math.sqrt(r.random())
        x, y = cx + rr * math.cos(a), cy + rr * math.sin(a)
        sz = size * r.uniform(0.6, 1.3)
        d.ellipse([x - sz, y - sz, x + sz, y + sz], fill=_jitter(r.choice(colors), r, 12))


def _draw_food(d: ImageDraw.ImageDraw, cu: Cuisine, r: random.Random) -> None:
    s = PHOTO_SIZE
    cx, cy = s / 2 + r.uniform(-20, 20), s / 2 + r.uniform(-20, 20)
    f = cu.food
    m = cu.motif
    if m == "pizza":
        rad = r.uniform(80, 100)
        d.ellipse([cx - rad, cy - rad, cx + rad, cy + rad], fill=_jitter(f[0], r))
        d.ellipse([cx - rad * .86, cy - rad * .86, cx + rad * .86, cy + rad * .86],
                  fill=_jitter(f[1], r))
        _dots(d, cx, cy, rad * .75, 14, (f[2],), rad * .12, r)
        _dots(d, cx, cy, rad * .75, 8, (f[3], (150, 20, 20)), rad * .07, r)
        for k in range(r.choice((0, 3, 4))):
            a = k * math.pi * 2 / 4 + r.uniform(0, .3)
            d.line([cx, cy, cx + rad * math.cos(a), cy + rad * math.sin(a)], fill=f[0], width=2)
    elif m == "tacos":
        for k in range(r.choice((2, 3))):
            x = 40 + k * 65 + r.uniform(-8, 8)
            y = cy + r.uniform(-15, 15)
            d.chord([x - 38, y - 45, x + 38, y + 45], 180, 360, fill=_jitter(f[0], r))
            _dots(d, x, y - 18, 22, 10, (f[1], f[2], f[3], (250, 250, 240)), 5, r)
            d.arc([x - 38, y - 45, x + 38, y + 45], 180, 360, fill=(200, 150, 60), width=3)
    elif m == "sushi":
        d.rounded_rectangle([20, cy - 55, s - 20, cy + 55], 8, fill=(25, 25, 25))
        for k in range(r.choice((3, 4))):
            x = 50 + k * 45
            top = _jitter(r.choice(f[1:3]), r)
            d.rounded_rectangle([x - 18, cy - 22, x + 18, cy + 22], 9, fill=_jitter(f[0], r, 5))
            d.rounded_rectangle([x - 20, cy - 26, x + 20, cy + 4], 10, fill=top)
            for st in range(3):
                d.line([x - 14 + st * 10, cy - 22, x - 10 + st * 10, cy + 2], fill=(255, 230, 220))
        d.ellipse([s - 60, cy + 30, s - 35, cy + 50], fill=f[3])
    elif m == "dumplings":
        rad = r.uniform(80, 95)
        d.ellipse([cx - rad, cy - rad, cx + rad, cy + rad], fill=(205, 165, 95))
        d.ellipse([cx - rad * .9, cy - rad * .9, cx + rad * .9, cy + rad * .9],
                  fill=(225, 195, 130))
        for k in range(r.choice((4, 5, 6))):
            a = k * 2 * math.pi / 5 + r.uniform(0, .4)
            x, y = cx + rad * .48 * math.cos(a), cy + rad * .48 * math.sin(a)
            d.chord([x - 24, y - 18, x + 24, y + 26], 180, 360, fill=_jitter(f[0], r, 6))
            for p in range(4):
                d.line([x - 12 + p * 8, y - 12, x - 10 + p * 8, y - 4], fill=(200, 195, 180))
    elif m == "curry":
        for k, (dx, dy) in enumerate(((-45, -35), (50, -30), (0, 50))):
            x, y, rr = cx + dx * 0.9, cy + dy * 0.9, r.uniform(38, 46)
            d.ellipse([x - rr, y - rr, x + rr, y + rr], fill=(170, 170, 175))
            d.ellipse([x - rr * .82, y - rr * .82, x + rr * .82, y + rr * .82],
                      fill=_jitter(f[k % 3], r))
            _dots(d, x, y, rr * .6, 5, ((250, 245, 230), f[2]), 3, r)
        d.ellipse([cx - 100, cy + 50, cx - 20, cy + 100], fill=_jitter(f[3], r))
    elif m == "greencurry":
        rad = r.uniform(75, 92)
        d.ellipse([cx - rad, cy - rad, cx + rad, cy + rad], fill=(250, 250, 245))
        d.ellipse([cx - rad * .8, cy - rad * .8, cx + rad * .8, cy + rad * .8],
                  fill=_jitter(r.choice((f[0], f[1])), r))
        _dots(d, cx, cy, rad * .65, 12, ((60, 120, 40), f[3], f[2]), 5, r)
        d.pieslice([cx + rad * .3, cy - rad * .9, cx + rad * .9, cy - rad * .3], 0, 180,
                   fill=(120, 200, 60))
    elif m == "burger":
        w = r.uniform(120, 150)
        x0, x1 = cx - w / 2, cx + w / 2
        y = cy + 40
        layers = ((f[0], 22), (f[3], 8), (f[2], 8), (f[1], 22), (f[0], 30))
        for col, h in layers:
            d.rounded_rectangle([x0, y - h, x1, y], 10, fill=_jitter(col, r, 10))
            y -= h - 2
        d.chord([x0, y - 45, x1, y + 20], 180, 360, fill=_jitter(f[0], r, 10))
        for k in range(9):
            fx = s - 45 + r.uniform(-15, 15)
            d.line([fx, s - 10, fx + r.uniform(-12, 12), s - 70], fill=(245, 200, 60), width=6)
    elif m == "plated":
        _plate(d, cx, cy, 95, r)
        for k in range(3):
            d.arc([cx - 60 + k * 8, cy - 50, cx + 50, cy + 50], 20, 160, fill=_jitter(f[2], r),
                  width=4)
        d.rounded_rectangle([cx - 22, cy - 18, cx + 22, cy + 14], 6, fill=_jitter(f[0], r))
        _dots(d, cx, cy - 20, 12, 4, (f[3],), 3, r)
    elif m == "salad":
        rad = r.uniform(80, 95)
        d.ellipse([cx - rad, cy - rad, cx + rad, cy + rad], fill=(250, 250, 250),
                  outline=(30, 90, 170), width=4)
        for _ in range(22):
            a, rr = r.uniform(0, 2 * math.pi), rad * .7 * math.sqrt(r.random())
            x, y = cx + rr * math.cos(a), cy + rr * math.sin(a)
            col = _jitter(r.choice(f), r, 10)
            sz = r.uniform(6, 12)
            d.rectangle([x - sz, y - sz, x + sz, y + sz], fill=col)
    else:  # bbq grill with banchan
        rad = r.uniform(65, 78)
        d.ellipse([cx - rad, cy - rad, cx + rad, cy + rad], fill=(30, 30, 30))
        for k in range(-4, 5):
            d.line([cx - rad, cy + k * 14, cx + rad, cy + k * 14], fill=(90, 90, 90), width=2)
        for _ in range(6):
            x, y = cx + r.uniform(-40, 40), cy + r.uniform(-40, 40)
            d.rounded_rectangle([x - 22, y - 8, x + 22, y + 8], 4, fill=_jitter(f[0], r))
        for k in range(4):
            a = k * math.pi / 2 + math.pi / 4
            x, y = cx + (rad + 30) * math.cos(a), cy + (rad + 30) * math.sin(a)
            x, y = min(max(x, 22), s - 22), min(max(y, 22), s - 22)
            d.ellipse([x - 20, y - 20, x + 20, y + 20], fill=(240, 240, 240))
            d.ellipse([x - 14, y - 14, x + 14, y + 14], fill=_jitter(f[1 + k % 3], r))


def _draw_drink(d: ImageDraw.ImageDraw, cu: Cuisine, r: random.Random) -> None:
    s = PHOTO_SIZE
    n = r.choice((1, 1, 2))
    for k in range(n):
        cx = s / 2 + (k - (n - 1) / 2) * 80 + r.uniform(-10, 10)
        top, bottom = 50 + r.uniform(-10, 10), 190
        w_top, w_bot = r.uniform(34, 44), r.uniform(24, 32)
        glass = [(cx - w_top, top), (cx + w_top, top), (cx + w_bot, bottom), (cx - w_bot, bottom)]
        d.polygon(glass, fill=(225, 232, 238), outline=(250, 250, 250))
        level = top + r.uniform(15, 40)
        frac = (level - top) / (bottom - top)
        w_l = w_top + (w_bot - w_top) * frac
        d.polygon([(cx - w_l, level), (cx + w_l, level), (cx + w_bot - 3, bottom - 3),
                   (cx - w_bot + 3, bottom - 3)], fill=_jitter(cu.drink, r, 12))
        d.line([cx - w_top + 8, top + 10, cx - w_bot + 6, bottom - 12], fill=(255, 255, 255),
               width=3)


def _draw_menu(d: ImageDraw.ImageDraw, cu: Cuisine, name: str, r: random.Random) -> None:
    s = PHOTO_SIZE
    d.rectangle([0, 0, s, s], fill=_jitter((70, 55, 45), r))
    x0, y0 = 22 + r.uniform(-6, 6), 12 + r.uniform(-4, 4)
    d.rectangle([x0, y0, x0 + 180, y0 + 205], fill=_jitter((246, 240, 222), r, 6))
    ink = cu.table[0] if sum(cu.table[0]) < 500 else (110, 40, 40)
    d.text((x0 + 10, y0 + 6), name[:22], fill=ink, font=_font(15))
    d.line([x0 + 10, y0 + 26, x0 + 170, y0 + 26], fill=ink, width=2)
    dishes = list(cu.dishes)
    r.shuffle(dishes)
    for k, dish in enumerate(dishes[:8]):
        y = y0 + 34 + k * 20
        d.text((x0 + 10, y), dish.title()[:20], fill=(40, 35, 30), font=_font(11))
        d.text((x0 + 148, y), f"${r.randint(6, 34)}", fill=(40, 35, 30), font=_font(11))


def _draw_inside(d: ImageDraw.ImageDraw, cu: Cuisine, r: random.Random) -> None:
    s = PHOTO_SIZE
    wall = _jitter(cu.table[0] if cu.motif not in ("plated",) else (180, 160, 130), r, 25)
    d.rectangle([0, 0, s, 140], fill=wall)
    d.rectangle([0, 140, s, s], fill=_jitter((110, 80, 55), r, 20))
    for k in range(r.choice((1, 2))):
        x = 20 + k * 110 + r.uniform(0, 20)
        d.rectangle([x, 30, x + 70, 95], fill=(170, 200, 225), outline=(60, 50, 45), width=4)
    for k in range(3):
        x = 30 + k * 75
        d.line([x, 0, x, 30], fill=(40, 40, 40), width=2)
        d.ellipse([x - 10, 28, x + 10, 42], fill=(250, 220, 120))
    for k in range(3):
        x, y = 15 + k * 72 + r.uniform(-5, 5), 165 + r.uniform(-5, 5)
        d.rectangle([x, y, x + 56, y + 10], fill=_jitter(cu.table[1], r, 20))
        d.line([x + 6, y + 10, x + 6, y + 45], fill=(50, 40, 35), width=3)
        d.line([x + 50, y + 10, x + 50, y + 45], fill=(50, 40, 35), width=3)
        d.rectangle([x + 18, y - 25, x + 38, y], fill=_jitter(cu.food[0], r, 20))


def _draw_outside(d: ImageDraw.ImageDraw, cu: Cuisine, name: str, r: random.Random) -> None:
    s = PHOTO_SIZE
    d.rectangle([0, 0, s, s], fill=_jitter((140, 185, 230), r, 15))
    facade = _jitter(r.choice(((165, 80, 60), (215, 205, 185), (120, 120, 125))), r, 15)
    d.rectangle([10, 30, s - 10, 190], fill=facade)
    d.rectangle([0, 190, s, s], fill=(150, 150, 150))
    y = 70
    for k in range(0, s - 20, 16):  # striped awning in the cuisine's colours
        col = cu.table[0] if (k // 16) % 2 == 0 else cu.table[1]
        d.polygon([(10 + k, y), (26 + k, y), (30 + k, y + 28), (14 + k, y + 28)], fill=col)
    d.rectangle([30, 38, s - 30, 64], fill=(30, 30, 30))
    d.text((38, 43), name[:24], fill=(250, 240, 200), font=_font(13))
    d.rectangle([25, 110, 95, 185], fill=(90, 120, 140), outline=(40, 40, 40), width=3)
    d.rectangle([125, 105, 180, 190], fill=(70, 50, 40), outline=(40, 40, 40), width=3)


def _photo_bytes(cu: Cuisine, label: str, name: str, r: random.Random,
                 noise: np.ndarray) -> bytes:
    img = Image.new("RGB", (PHOTO_SIZE, PHOTO_SIZE))
    d = ImageDraw.Draw(img)
    if label in ("food", "drink"):
        _background(d, cu, r)
        (_draw_food if label == "food" else _draw_drink)(d, cu, r)
    elif label == "menu":
        _draw_menu(d, cu, name, r)
    elif label == "inside":
        _draw_inside(d, cu, r)
    else:
        _draw_outside(d, cu, name, r)
    img = img.filter(ImageFilter.GaussianBlur(r.choice((0.6, 0.9, 1.2))))
    arr = np.asarray(img, dtype=np.int16) + noise
    # a light-level shift per photo, as phone shots differ in exposure
    arr += np.int16(r.randint(-18, 18))
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


# --- generation -----------------------------------------------------------------------------------
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

    Returns:
        ``out`` (created if missing; existing demo files are overwritten).
    """
    if n_businesses < 10 or n_users < 10 or n_photos < 0:
        raise DatasetError("demo: need at least 10 businesses and 10 users")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    nc = len(CUISINES)

    # --- businesses ------------------------------------------------------------------------------
    n_other = max(3, n_businesses // 25)
    nb = n_businesses + n_other
    shares = np.array([c.share for c in CUISINES])
    cuisine = np.concatenate([
        rng.choice(nc, size=n_businesses, p=shares / shares.sum()),
        np.full(n_other, nc),  # index nc = "other" (not a restaurant)
    ])
    city_p = np.array([c[5] for c in _CITIES])
    b_city = rng.choice(len(_CITIES), size=nb, p=city_p)
    price = np.array([rng.choice(4, p=CUISINES[c].price) + 1 if c < nc else 0 for c in cuisine])
    # Zipf-like popularity over a random order, with a floor so every business gets reviews
    rank = rng.permutation(nb) + 1
    pop = np.maximum(rank.astype(float) ** -1.0, 0.003)
    log_pop = np.log(pop)
    quality = 0.35 * (log_pop - log_pop.mean()) / log_pop.std() + rng.normal(0, 0.45, nb)
    b_ids = _ids(rng, nb)

    # --- users ------------------------------------------------------------------------------------
    nu = n_users
    u_ids = _ids(rng, nu)
    k_liked = rng.choice([1, 2, 3], size=nu, p=[0.35, 0.45, 0.20])
    taste = np.zeros((nu, nc))
    gumbel = rng.gumbel(size=(nu, nc)) + np.log(shares)
    order = np.argsort(-gumbel, axis=1)
    weights = rng.dirichlet(np.full(3, 1.5), size=nu)
    for j in range(3):
        mask = k_liked > j
        taste[np.nonzero(mask)[0], order[mask, j]] = weights[mask, j]
    taste /= taste.sum(axis=1, keepdims=True)
    taste_full = 0.03 / nc + 0.97 * taste  # a little mass on every cuisine
    u_city = rng.choice(len(_CITIES), size=nu, p=city_p)
    u_price = np.clip(np.round(rng.normal(2.1, 0.7, nu)), 1, 4)
    u_sens = rng.uniform(0.0, 1.2, nu)
    n_rev = np.clip(np.round(np.exp(rng.normal(np.log(8.5), 0.95, nu))), 2, 150).astype(int)
    one = rng.random(nu) < 0.06
    n_rev[one] = 1
    n_rev = np.minimum(n_rev, nb - 1)

    # --- who reviews what: Gumbel top-k without replacement over the affinity ---------------------
    tb = np.concatenate([taste_full, np.full((nu, 1), 0.004)], axis=1)[:, cuisine]  # (nu, nb)
    price_gap = np.abs(price[None, :] - u_price[:, None]) * (price[None, :] > 0)
    price_fit = np.exp(-u_sens[:, None] * price_gap)
    local = np.where(b_city[None, :] == u_city[:, None], 1.0, 0.15)
    logit = np.log(tb) + np.log(pop)[None, :] + np.log(price_fit) + np.log(local)
    keys = logit + rng.gumbel(size=logit.shape)
    top = np.argsort(-keys, axis=1)
    rows = np.repeat(np.arange(nu), n_rev)
    cols = top[rows, np.concatenate([np.arange(k) for k in n_rev])]
    # every business gets at least two reviews, from users of its city
    counts = np.bincount(cols, minlength=nb)
    extra_r, extra_c = [], []
    for b in np.nonzero(counts < 2)[0]:
        have = set(rows[cols == b].tolist())
        pool = np.nonzero(u_city == b_city[b])[0]
        pool = pool[~np.isin(pool, list(have)) & (n_rev[pool] > 1)]
        pick = rng.choice(pool, size=2 - counts[b], replace=False)
        extra_r += pick.tolist()
        extra_c += [b] * len(pick)
    rows = np.concatenate([rows, np.array(extra_r, dtype=int)])
    cols = np.concatenate([cols, np.array(extra_c, dtype=int)])
    nr = len(rows)

    # --- stars ------------------------------------------------------------------------------------
    is_rest = cuisine[cols] < nc
    cu_idx = np.minimum(cuisine[cols], nc - 1)
    match = np.where(is_rest, taste[rows, cu_idx] / taste[rows].max(axis=1), 0.5)
    z = (1.6 * match + 0.9 * quality[cols] + 0.5 * price_fit[rows, cols]
         + rng.normal(0, 0.85, nr))
    cuts = np.quantile(z, [0.11, 0.19, 0.30, 0.54])
    stars = (1 + np.searchsorted(cuts, z)).astype(int)

    # --- dates ------------------------------------------------------------------------------------
    day = 86400
    t_lo = int(np.datetime64("2015-01-01", "s").astype(int))
    t_hi = int(np.datetime64("2022-12-31", "s").astype(int))
    since = rng.integers(int(np.datetime64("2010-06-01", "s").astype(int)),
                         int(np.datetime64("2021-06-01", "s").astype(int)), nu)
    start = np.maximum(since, t_lo)
    span = (t_hi - start) * rng.uniform(0.3, 1.0, nu)  # each user is active for a while
    ts = (start[rows] + rng.random(nr) * span[rows]).astype(np.int64)
    ts = ts // day * day + rng.integers(8 * 3600, 23 * 3600, nr)

    # --- review text ------------------------------------------------------------------------------
    b_names = []
    for b in range(nb):
        if cuisine[b] < nc:
            cu = CUISINES[cuisine[b]]
            pat = cu.names[rng.integers(len(cu.names))]
            b_names.append(pat.format(w=cu.words[rng.integers(len(cu.words))]))
        else:
            pat = _OTHER_NAMES[b % len(_OTHER_NAMES)]
            b_names.append(pat.format(w=_FIRST[rng.integers(len(_FIRST))]))
    pick = rng.integers(0, 1 << 30, size=(nr, 10))
    n_sent = rng.integers(2, 6, nr)
    texts = []
    for i in range(nr):
        b, st, p = cols[i], int(stars[i]), pick[i]
        city = _CITIES[b_city[b]][0]
        if cuisine[b] >= nc:
            texts.append(_OTHER_TEXT[st])
            continue
        cu = CUISINES[cuisine[b]]
        d1 = cu.dishes[p[0] % 10]
        d2 = cu.dishes[(p[0] + 1 + p[1] % 9) % 10]
        parts = [_OPEN[st][p[2] % 6].format(city=city),
                 f"The {d1} was {_ADJ[st][p[3] % 6]}."]
        optional = [
            f"We also tried the {d2}, which was {_ADJ[st][p[4] % 6]}.",
            _CUISINE_LINE[p[5] % 4].format(cuisine=cu.name, verdict=_VERDICT[st],
                                           verdict2=_VERDICT2[st]),
            _SERVICE[st][p[6] % 3],
            _PRICE_LINE[int(price[b])][p[7] % 2],
            f"Had the {cu.drinks[p[8] % 4]} too.",
        ]
        k = int(n_sent[i])
        chosen = sorted((p[9] + j * 7) % 5 for j in range(k))
        parts += [optional[j] for j in dict.fromkeys(chosen)]
        parts.append(_CLOSE[st][p[1] % 3])
        texts.append(" ".join(parts))

    # --- write reviews (sorted by date, as a stable file order) -----------------------------------
    order_r = np.lexsort((cols, rows, ts))
    r_ids = _ids(rng, nr)
    votes = rng.poisson(0.6, size=(nr, 3)) * (rng.random((nr, 1)) < 0.5)
    dates = _fmt_ts(ts)
    with open(out / REVIEW_FILE, "w", encoding="utf-8") as f:
        for i in order_r:
            f.write(_dumps({
                "review_id": r_ids[i], "user_id": u_ids[rows[i]], "business_id": b_ids[cols[i]],
                "stars": float(stars[i]), "useful": int(votes[i, 0]), "funny": int(votes[i, 1]),
                "cool": int(votes[i, 2]), "text": texts[i], "date": dates[i],
            }) + "\n")

    # --- write businesses -------------------------------------------------------------------------
    b_count = np.bincount(cols, minlength=nb)
    b_stars = np.bincount(cols, weights=stars, minlength=nb) / np.maximum(b_count, 1)
    b_stars = np.round(b_stars * 2) / 2
    jitter = rng.normal(0, 0.04, size=(nb, 2))
    street_no = rng.integers(100, 9999, nb)
    bools = rng.random((nb, 6)) < np.array([0.85, 0.6, 0.5, 0.45, 0.3, 0.7])
    with open(out / BUSINESS_FILE, "w", encoding="utf-8") as f:
        for b in range(nb):
            city, state, lat, lon, zp, _ = _CITIES[b_city[b]]
            if cuisine[b] < nc:
                cu = CUISINES[cuisine[b]]
                cats = ["Restaurants", *cu.categories]
                rng_b = random.Random(seed * 7919 + b)
                rng_b.shuffle(cats)
                attributes = {
                    "RestaurantsPriceRange2": str(int(price[b])),
                    "RestaurantsTakeOut": str(bool(bools[b, 0])),
                    "RestaurantsDelivery": str(bool(bools[b, 1])),
                    "OutdoorSeating": str(bool(bools[b, 2])),
                    "WiFi": "u'free'" if bools[b, 3] else "u'no'",
                    "Alcohol": "u'full_bar'" if price[b] >= 3 else
                    ("u'beer_and_wine'" if bools[b, 4] else "u'none'"),
                    "GoodForKids": str(bool(bools[b, 5])),
                    "Ambience": "{'romantic': %s, 'casual': %s, 'classy': %s}" % (
                        price[b] >= 4, price[b] <= 2, price[b] >= 3),
                }
                hours = {d: "11:0-22:0" for d in ("Monday", "Tuesday", "Wednesday", "Thursday",
                                                  "Friday", "Saturday")}
                hours["Sunday"] = "12:0-21:0"
                categories = ", ".join(cats)
            else:
                attributes = {"ByAppointmentOnly": str(bool(bools[b, 0]))}
                hours = {d: "9:0-18:0" for d in ("Monday", "Tuesday", "Wednesday", "Thursday",
                                                 "Friday")}
                categories = _OTHER_CATEGORIES[b % len(_OTHER_CATEGORIES)]
            f.write(_dumps({
                "business_id": b_ids[b], "name": b_names[b],
                "address": f"{street_no[b]} {_STREETS[street_no[b] % len(_STREETS)]}",
                "city": city, "state": state, "postal_code": f"{zp}{street_no[b] % 100:02d}",
                "latitude": round(lat + jitter[b, 0], 6), "longitude": round(lon + jitter[b, 1], 6),
                "stars": float(b_stars[b]), "review_count": int(b_count[b]),
                "is_open": int(rank[b] % 10 != 0), "attributes": attributes,
                "categories": categories, "hours": hours,
            }) + "\n")

    # --- write users ------------------------------------------------------------------------------
    u_count = np.bincount(rows, minlength=nu)
    u_avg = np.bincount(rows, weights=stars, minlength=nu) / np.maximum(u_count, 1)
    u_votes = np.zeros((nu, 3), dtype=int)
    np.add.at(u_votes, rows, votes)
    fans = rng.poisson(u_count / 8)
    since_s = _fmt_ts(since)
    first = rng.integers(0, len(_FIRST), nu)
    with open(out / USER_FILE, "w", encoding="utf-8") as f:
        for u in range(nu):
            f.write(_dumps({
                "user_id": u_ids[u], "name": _FIRST[first[u]], "review_count": int(u_count[u]),
                "yelping_since": since_s[u], "useful": int(u_votes[u, 0]),
                "funny": int(u_votes[u, 1]), "cool": int(u_votes[u, 2]), "elite": "",
                "friends": "None", "fans": int(fans[u]), "average_stars": round(float(u_avg[u]), 2),
                "compliment_hot": 0, "compliment_more": 0, "compliment_photos": 0,
            }) + "\n")

    # --- photos -----------------------------------------------------------------------------------
    restaurants = np.nonzero(cuisine < nc)[0]
    # about 12% of restaurants (mostly unpopular ones) have no photo
    no_photo_p = 1.0 / (1.0 + pop[restaurants] * 40)
    no_photo = rng.random(len(restaurants)) < no_photo_p * 0.22
    with_photo = restaurants[~no_photo]
    if n_photos < len(with_photo):
        with_photo = np.sort(rng.choice(with_photo, size=n_photos, replace=False))
    per = np.ones(len(with_photo), dtype=int) if n_photos else np.zeros(len(with_photo), int)
    rest = n_photos - per.sum()
    if rest > 0:
        w = pop[with_photo] ** 0.6
        per += rng.multinomial(rest, w / w.sum())
    p_bus = np.repeat(with_photo, per)
    p_label = rng.choice(len(PHOTO_LABELS), size=len(p_bus), p=_LABEL_P)
    p_ids = _ids(rng, len(p_bus))
    cap_pick = rng.integers(0, 1 << 30, size=len(p_bus))
    noise = rng.normal(0, 5, size=(4, PHOTO_SIZE, PHOTO_SIZE, 3)).astype(np.int16)
    (out / PHOTO_DIR).mkdir(exist_ok=True)
    iterator = range(len(p_bus))
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="demo photos", unit="photo")
    with open(out / PHOTO_FILE, "w", encoding="utf-8") as f:
        for i in iterator:
            b = p_bus[i]
            cu = CUISINES[cuisine[b]]
            label = PHOTO_LABELS[p_label[i]]
            c = int(cap_pick[i])
            if c % 4 == 0:
                caption = ""  # many real captions are empty
            elif label == "food":
                caption = cu.dishes[c % 10].capitalize()
            elif label == "drink":
                caption = cu.drinks[c % 4].capitalize()
            elif label == "menu":
                caption = "Menu"
            elif label == "inside":
                caption = f"Inside {b_names[b]}"
            else:
                caption = f"{b_names[b]} storefront"
            r = random.Random(seed * 1_000_003 + i)
            data = _photo_bytes(cu, label, b_names[b], r, noise[i % 4])
            (out / PHOTO_DIR / f"{p_ids[i]}.jpg").write_bytes(data)
            f.write(_dumps({"photo_id": p_ids[i], "business_id": b_ids[b], "caption": caption,
                            "label": label}) + "\n")

    (out / "README.txt").write_text(
        "SYNTHETIC DEMO DATA in the Yelp Open Dataset layout, generated by `python -m core demo`\n"
        f"(generator version {GENERATOR_VERSION}, seed {seed}). Not real Yelp data: businesses,\n"
        "users, reviews and photos are made up. Structure: 10 cuisines with price levels; users\n"
        "with latent cuisine tastes, a home city and price sensitivity; Zipf-like popularity;\n"
        "stars from taste match + quality + noise; review text naming cuisine and dishes;\n"
        "procedurally drawn photos (food, drink, menu, inside, outside).\n"
        f"Counts: {nb} businesses ({n_other} non-restaurants), {nu} users, {nr} reviews,\n"
        f"{len(p_bus)} photos.\n", encoding="utf-8")
    if progress:
        print(f"demo: {nb} businesses, {nu} users, {nr} reviews, {len(p_bus)} photos "
              f"in {time.perf_counter() - t0:.1f} s")
    return out


def _complete(root: Path) -> bool:
    marker = root / MARKER
    try:
        return marker.read_text(encoding="utf-8").strip() == GENERATOR_VERSION
    except OSError:
        return False


def ensure_demo(root: Path) -> Path:
    """Return ``root`` holding the demo data, generating it first if missing or incomplete.

    Generation writes into a temporary sibling directory, adds the marker file
    (``.demo-complete`` with the generator version) and renames it into place, so a reader never
    sees half-written data. Two processes calling this at once are safe: a file lock makes the
    second wait for the first, and the rename is atomic either way.
    """
    root = Path(root)
    if _complete(root):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    lock_path = root.parent / f".{root.name}.lock"
    with open(lock_path, "a+") as lock:
        try:
            import fcntl

            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        except ImportError:  # no fcntl (Windows): the atomic rename still keeps readers safe
            pass
        if _complete(root):
            return root
        tmp = root.parent / f".{root.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            generate_demo(tmp, progress=False)
            (tmp / MARKER).write_text(GENERATOR_VERSION + "\n", encoding="utf-8")
            if root.exists():  # stale or incomplete: move it aside, then replace
                old = root.parent / f".{root.name}.old-{uuid.uuid4().hex[:8]}"
                os.replace(root, old)
                shutil.rmtree(old, ignore_errors=True)
            os.replace(tmp, root)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return root
