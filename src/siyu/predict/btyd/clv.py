"""Customer lifetime value: expected purchases times expected spend, discounted by month.

The discounted-cash-flow form of lifetimes' ``GammaGammaFitter.customer_lifetime_value``:

    CLV = sum over months i = 1..H of  E[spend] * (E[Y(i u)] - E[Y((i-1) u)]) / (1 + d)^i,

where E[Y(t)] is the transaction model's conditional expected number of purchases in the next t
time units, u the number of time units in a month and d the monthly discount rate. Spend comes
from the Gamma-Gamma model (Fader, Hardie & Lee 2005, "RFM and CLV", assume spend independent
of the purchase process, which is what makes the product an expectation).

A month is 365.25/12 days (30.44 days, 4.348 weeks); lifetimes uses 30 days and 4.345 weeks, so
its values differ by up to ~1.5% for the same parameters.
"""

from __future__ import annotations

from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from siyu.errors import InvalidInput
from siyu.predict.btyd.data import FloatArray, as_array

UNITS_PER_MONTH: dict[str, float] = {"D": 365.25 / 12, "W": 365.25 / 12 / 7}


class PurchaseModel(Protocol):
    """A fitted transaction model (BetaGeoFitter, ParetoNBDFitter)."""

    def conditional_expected_purchases(
        self,
        t: npt.ArrayLike,
        frequency: npt.ArrayLike,
        recency: npt.ArrayLike,
        T: npt.ArrayLike,  # noqa: N803
    ) -> FloatArray: ...


class SpendModel(Protocol):
    """A fitted spend model (GammaGammaFitter)."""

    def conditional_expected_average_profit(
        self, frequency: npt.ArrayLike, monetary_value: npt.ArrayLike
    ) -> FloatArray: ...


def check_clv_arguments(months: int, discount_rate: float, time_unit: str) -> None:
    """:class:`InvalidInput` unless months >= 1 is whole, discount_rate > -1 and the unit known."""
    if not (isinstance(months, int) and months >= 1):
        raise InvalidInput(f"months must be a whole number >= 1, got {months!r}.", field="months")
    if not (np.isfinite(discount_rate) and discount_rate > -1.0):
        raise InvalidInput(
            f"discount_rate must be a number > -1, got {discount_rate!r}.", field="discount_rate"
        )
    if time_unit not in UNITS_PER_MONTH:
        raise InvalidInput(f"time_unit must be 'D' or 'W', got {time_unit!r}.", field="time_unit")


def customer_lifetime_value(
    transaction_model: PurchaseModel,
    spend_model: SpendModel,
    frequency: npt.ArrayLike,
    recency: npt.ArrayLike,
    T: npt.ArrayLike,  # noqa: N803
    monetary_value: npt.ArrayLike,
    *,
    months: int = 12,
    discount_rate: float = 0.01,
    time_unit: Literal["D", "W"] = "W",
) -> FloatArray:
    """Discounted expected value of each customer's purchases over the next ``months`` months.

    ``time_unit`` is the unit of recency and T (and so of the fitted transaction model).
    ``discount_rate`` is per month (0.01 is about 12.7% a year).
    """
    check_clv_arguments(months, discount_rate, time_unit)
    x = as_array(frequency, "frequency", allow_empty=True)
    spend = spend_model.conditional_expected_average_profit(
        x, as_array(monetary_value, "monetary_value", allow_empty=True)
    )
    # Expected cumulative purchases at every month end, all customers at once: shape (H+1, n).
    month_ends = np.arange(months + 1, dtype=np.float64)[:, None] * UNITS_PER_MONTH[time_unit]
    cumulative = transaction_model.conditional_expected_purchases(month_ends, x, recency, T)
    per_month = np.diff(np.broadcast_to(cumulative, (months + 1, x.size)), axis=0)
    discount = (1.0 + discount_rate) ** -np.arange(1, months + 1, dtype=np.float64)
    out: FloatArray = spend * np.einsum("i,ij->j", discount, per_month)
    return out
