"""The calibration summary straight from the order store, set-based (Ibis).

Same contract as :func:`siyu.predict.summary.rfm_summary` (columns frequency, recency, T,
monetary_value, and the holdout columns), computed by the database in use: orders that were
cancelled or refunded in full are left out, values are net of refunds in the base currency, and
purchases on the same UTC calendar day are one transaction.
"""

from __future__ import annotations

from datetime import date

import ibis
import ibis.expr.types as ir

from siyu.compute import WorkspaceTables
from siyu.errors import InvalidInput
from siyu.predict.summary import DAYS_PER_UNIT, TimeUnit


def _days(later: ir.DateValue, earlier: ir.DateValue) -> ir.IntegerValue:
    return later.delta(earlier, unit="day")


def daily_transactions(t: WorkspaceTables) -> ir.Table:
    """One row per customer and UTC day with an order: (customer_id, day, amount).

    Cancelled and fully refunded orders are left out; amounts are net of refunds in the base
    currency.
    """
    o = t.orders
    o = o.filter(o.customer_id.notnull() & ~o.status.isin(["refunded", "cancelled"]))
    value = o.total_base.cast("float64") - o.refunded_base.cast("float64").fill_null(0.0)
    return (
        o.mutate(day=o.placed_at.date(), value=value)
        .group_by(["customer_id", "day"])
        .aggregate(amount=lambda x: x.value.sum())
    )


def calibration_summary(
    t: WorkspaceTables,
    *,
    calibration_end: date,
    holdout_end: date | None = None,
    time_unit: TimeUnit = "W",
) -> ir.Table:
    """Per customer who bought by ``calibration_end``: frequency, recency, T, monetary_value."""
    if time_unit not in DAYS_PER_UNIT:
        raise InvalidInput(f"time_unit must be 'D' or 'W', got {time_unit!r}.", field="time_unit")
    if holdout_end is not None and holdout_end <= calibration_end:
        raise InvalidInput("holdout_end must come after calibration_end.", field="holdout_end")
    unit = float(DAYS_PER_UNIT[time_unit])
    daily = daily_transactions(t)
    cal_end = ibis.date(calibration_end)
    # Every customer kept has her first purchase on or before the cut-off, so her first day and
    # its amount are found among the calibration days: one group-by, no join back.
    calib = daily.filter(daily.day <= cal_end)
    summary = calib.group_by("customer_id").aggregate(
        n_days=calib.count(),
        last_day=calib.day.max(),
        first_day=calib.day.min(),
        total=calib.amount.sum(),
        first_total=calib.amount.argmin(calib.day),
    )
    frequency = summary.n_days - 1
    result = summary.select(
        "customer_id",
        frequency=frequency,
        recency=_days(summary.last_day, summary.first_day) / unit,
        T=_days(cal_end, summary.first_day) / unit,
        monetary_value=(frequency > 0).ifelse(
            (summary.total - summary.first_total) / frequency, 0.0
        ),
    )
    if holdout_end is None:
        return result
    hold = daily.filter((daily.day > cal_end) & (daily.day <= ibis.date(holdout_end)))
    holdout = hold.group_by("customer_id").aggregate(
        frequency_holdout=hold.count(), monetary_value_holdout=hold.amount.mean()
    )
    joined = result.left_join(holdout, "customer_id").drop("customer_id_right")
    return joined.mutate(
        frequency_holdout=joined.frequency_holdout.fill_null(0),
        monetary_value_holdout=joined.monetary_value_holdout.fill_null(0.0),
        duration_holdout=ibis.literal((holdout_end - calibration_end).days / unit),
    )
