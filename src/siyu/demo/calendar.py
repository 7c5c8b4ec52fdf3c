"""Shopping calendars: when each market buys more, and which promotion code it sees.

The intensity is a daily multiplier of a person's purchase rate, one row per market, so that
November in the US, the ten days before Eid in Indonesia and 11.11 in South-East Asia show up in
the orders the way they do in a real brand's books. Ramadan follows the lunar calendar, hence a
table of (approximate, astronomical) dates instead of a rule.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from siyu.demo.markets import MARKET_CODES

# First day of Ramadan and the day of Eid al-Fitr (may differ by a day with moon sighting).
RAMADAN: dict[int, tuple[dt.date, dt.date]] = {
    2021: (dt.date(2021, 4, 13), dt.date(2021, 5, 13)),
    2022: (dt.date(2022, 4, 2), dt.date(2022, 5, 2)),
    2023: (dt.date(2023, 3, 23), dt.date(2023, 4, 21)),
    2024: (dt.date(2024, 3, 11), dt.date(2024, 4, 10)),
    2025: (dt.date(2025, 3, 1), dt.date(2025, 3, 30)),
    2026: (dt.date(2026, 2, 18), dt.date(2026, 3, 20)),
    2027: (dt.date(2027, 2, 8), dt.date(2027, 3, 9)),
    2028: (dt.date(2028, 1, 28), dt.date(2028, 2, 26)),
}

BFCM_MARKETS = frozenset({"US", "GB", "DE", "FR", "ES", "BR", "MX"})
RAMADAN_MARKETS = frozenset({"ID", "MY", "SA"})
DOUBLE_DAY_MARKETS = frozenset({"ID", "TH", "PH", "MY"})  # 11.11 and 12.12 marketplace sales
SONGKRAN_MARKETS = frozenset({"TH"})

# Promotion codes a peak day offers: (code, discount fraction). Index 0 means "no promotion".
PROMOS: tuple[tuple[str, float], ...] = (
    ("", 0.0),
    ("BFCM25", 0.25),
    ("1111SALE", 0.20),
    ("1212SALE", 0.15),
    ("RAMADAN15", 0.15),
    ("SONGKRAN15", 0.15),
)
PROMO_BFCM, PROMO_1111, PROMO_1212, PROMO_RAMADAN, PROMO_SONGKRAN = range(1, 6)

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


def black_friday(year: int) -> dt.date:
    """The day after the fourth Thursday of November."""
    first = dt.date(year, 11, 1)
    first_thursday = first + dt.timedelta(days=(3 - first.weekday()) % 7)
    return first_thursday + dt.timedelta(days=22)


def _mark(
    weights: Floats, row: int, start: dt.date, day: dt.date, span: int, factor: float
) -> None:
    """Multiply ``span`` days from ``day`` by ``factor`` (ignoring days outside the window)."""
    lo = (day - start).days
    hi = lo + span
    lo, hi = max(lo, 0), min(hi, weights.shape[1])
    if lo < hi:
        weights[row, lo:hi] *= factor


def _promo(promos: Ints, row: int, start: dt.date, day: dt.date, span: int, code: int) -> None:
    lo = (day - start).days
    lo, hi = max(lo, 0), min(lo + span, promos.shape[1])
    if lo < hi:
        promos[row, lo:hi] = code


@lru_cache(maxsize=8)
def seasonality(start: dt.date, days: int) -> tuple[Floats, Ints]:
    """Daily purchase intensity (markets x days, mean about 1) and the promotion of each day.

    Cached because every block of people of one run shares the same window.
    """
    weights = np.ones((len(MARKET_CODES), days), dtype=np.float64)
    promos = np.zeros((len(MARKET_CODES), days), dtype=np.int64)
    weekday = (np.arange(days) + start.weekday()) % 7
    weights *= np.where(weekday >= 5, 1.12, np.where(weekday == 0, 0.95, 1.0))
    end = start + dt.timedelta(days=days)
    for row, code in enumerate(MARKET_CODES):
        for year in range(start.year, end.year + 1):
            if code in BFCM_MARKETS:
                bf = black_friday(year)
                _mark(weights, row, start, bf - dt.timedelta(days=7), 7, 1.6)
                _mark(weights, row, start, bf, 1, 5.0)
                _mark(weights, row, start, bf + dt.timedelta(days=1), 2, 3.0)
                _mark(weights, row, start, bf + dt.timedelta(days=3), 1, 4.0)
                _mark(weights, row, start, bf + dt.timedelta(days=4), 7, 1.4)
                _mark(weights, row, start, dt.date(year, 12, 1), 20, 1.5)
                _mark(weights, row, start, dt.date(year, 1, 1), 15, 0.8)
                _promo(promos, row, start, bf, 4, PROMO_BFCM)
            if code in RAMADAN_MARKETS and year in RAMADAN:
                first, eid = RAMADAN[year]
                _mark(weights, row, start, first, (eid - first).days, 1.5)
                _mark(weights, row, start, eid - dt.timedelta(days=10), 10, 1.7)
                _mark(weights, row, start, eid, 2, 0.5)
                _promo(promos, row, start, eid - dt.timedelta(days=10), 10, PROMO_RAMADAN)
            if code in DOUBLE_DAY_MARKETS:
                _mark(weights, row, start, dt.date(year, 9, 9), 1, 2.0)
                _mark(weights, row, start, dt.date(year, 10, 10), 1, 2.0)
                _mark(weights, row, start, dt.date(year, 11, 10), 3, 2.0)
                _mark(weights, row, start, dt.date(year, 11, 11), 1, 3.0)
                _mark(weights, row, start, dt.date(year, 12, 11), 3, 1.8)
                _mark(weights, row, start, dt.date(year, 12, 12), 1, 2.2)
                _promo(promos, row, start, dt.date(year, 11, 11), 1, PROMO_1111)
                _promo(promos, row, start, dt.date(year, 12, 12), 1, PROMO_1212)
            if code in SONGKRAN_MARKETS:
                _mark(weights, row, start, dt.date(year, 4, 8), 5, 2.0)
                _mark(weights, row, start, dt.date(year, 4, 13), 3, 1.5)
                _promo(promos, row, start, dt.date(year, 4, 8), 8, PROMO_SONGKRAN)
    weights /= weights.mean(axis=1, keepdims=True)
    weights.setflags(write=False)
    promos.setflags(write=False)
    return weights, promos


def cumulative(weights: Floats) -> Floats:
    """Cumulative intensity with a leading zero: column d is the mass of days [0, d)."""
    out = np.zeros((len(weights), weights.shape[1] + 1), dtype=np.float64)
    np.cumsum(weights, axis=1, out=out[:, 1:])
    return out


DAY_MS = 86_400_000
HISTORY_DAYS = 730

# Local hour-of-day profile of shopping and messaging (evenings and lunch breaks).
_HOURS = np.array(
    [2, 1, 0.6, 0.4, 0.3, 0.4, 1, 2, 3, 3.5, 4, 4.5, 5, 4.5, 4, 4, 4.2, 4.6, 5, 6, 7, 7.5, 6, 4],
    dtype=np.float64,
)
HOUR_CDF = np.cumsum(_HOURS) / _HOURS.sum()


@dataclass(frozen=True)
class Window:
    """The simulated history: ``HISTORY_DAYS`` days ending just before ``as_of`` (UTC)."""

    as_of: dt.date
    start: dt.date
    days: int
    start_ms: int
    end_ms: int  # midnight UTC at the start of as_of: every event is strictly earlier

    @classmethod
    def ending(cls, as_of: dt.date) -> Window:
        start = as_of - dt.timedelta(days=HISTORY_DAYS)
        epoch = dt.date(1970, 1, 1)
        start_ms = (start - epoch).days * DAY_MS
        return cls(as_of, start, HISTORY_DAYS, start_ms, start_ms + HISTORY_DAYS * DAY_MS)


def local_time_ms(window: Window, day: Ints, utc_offset: Ints, rng: np.random.Generator) -> Ints:
    """UTC milliseconds for a local calendar day (index in the window) at a typical local hour.

    A time that would fall on or after the end of the window moves one day earlier.
    """
    hour = np.searchsorted(HOUR_CDF, rng.random(len(day)), side="right")
    second = hour * 3600 + rng.integers(0, 3600, len(day))
    ms = window.start_ms + day * DAY_MS + (second - utc_offset * 3600) * 1000
    ms = ms + rng.integers(0, 1000, len(day))
    ms = np.where(ms >= window.end_ms, ms - DAY_MS, ms)
    return ms.astype(np.int64)


def day_of(window: Window, ms: Ints) -> Ints:
    """Window day index of UTC milliseconds (clipped into the window)."""
    return np.clip((ms - window.start_ms) // DAY_MS, 0, window.days - 1).astype(np.int64)
