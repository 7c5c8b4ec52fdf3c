"""From a transaction log to the per-customer summaries the buy-till-you-die models need.

Conventions (Fader, Hardie & Lee 2005, and the CDNOW analyses built on it):

- Purchases on the same calendar day are one transaction (their amounts add up). Dates are taken
  as given: convert them to the customer's or the brand's time zone before calling, if the day
  boundary matters.
- Each customer is observed from her own first purchase. ``frequency`` counts the *repeat*
  transactions up to and including the calibration end date, ``recency`` is the time from the
  first to the last of them (0 without repeats) and ``T`` the time from the first purchase to the
  calibration end date. Customers whose first purchase comes after that date are left out.
- ``monetary_value`` is the mean value of the repeat transactions (0 without repeats): the first
  purchase is excluded because its value differs systematically (Fader, Hardie & Lee 2005, "RFM
  and CLV", JMR 42(4); the Gamma-Gamma spend model is fitted on it).
- With ``holdout_end``: ``frequency_holdout`` counts the transactions in (calibration end,
  holdout end], ``monetary_value_holdout`` is their mean value (0 if none) and
  ``duration_holdout`` the length of that period (the same for every customer).

The database path computes the same columns with Ibis; these names are the shared contract.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from siyu.errors import InvalidInput

TimeUnit = Literal["D", "W"]
DAYS_PER_UNIT: dict[str, int] = {"D": 1, "W": 7}

SUMMARY_COLUMNS = ("frequency", "recency", "T", "monetary_value")
HOLDOUT_COLUMNS = ("frequency_holdout", "monetary_value_holdout", "duration_holdout")


def _day_numbers(values: pd.Series, name: str) -> np.ndarray:
    """Calendar day of each timestamp as an integer (days since 1970-01-01), local wall time.

    Accepts datetime columns (naive or time-zone aware) and ISO 8601 strings.
    """
    try:
        if pd.api.types.is_datetime64_any_dtype(values):
            stamps = pd.to_datetime(values)
        else:  # strings and objects: ISO 8601 only, parsed the same way for every row
            stamps = pd.to_datetime(values, format="ISO8601")
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"Column '{name}' has values that are not dates: {exc}", field=name
        ) from None
    if stamps.isna().any():
        raise InvalidInput(
            f"Column '{name}' has {int(stamps.isna().sum())} missing dates.", field=name
        )
    if stamps.dt.tz is not None:
        stamps = stamps.dt.tz_localize(None)
    return np.asarray(stamps.to_numpy().astype("datetime64[D]").astype(np.int64))


def _day_number(value: object, name: str) -> int:
    try:
        stamp = pd.Timestamp(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name} is not a date: {exc}", field=name) from None
    if stamp.tzinfo is not None:
        stamp = stamp.tz_localize(None)
    return int((stamp.normalize() - pd.Timestamp("1970-01-01")).days)


def rfm_summary(
    transactions: pd.DataFrame,
    *,
    calibration_end: object,
    holdout_end: object | None = None,
    time_unit: TimeUnit = "W",
    customer_id: str = "customer_id",
    date: str = "date",
    amount: str | None = "amount",
) -> pd.DataFrame:
    """Per-customer frequency, recency, T, monetary_value (and holdout columns), by customer id.

    ``calibration_end`` and ``holdout_end`` are dates (inclusive). ``time_unit`` 'D' or 'W' is
    the unit of recency, T and duration_holdout. Without an ``amount`` column the monetary
    columns are left out. Runs as a few sorted group-bys: no per-customer Python code.
    """
    if time_unit not in DAYS_PER_UNIT:
        raise InvalidInput(
            f"time_unit must be 'D' or 'W', got {time_unit!r}.",
            field="time_unit",
            hint="Use 'D' for days or 'W' for weeks; the models' parameters are in that unit.",
        )
    needed = [customer_id, date] + ([amount] if amount is not None else [])
    missing = [c for c in needed if c not in transactions.columns]
    if missing:
        raise InvalidInput(
            f"The transactions have no column(s) {missing}; "
            f"they have {list(transactions.columns)}.",
            field=missing[0],
            hint="Name the columns with the customer_id=, date= and amount= arguments.",
        )
    if transactions[customer_id].isna().any():
        raise InvalidInput(f"Column '{customer_id}' has missing customer ids.", field=customer_id)
    unit = float(DAYS_PER_UNIT[time_unit])
    cal_end = _day_number(calibration_end, "calibration_end")
    hold_end = None if holdout_end is None else _day_number(holdout_end, "holdout_end")
    if hold_end is not None and hold_end <= cal_end:
        raise InvalidInput("holdout_end must be after calibration_end.", field="holdout_end")

    frame = pd.DataFrame(
        {
            "customer": transactions[customer_id].to_numpy(),
            "day": _day_numbers(transactions[date], date),
        }
    )
    if amount is not None:
        values = pd.to_numeric(transactions[amount], errors="coerce").to_numpy(dtype=np.float64)
        if not np.isfinite(values).all():
            raise InvalidInput(
                f"Column '{amount}' has missing or non-numeric amounts.", field=amount
            )
        frame["amount"] = values
    else:
        frame["amount"] = 0.0
    # One transaction per customer and calendar day; sorted by customer, then day.
    daily = frame.groupby(["customer", "day"], sort=True)["amount"].sum().reset_index()

    calibration = daily[daily["day"] <= cal_end]
    per_customer = calibration.groupby("customer", sort=True).agg(
        first=("day", "min"),
        last=("day", "max"),
        n=("day", "size"),
        total=("amount", "sum"),
        first_amount=("amount", "first"),
    )
    frequency = per_customer["n"].to_numpy(dtype=np.float64) - 1.0
    repeat_total = (per_customer["total"] - per_customer["first_amount"]).to_numpy()
    summary = pd.DataFrame(
        {
            "frequency": frequency,
            "recency": (per_customer["last"] - per_customer["first"]).to_numpy() / unit,
            "T": (cal_end - per_customer["first"]).to_numpy() / unit,
            "monetary_value": np.divide(
                repeat_total, frequency, out=np.zeros_like(frequency), where=frequency > 0
            ),
        },
        index=pd.Index(per_customer.index, name=customer_id),
    )
    if hold_end is not None:
        holdout = daily[(daily["day"] > cal_end) & (daily["day"] <= hold_end)]
        counts = holdout.groupby("customer", sort=True)["amount"].agg(["size", "mean"])
        counts = counts.reindex(summary.index, fill_value=0)
        summary["frequency_holdout"] = counts["size"].to_numpy(dtype=np.float64)
        summary["monetary_value_holdout"] = counts["mean"].to_numpy(dtype=np.float64)
        summary["duration_holdout"] = (hold_end - cal_end) / unit
    if amount is None:
        summary = summary.drop(columns=[c for c in summary.columns if "monetary" in c])
    return summary
