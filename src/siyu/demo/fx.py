"""Daily FX rates for the demo's currencies: a deterministic, mean-reverting random walk.

Orders carry their own currency; analytics converts them to the workspace base currency with the
rate of the order's day, so the demo needs a rate for every day of its history. Each rate wanders
around a realistic level (log Ornstein-Uhlenbeck, so it never drifts to nonsense over two years);
the Saudi riyal is pegged and barely moves. The walk runs backwards from ``as_of``, so a longer
``days`` extends the same series into the past instead of changing it.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from siyu.demo.markets import MARKETS, PROFILES
from siyu.errors import InvalidInput

BASE_CURRENCY = "USD"
_FX_STREAM = 1 << 20  # spawn key namespace apart from the blocks of people
_PHI = 0.995  # daily mean reversion of the log rate


def fx_currencies() -> list[tuple[str, float, float]]:
    """(currency, level, daily volatility) for every market currency except USD, once each."""
    seen: dict[str, tuple[float, float]] = {}
    for market, profile in zip(MARKETS, PROFILES, strict=True):
        if market.currency != BASE_CURRENCY:
            seen.setdefault(market.currency, (profile.fx_level, profile.fx_vol))
    return [(code, level, vol) for code, (level, vol) in seen.items()]


def fx_rates(as_of: dt.date, seed: int, days: int) -> pa.Table:
    """Daily rates (USD per unit) for the ``days`` days ending on ``as_of`` (inclusive)."""
    if days < 1:
        raise InvalidInput(f"days must be at least 1, got {days}.", field="days")
    if seed < 0:
        raise InvalidInput(f"seed must be zero or positive, got {seed}.", field="seed")
    currencies = fx_currencies()
    rate_cols: list[npt.NDArray[np.float64]] = []
    for index, (_, level, vol) in enumerate(currencies):
        rng = np.random.Generator(
            np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(_FX_STREAM, index)))
        )
        shocks = rng.normal(0.0, vol, days)
        log_dev = np.empty(days)
        log_dev[0] = shocks[0] / np.sqrt(1 - _PHI**2)  # stationary start at as_of
        for t in range(1, days):  # backwards in time: index t is as_of - t days
            log_dev[t] = _PHI * log_dev[t - 1] + shocks[t]
        rates = np.round(level * np.exp(log_dev[::-1]), 10)
        rate_cols.append(rates)
    first = as_of - dt.timedelta(days=days - 1)
    day_list = [first + dt.timedelta(days=d) for d in range(days)]
    n = len(currencies)
    rate = np.stack(rate_cols, axis=1).ravel()  # day-major: all currencies of a day together
    return pa.table(
        {
            "day": pa.array([d for d in day_list for _ in range(n)], type=pa.date32()),
            "currency": pa.array([code for _ in day_list for code, _, _ in currencies]),
            "base_currency": pa.array([BASE_CURRENCY] * (days * n)),
            "rate": pa.array(rate, type=pa.float64()),
        }
    )
