"""The demo brand's product catalogue: 300 products in six categories, stable across seeds.

Ids, SKUs, names and USD list prices never depend on the seed, so a product seen in one demo run
is the same product in the next; only who buys it changes. Local prices come from the USD list
through each market's price list (price level, list rate, charm rounding), the way brands price
abroad, not from the day's FX rate. Complements ("bought together") are declared between product
types and paired by variant, which gives the recommender a real co-purchase structure to find.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt

from siyu.demo.markets import MARKETS, PROFILES, money_digits

CATEGORIES: tuple[str, ...] = ("baby", "beauty", "3C", "home", "apparel", "outdoor")
BRANDS: tuple[str, ...] = (
    "Little Siyu",
    "Siyu Glow",
    "Siyu Tech",
    "Siyu Home",
    "Siyu Active",
    "Siyu Trail",
)
SKU_PREFIX: tuple[str, ...] = ("BBY", "BTY", "TEC", "HOM", "APP", "OUT")

# Per category: (type name, code, USD price); ten types of five variants each.
TYPES: tuple[tuple[tuple[str, str, float], ...], ...] = (
    (("Baby Bottle", "BOT", 14.9), ("Bottle Sterilizer", "STR", 49.0),
     ("Baby Carrier", "CAR", 79.0), ("Swaddle Blanket", "SWD", 24.0),
     ("Teething Toy", "TTH", 9.9), ("Diaper Bag", "DPB", 59.0), ("Baby Monitor", "MON", 89.0),
     ("Play Mat", "PLM", 69.0), ("Bib Set", "BIB", 12.9), ("Baby Lotion", "LOT", 11.9)),
    (("Face Serum", "SRM", 32.0), ("Moisturizer", "MST", 28.0), ("Cleanser", "CLN", 18.0),
     ("Sunscreen", "SPF", 22.0), ("Sheet Mask", "MSK", 14.0), ("Lip Tint", "LIP", 12.0),
     ("Hair Oil", "HOL", 24.0), ("Eye Cream", "EYE", 30.0), ("Toner", "TNR", 19.0),
     ("Makeup Brush Set", "BRS", 26.0)),
    (("Wireless Earbuds", "EAR", 59.0), ("Phone Case", "CAS", 19.0),
     ("Screen Protector", "SCR", 12.0), ("Charging Cable", "CBL", 14.0),
     ("Power Bank", "PWR", 39.0), ("Fast Charger", "CHG", 25.0), ("Smart Watch", "WCH", 129.0),
     ("Bluetooth Speaker", "SPK", 49.0), ("Laptop Stand", "LTS", 35.0),
     ("Ring Light", "RNG", 29.0)),
    (("Coffee Grinder", "GRD", 45.0), ("Pour-Over Kettle", "KTL", 39.0),
     ("Scented Candle", "CDL", 18.0), ("Linen Sheet Set", "SHT", 89.0),
     ("Storage Basket", "BSK", 22.0), ("Ceramic Mug Set", "MUG", 28.0),
     ("Air Purifier", "AIR", 139.0), ("Desk Lamp", "LMP", 42.0), ("Throw Blanket", "THR", 49.0),
     ("Aroma Diffuser", "DIF", 34.0)),
    (("Yoga Leggings", "LEG", 48.0), ("Yoga Top", "TOP", 32.0), ("Sports Bra", "BRA", 36.0),
     ("Hoodie", "HOD", 58.0), ("Running Shorts", "SHO", 29.0), ("Crew Socks", "SOX", 12.0),
     ("Windbreaker", "WND", 69.0), ("Modest Activewear Set", "MOD", 64.0), ("Cap", "CAP", 19.0),
     ("T-Shirt", "TEE", 24.0)),
    (("Yoga Mat", "MAT", 39.0), ("Yoga Block", "BLK", 14.0), ("Camping Tent", "TNT", 149.0),
     ("Sleeping Bag", "SLP", 79.0), ("Water Bottle", "WTR", 22.0),
     ("Hiking Backpack", "BPK", 89.0), ("Camping Lantern", "LAN", 29.0),
     ("Trekking Poles", "POL", 45.0), ("Picnic Blanket", "PIC", 32.0),
     ("Resistance Bands", "BND", 18.0)),
)  # fmt: skip

# Per category: five variants as (label, price multiplier).
VARIANTS: tuple[tuple[tuple[str, float], ...], ...] = (
    (("Cloud White", 1.0), ("Sage", 1.0), ("Blush", 1.0), ("Oat", 1.0), ("Bundle", 1.8)),
    (("30ml", 1.0), ("15ml", 0.6), ("50ml", 1.5), ("Mini", 0.5), ("Duo Pack", 1.8)),
    (("Black", 1.0), ("White", 1.0), ("Blue", 1.0), ("Pro", 1.4), ("Lite", 0.8)),
    (("Natural", 1.0), ("Charcoal", 1.0), ("Terracotta", 1.0), ("Sand", 1.0), ("Large", 1.3)),
    (("Black", 1.0), ("Navy", 1.0), ("Sage", 1.0), ("Rose", 1.0), ("Sand", 1.0)),
    (("Forest", 1.0), ("Black", 1.0), ("Ocean", 1.0), ("Clay", 1.0), ("Pro", 1.35)),
)
VARIANT_WEIGHTS = np.array([0.34, 0.25, 0.19, 0.13, 0.09])

# Bought-together pairs between type codes (first -> second), paired by variant.
COMPLEMENTS: tuple[tuple[str, str], ...] = (
    ("MAT", "LEG"), ("MAT", "BLK"), ("LEG", "BRA"), ("LEG", "TOP"), ("BOT", "STR"),
    ("CAR", "DPB"), ("SRM", "MST"), ("CLN", "TNR"), ("SPF", "LIP"), ("EAR", "CBL"),
    ("CAS", "SCR"), ("PWR", "CBL"), ("WCH", "CHG"), ("GRD", "KTL"), ("KTL", "MUG"),
    ("SHT", "THR"), ("TNT", "SLP"), ("TNT", "LAN"), ("BPK", "WTR"), ("HOD", "SOX"),
)  # fmt: skip

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Catalogue:
    """Products as parallel columns; row ``i`` is product ``product_id[i]``."""

    product_id: tuple[str, ...]
    sku: tuple[str, ...]
    name: tuple[str, ...]
    handle: tuple[str, ...]
    category: Ints  # index into CATEGORIES
    usd_price: Floats
    popularity: Floats  # within-category probability of being picked
    complement: Ints  # product index bought together with this one, or -1
    local_price: Ints  # markets x products, minor units of the market currency
    category_cdf: Floats  # cumulative popularity, offset by category index (see pick_products)

    def __len__(self) -> int:
        return len(self.product_id)

    def pick(self, categories: Ints, u: Floats) -> Ints:
        """Products drawn by popularity within the given categories (one per uniform ``u``).

        The cumulative popularity of category c spans [c, c + 1), so one vectorised
        ``searchsorted`` picks inside every category at once.
        """
        idx = np.searchsorted(self.category_cdf, categories + u, side="right")
        return np.minimum(idx, len(self.product_id) - 1).astype(np.int64)


def _charm(amount_minor: Floats, step: int, minus: int) -> Ints:
    return (np.ceil(amount_minor / step) * step - minus).astype(np.int64)


@cache
def catalogue() -> Catalogue:
    """Build the catalogue once per process (pure function of the tables above)."""
    ids: list[str] = []
    skus: list[str] = []
    names: list[str] = []
    handles: list[str] = []
    category: list[int] = []
    price: list[float] = []
    popularity: list[float] = []
    type_code: list[str] = []
    variant: list[int] = []
    type_weight = 1.0 / np.arange(1, 11) ** 0.8
    shuffle = np.random.Generator(np.random.PCG64(20240611))
    for c, types in enumerate(TYPES):
        order = shuffle.permutation(len(types))
        weights = type_weight[order] / type_weight.sum()
        for t, (type_name, code, list_price) in enumerate(types):
            for v, (label, multiplier) in enumerate(VARIANTS[c]):
                n = len(ids)
                ids.append(f"P{10001 + n}")
                skus.append(f"{SKU_PREFIX[c]}-{code}-{v + 1:02d}")
                names.append(f"{BRANDS[c]} {type_name} ({label})")
                handles.append(f"{type_name}-{label}".lower().replace(" ", "-").replace("/", ""))
                category.append(c)
                price.append(round(list_price * multiplier, 2))
                popularity.append(float(weights[t] * VARIANT_WEIGHTS[v]))
                type_code.append(code)
                variant.append(v)
    index = {(code, v): i for i, (code, v) in enumerate(zip(type_code, variant, strict=True))}
    complement = np.full(len(ids), -1, dtype=np.int64)
    for i, (code, v) in enumerate(zip(type_code, variant, strict=True)):
        partners = [b for a, b in COMPLEMENTS if a == code]
        if partners:
            complement[i] = index[(partners[v % len(partners)], v)]
    usd = np.asarray(price, dtype=np.float64)
    local = np.empty((len(PROFILES), len(ids)), dtype=np.int64)
    for m, profile in enumerate(PROFILES):
        minor = 10 ** money_digits(MARKETS[m].currency)
        local[m] = _charm(usd * profile.price_level * profile.list_rate * minor, *profile.charm)
    cats = np.asarray(category, dtype=np.int64)
    pop = np.asarray(popularity, dtype=np.float64)
    cdf = np.empty(len(ids), dtype=np.float64)
    for c in range(len(CATEGORIES)):
        mask = cats == c
        cdf[mask] = c + np.cumsum(pop[mask]) / pop[mask].sum()
    cdf[np.r_[np.diff(cats) != 0, True]] = cats[np.r_[np.diff(cats) != 0, True]] + 1.0
    return Catalogue(
        product_id=tuple(ids),
        sku=tuple(skus),
        name=tuple(names),
        handle=tuple(handles),
        category=cats,
        usd_price=usd,
        popularity=pop,
        complement=complement,
        local_price=local,
        category_cdf=cdf,
    )
