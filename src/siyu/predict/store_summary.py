"""The calibration summary straight from the order store, set-based (Ibis).

Same contract as :func:`siyu.predict.summary.rfm_summary` (columns frequency, recency, T,
monetary_value, and the holdout columns), computed by the database in use: orders that were
cancelled or refunded in full are left out, values are net of refunds in the base currency, and
purchases on the same UTC calendar day are one transaction.

Per customer it needs the number of distinct days with an order, the first and last of them, the
total value and the first day's value (the first transaction is not a repeat purchase). The plain
way is two group-bys, per (customer, day) and then per customer; the first one has about as many
groups as there are orders, which makes it most of the cost (5.5 s CPU for 20M orders of 1M
customers on DuckDB). On DuckDB the days are instead counted in one pass per customer as the
bits set in a bitstring over the observed range of days (``bit_count(bitstring_agg(day))``,
exact), and the first day's value comes from a join of the orders with each customer's first day:
3.2 s for the same data (measured 2026-12-06). PostgreSQL has no bitstring aggregate and keeps the
two group-bys.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from siyu.compute import WorkspaceTables
from siyu.errors import InvalidInput
from siyu.predict.summary import DAYS_PER_UNIT, TimeUnit

#: The longest range of order days (about 11 years) counted with a bitstring per customer on
#: DuckDB: the aggregate holds one bit per day of the range for every customer while it runs
#: (500 bytes each here, 500 MB for a million customers). Longer histories use the two group-bys.
MAX_BITSTRING_DAYS = 4000


@ibis.udf.agg.builtin(name="bitstring_agg")  # type: ignore[untyped-decorator]
def _bitstring_agg(value: int, low: int, high: int) -> str:  # type: ignore[empty-body]
    """DuckDB: a bitstring with bit ``value - low`` set for every value in the group."""


@ibis.udf.agg.builtin(name="arg_min")  # type: ignore[untyped-decorator]
def _first_values(value: float, order: datetime, n: int) -> dt.Array(dt.float64):  # type: ignore[valid-type]
    """DuckDB: the values of the ``n`` rows with the smallest ``order``, in that order."""


@ibis.udf.agg.builtin(name="arg_min")  # type: ignore[untyped-decorator]
def _first_days(value: date, order: datetime, n: int) -> dt.Array(dt.date):  # type: ignore[valid-type]
    """DuckDB: the days of the ``n`` rows with the smallest ``order``, in that order."""


@ibis.udf.scalar.builtin(name="bit_count")  # type: ignore[untyped-decorator]
def _bit_count(bits: str) -> int:  # type: ignore[empty-body]
    """DuckDB: the number of bits set."""


def _days(later: ir.DateValue, earlier: ir.DateValue) -> ir.IntegerValue:
    return later.delta(earlier, unit="day")


def _orders(t: WorkspaceTables, until: date | None = None) -> ir.Table:
    """The orders that count, one row each: (customer_id, day, value); up to the day ``until``.

    The cut-off is a comparison of ``placed_at`` itself, not of its date: DuckDB then filters in
    the table scan (comparing the cast date cost 5.6 s CPU instead of 3.5 s for the summary of
    20M orders, measured 2026-12-06).
    """
    o = t.orders
    o = o.filter(o.customer_id.notnull() & ~o.status.isin(["refunded", "cancelled"]))
    if until is not None:
        o = o.filter(o.placed_at < ibis.timestamp(until + timedelta(days=1)))
    value = o.total_base.cast("float64") - o.refunded_base.cast("float64").fill_null(0.0)
    return o.select("customer_id", "placed_at", day=o.placed_at.date(), value=value)


def daily_transactions(t: WorkspaceTables) -> ir.Table:
    """One row per customer and UTC day with an order: (customer_id, day, amount).

    Cancelled and fully refunded orders are left out; amounts are net of refunds in the base
    currency.
    """
    o = _orders(t)
    return o.group_by(["customer_id", "day"]).aggregate(amount=lambda x: x.value.sum())


def _per_customer(t: WorkspaceTables, calibration_end: date) -> ir.Table:
    """customer_id, n_days, first_day, last_day, total, first_total over the calibration period."""
    # Every customer kept has her first purchase on or before the cut-off, so her first day and
    # its amount are found among the calibration days: no join back to later orders.
    calib = _orders(t, calibration_end)
    first = _first_order_day(t, calib)
    if first is not None and (calibration_end - first).days <= MAX_BITSTRING_DAYS:
        offset = _days(calib.day, ibis.date(first))
        per = calib.group_by("customer_id").aggregate(
            n_days=_bit_count(_bitstring_agg(offset, 0, (calibration_end - first).days)),
            last_day=calib.day.max(),
            first_day=calib.day.min(),
            total=calib.value.sum(),
        )
        starts = per.select(first_customer="customer_id", start="first_day")
        on_first = calib.join(
            starts, (calib.customer_id == starts.first_customer) & (calib.day == starts.start)
        )
        first_total = on_first.group_by("first_customer").aggregate(
            first_total=on_first.value.sum()
        )
        joined = per.join(first_total, per.customer_id == first_total.first_customer)
        return joined.select(
            "customer_id", "n_days", "last_day", "first_day", "total", "first_total"
        )
    daily = calib.group_by(["customer_id", "day"]).aggregate(amount=calib.value.sum())
    return daily.group_by("customer_id").aggregate(
        n_days=daily.count(),
        last_day=daily.day.max(),
        first_day=daily.day.min(),
        total=daily.amount.sum(),
        first_total=daily.amount.argmin(daily.day),
    )


def _first_order_day(t: WorkspaceTables, calib: ir.Table) -> date | None:
    """On DuckDB, the first day of any order counted (one quick scan); None elsewhere or if none."""
    if ibis.get_backend(calib).name != "duckdb":
        return None
    first = t.execute(calib.day.min())
    return None if first is None or first != first else date.fromisoformat(str(first)[:10])


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
    cal_end = ibis.date(calibration_end)
    summary = _per_customer(t, calibration_end)
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
    daily = daily_transactions(t)
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


#: Orders per customer read in date order by :func:`calibration_summary_arrow` to find the first
#: day's value; a customer with that many orders on her first day is summed by a second query.
FIRST_ORDERS = 3


def calibration_summary_arrow(
    t: WorkspaceTables, *, calibration_end: date, time_unit: TimeUnit = "W"
) -> pa.Table:
    """:func:`calibration_summary` (without holdout) as an Arrow table, faster on DuckDB.

    The first day's value is the one thing a single pass per customer cannot sum. Joining the
    orders back to each customer's first day costs more than the pass itself (2.5 of 4.1 s CPU
    at 20M orders); instead the pass also keeps each customer's first three orders (value and
    day, DuckDB's ``arg_min(value, placed_at, 3)``), whose values on the first day add up to it,
    unless all three are on that day: those few customers are summed by a second, small query
    (2.6 s CPU for the same data, measured 2026-12-06). Elsewhere the expression is run.
    """
    if time_unit not in DAYS_PER_UNIT:
        raise InvalidInput(f"time_unit must be 'D' or 'W', got {time_unit!r}.", field="time_unit")
    calib = _orders(t, calibration_end)
    first = _first_order_day(t, calib)
    if first is None or (calibration_end - first).days > MAX_BITSTRING_DAYS:
        return calibration_summary(
            t, calibration_end=calibration_end, time_unit=time_unit
        ).to_pyarrow()
    offset = _days(calib.day, ibis.date(first))
    per = (
        calib.group_by("customer_id")
        .aggregate(
            n_days=_bit_count(_bitstring_agg(offset, 0, (calibration_end - first).days)),
            last_day=calib.day.max(),
            first_day=calib.day.min(),
            total=calib.value.sum(),
            first_values=_first_values(calib.value, calib.placed_at, FIRST_ORDERS),
            first_days=_first_days(calib.day, calib.placed_at, FIRST_ORDERS),
        )
        .to_pyarrow()
    )
    epoch = np.datetime64("1970-01-01", "D")
    first_day = (per["first_day"].to_numpy().astype("datetime64[D]") - epoch).astype(np.int64)
    last_day = (per["last_day"].to_numpy().astype("datetime64[D]") - epoch).astype(np.int64)
    # The first day's value from the first orders: those on the first day, summed per customer
    # (an order without a base-currency value adds nothing, as SQL's SUM skips it).
    values, days = per["first_values"].combine_chunks(), per["first_days"].combine_chunks()
    owner = pc.list_parent_indices(values).to_numpy()
    listed_days = pc.list_flatten(days).cast(pa.int32()).to_numpy().astype(np.int64)
    on_first = listed_days == first_day[owner]
    first_total = np.bincount(
        owner,
        weights=np.where(on_first, pc.fill_null(pc.list_flatten(values), 0.0).to_numpy(), 0.0),
        minlength=per.num_rows,
    )
    full = np.bincount(owner, weights=on_first, minlength=per.num_rows) >= FIRST_ORDERS
    if full.any():
        first_total[full] = _first_day_totals(calib, per["customer_id"].filter(pa.array(full)))
    n_days = per["n_days"].to_numpy().astype(np.int64)
    frequency = n_days - 1
    unit = float(DAYS_PER_UNIT[time_unit])
    end_day = (np.datetime64(calibration_end, "D") - epoch).astype(np.int64)
    repeat_total = per["total"].to_numpy() - first_total
    return pa.table(
        {
            "customer_id": per["customer_id"],
            "frequency": frequency,
            "recency": (last_day - first_day) / unit,
            "T": (end_day - first_day) / unit,
            "monetary_value": np.divide(
                repeat_total,
                frequency,
                out=np.zeros(per.num_rows),
                where=frequency > 0,
            ),
        }
    )


def _first_day_totals(calib: ir.Table, customers: pa.Array) -> np.ndarray:
    """The first day's total value of each of ``customers`` (in that order), by a join."""
    wanted = ibis.memtable(pa.table({"wanted": customers, "position": np.arange(len(customers))}))
    mine = calib.join(wanted, calib.customer_id == wanted.wanted)
    days = mine.group_by(["position", "day"]).aggregate(amount=mine.value.sum())
    per = days.group_by("position").aggregate(first=days.amount.argmin(days.day)).to_pyarrow()
    out = np.zeros(len(customers))
    out[per["position"].to_numpy()] = per["first"].to_numpy()
    return out
