"""The twelve markets of the demo brand and what differs between them.

A cross-border brand meets each market with its own currency, language, time zone, phone plan,
mail providers, price level and shopping calendar. ``Market`` is the public, stable part of that
(it is what the ingestion pipeline and the CLI rely on); ``MarketProfile`` is the generator's own
knowledge of a market, kept beside it so the two never drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Market:
    """A country the brand sells to, as the rest of siyu sees it."""

    code: str  # ISO 3166-1 alpha-2
    currency: str  # ISO 4217
    language: str  # BCP 47
    timezone: str  # IANA
    region: str  # EU, UK, US, SEA, LATAM, MENA: decides the consent regime
    phone_region: str  # region code for parsing local phone numbers


MARKETS: tuple[Market, ...] = (
    Market("US", "USD", "en-US", "America/New_York", "US", "US"),
    Market("GB", "GBP", "en-GB", "Europe/London", "UK", "GB"),
    Market("DE", "EUR", "de-DE", "Europe/Berlin", "EU", "DE"),
    Market("FR", "EUR", "fr-FR", "Europe/Paris", "EU", "FR"),
    Market("ES", "EUR", "es-ES", "Europe/Madrid", "EU", "ES"),
    Market("ID", "IDR", "id-ID", "Asia/Jakarta", "SEA", "ID"),
    Market("TH", "THB", "th-TH", "Asia/Bangkok", "SEA", "TH"),
    Market("PH", "PHP", "en-PH", "Asia/Manila", "SEA", "PH"),
    Market("MY", "MYR", "ms-MY", "Asia/Kuala_Lumpur", "SEA", "MY"),
    Market("BR", "BRL", "pt-BR", "America/Sao_Paulo", "LATAM", "BR"),
    Market("MX", "MXN", "es-MX", "America/Mexico_City", "LATAM", "MX"),
    Market("SA", "SAR", "ar-SA", "Asia/Riyadh", "MENA", "SA"),
)

SOURCES: tuple[tuple[str, str], ...] = (
    ("shopify", "shopify"),
    ("amazon", "amazon"),
    ("tiktok_shop", "tiktok_shop"),
    ("whatsapp", "whatsapp"),
    ("instagram", "instagram"),
    ("email", "email"),
    ("web", "web"),
)

# Source indices, in SOURCES order: the generator works with small integers, not names.
SHOPIFY, AMAZON, TIKTOK, WHATSAPP, INSTAGRAM, EMAIL, WEB = range(7)
SOURCE_NAMES: tuple[str, ...] = tuple(name for name, _ in SOURCES)
REGIONS: tuple[str, ...] = ("US", "UK", "EU", "SEA", "LATAM", "MENA")

# Currencies whose prices carry no minor unit in everyday use (Rp149.000, never Rp149.000,00).
ZERO_DECIMAL: frozenset[str] = frozenset({"IDR"})


@dataclass(frozen=True)
class MarketProfile:
    """What the generator needs to make believable people and orders in one market."""

    weight: float  # share of the customer base
    utc_offset: int  # standard-time hours; DST is ignored (shifts activity by an hour at most)
    price_level: float  # local price list relative to the USD list, before FX
    list_rate: float  # local currency per USD used for the price list (not the daily rate)
    charm: tuple[int, int]  # (step, minus) in minor units: round up to step, then subtract
    shipping: tuple[int, int]  # (flat fee, free-shipping threshold) in minor units
    calling_code: str
    mobile_prefixes: tuple[str, ...]
    subscriber: tuple[int, int, int]  # (lowest, space, width): subscriber = low + perm(space)
    local_format: str  # '#' = next national digit
    amazon_tld: str
    email_domains: tuple[tuple[str, float], ...]
    ip_octets: tuple[int, ...]
    fx_level: float  # USD per unit, centre of the daily random walk
    fx_vol: float  # daily log volatility


_GLOBAL_MAIL = (("gmail.com", 0.55), ("yahoo.com", 0.12), ("outlook.com", 0.1))

PROFILES: tuple[MarketProfile, ...] = (
    MarketProfile(
        0.22, -5, 1.0, 1.0, (100, 1), (599, 5000), "1",
        ("212", "310", "415", "512", "646", "718", "305", "617", "206", "312", "404", "702"),
        (2_000_000, 8_000_000, 7), "(###) ###-####", "com",
        (*_GLOBAL_MAIL, ("icloud.com", 0.13), ("hotmail.com", 0.1)),
        (23, 24, 50, 66, 73, 98, 174), 1.0, 0.0,
    ),
    MarketProfile(
        0.08, 0, 0.95, 0.79, (100, 1), (399, 4000), "44",
        ("740", "743", "747", "751", "755", "759", "771", "774", "777", "780", "786", "790", "797"),
        (0, 10_000_000, 7), "0#### ######", "co.uk",
        (*_GLOBAL_MAIL, ("hotmail.co.uk", 0.13), ("btinternet.com", 0.1)),
        (2, 5, 31, 81, 86), 1.27, 0.005,
    ),
    MarketProfile(
        0.07, 1, 1.0, 0.92, (100, 5), (495, 5000), "49",
        ("151", "152", "157", "160", "170", "171", "175", "176", "177", "178", "179"),
        (0, 100_000_000, 8), "0### ########", "de",
        (("gmail.com", 0.35), ("gmx.de", 0.25), ("web.de", 0.2), ("t-online.de", 0.1),
         ("outlook.com", 0.1)),
        (46, 79, 84, 91, 93), 1.08, 0.004,
    ),
    MarketProfile(
        0.06, 1, 1.0, 0.92, (100, 5), (495, 5000), "33",
        ("60", "61", "62", "64", "65", "66", "67", "68", "73", "75", "76", "77", "78"),
        (0, 10_000_000, 7), "0# ## ## ## ##", "fr",
        (("gmail.com", 0.45), ("orange.fr", 0.2), ("free.fr", 0.12), ("laposte.net", 0.1),
         ("hotmail.fr", 0.13)),
        (2, 78, 82, 90, 92), 1.08, 0.004,
    ),
    MarketProfile(
        0.04, 1, 1.0, 0.92, (100, 5), (495, 5000), "34", ("6",),
        (0, 100_000_000, 8), "### ## ## ##", "es",
        (("gmail.com", 0.55), ("hotmail.es", 0.2), ("yahoo.es", 0.1), ("outlook.es", 0.15)),
        (79, 83, 88, 95), 1.08, 0.004,
    ),
    MarketProfile(
        0.10, 7, 0.8, 15_800.0, (10_000, 1_000), (15_000, 300_000), "62",
        ("811", "812", "813", "821", "822", "852", "853", "857", "877", "878", "895", "896"),
        (0, 100_000_000, 8), "0###-####-####", "sg",
        (("gmail.com", 0.8), ("yahoo.co.id", 0.12), ("yahoo.com", 0.08)),
        (36, 103, 110, 114, 180, 182), 0.000063, 0.004,
    ),
    MarketProfile(
        0.06, 7, 0.85, 35.5, (1_000, 0), (5_000, 99_900), "66",
        ("61", "62", "63", "64", "65", "80", "81", "82", "83", "84", "86", "89", "91", "95", "99"),
        (0, 10_000_000, 7), "0##-###-####", "sg",
        (("gmail.com", 0.75), ("hotmail.com", 0.15), ("yahoo.com", 0.1)),
        (1, 49, 58, 110, 171, 182), 0.028, 0.004,
    ),
    MarketProfile(
        0.06, 8, 0.85, 56.0, (1_000, 100), (10_000, 150_000), "63",
        ("905", "906", "915", "916", "917", "926", "927", "935", "945", "956", "966", "977", "995"),
        (0, 10_000_000, 7), "0### ### ####", "sg",
        (("gmail.com", 0.75), ("yahoo.com", 0.2), ("outlook.com", 0.05)),
        (49, 110, 112, 119, 120, 175), 0.018, 0.003,
    ),
    MarketProfile(
        0.05, 8, 0.85, 4.6, (100, 10), (800, 15_000), "60", ("12", "16", "19"),
        (0, 10_000_000, 7), "0##-### ####", "sg",
        (("gmail.com", 0.75), ("yahoo.com", 0.15), ("hotmail.com", 0.1)),
        (1, 14, 60, 115, 175), 0.22, 0.003,
    ),
    MarketProfile(
        0.10, -3, 1.1, 5.2, (100, 10), (1_990, 25_000), "55",
        ("119", "219", "319", "419", "519", "619", "719", "819"),
        (60_000_000, 40_000_000, 8), "(##) #####-####", "com.br",
        (("gmail.com", 0.6), ("hotmail.com", 0.2), ("outlook.com", 0.1), ("uol.com.br", 0.05),
         ("bol.com.br", 0.05)),
        (138, 177, 179, 187, 189, 191, 200, 201), 0.19, 0.009,
    ),
    MarketProfile(
        0.08, -6, 0.95, 18.0, (1_000, 100), (9_900, 99_900), "52", ("55", "33", "81"),
        (0, 100_000_000, 8), "## #### ####", "com.mx",
        (("gmail.com", 0.55), ("hotmail.com", 0.3), ("yahoo.com.mx", 0.1), ("outlook.com", 0.05)),
        (187, 189, 200, 201), 0.055, 0.007,
    ),
    MarketProfile(
        0.08, 3, 1.0, 3.75, (500, 100), (2_500, 20_000), "966",
        ("50", "53", "54", "55", "56", "58", "59"),
        (0, 10_000_000, 7), "0## ### ####", "sa",
        (("gmail.com", 0.6), ("hotmail.com", 0.25), ("outlook.com", 0.1), ("yahoo.com", 0.05)),
        (5, 37, 46, 91, 94, 188), 1 / 3.75, 0.0001,
    ),
)  # fmt: skip

MARKET_CODES: tuple[str, ...] = tuple(m.code for m in MARKETS)
MARKET_WEIGHTS: tuple[float, ...] = tuple(p.weight for p in PROFILES)


def region_index(market: Market) -> int:
    """Position of the market's region in ``REGIONS`` (rows of the consent tables)."""
    return REGIONS.index(market.region)


def money_digits(currency: str) -> int:
    """Decimal places the demo writes for a currency."""
    return 0 if currency in ZERO_DECIMAL else 2
