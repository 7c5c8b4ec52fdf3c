"""Per-customer features at a point in time, as one Ibis expression.

RFM, lifecycle tiers and tags all read the same few aggregates: first and last interaction,
purchases and spend in rolling windows, interactions in the last 30 days. They are computed here
once, set-based, for every customer of a workspace, "as of" a timestamp so that history can be
recomputed and tests can pin the clock.

Windows: "in the last N days" means ``as_of - N days < timestamp <= as_of``; "days since" is
the whole number of days between the event and ``as_of``. Orders count when not cancelled or
fully refunded; spend is the order's base-currency value net of refunds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import ibis
import ibis.expr.types as ir

from siyu.collect.ecommerce import SYSTEM_EVENTS
from siyu.compute import WorkspaceTables

WINDOWS = (30, 60, 90, 365)
#: The per-customer columns taken as they are; the counts and spends below are zero-filled.
_DATED_COLUMNS = (
    "customer_id",
    "country",
    "first_order_at",
    "last_order_at",
    "first_interaction_at",
    "last_interaction_at",
)
_COUNT_COLUMNS = ("orders_total", *[f"orders_{d}" for d in WINDOWS], "interactions_30")


def days_between(earlier: ir.TimestampValue, as_of: datetime) -> ir.IntegerValue:
    """Whole days from ``earlier`` to ``as_of`` (floor), the same on every engine."""
    seconds = ibis.literal(as_of).epoch_seconds() - earlier.epoch_seconds()
    return (seconds / 86_400).floor().cast("int64")


def _in_last(ts: ir.TimestampValue, as_of: datetime, days: int) -> ir.BooleanValue:
    return (ts > ibis.literal(as_of) - ibis.interval(days=days)) & (ts <= ibis.literal(as_of))


def order_features(t: WorkspaceTables, as_of: datetime) -> ir.Table:
    """Purchases per customer: counts and net spend by window, first and last order."""
    o = t.orders
    o = o.filter(
        o.customer_id.notnull()
        & (o.placed_at <= ibis.literal(as_of))
        & ~o.status.isin(["refunded", "cancelled"])
    )
    net = (o.total_base.cast("float64") - o.refunded_base.cast("float64").fill_null(0.0)).fill_null(
        0.0
    )
    o = o.mutate(net=net)
    aggs: dict[str, Any] = {
        "first_order_at": o.placed_at.min(),
        "last_order_at": o.placed_at.max(),
        "orders_total": o.count(),
    }
    for days in WINDOWS:
        inside = _in_last(o.placed_at, as_of, days)
        aggs[f"orders_{days}"] = inside.ifelse(1, 0).sum()
        aggs[f"spend_{days}"] = inside.ifelse(o.net, 0.0).sum()
    return o.group_by("customer_id").aggregate(**aggs)


def own_act(e: ir.Table) -> ir.BooleanValue:
    """Whether an event is one the customer did, not one about her (:data:`SYSTEM_EVENTS`: a
    message sent to her, points credited or expired), which siyu stores on her too."""
    return e.event.isnull() | ~e.event.isin(SYSTEM_EVENTS)


def event_features(t: WorkspaceTables, as_of: datetime) -> ir.Table:
    """Interactions per customer: first, last, and the number in the last 30 days.

    An interaction is an :func:`own_act`: otherwise the brand's own win-back message or a
    points expiry would keep a lapsed customer out of "churned" and in "active in 30 days".
    """
    e = t.events
    e = e.filter(e.customer_id.notnull() & (e.timestamp <= ibis.literal(as_of)) & own_act(e))
    return e.group_by("customer_id").aggregate(
        first_interaction_at=e.timestamp.min(),
        last_interaction_at=e.timestamp.max(),
        interactions_30=_in_last(e.timestamp, as_of, 30).ifelse(1, 0).sum(),
    )


def customer_features(t: WorkspaceTables, as_of: datetime) -> ir.Table:
    """One row per customer seen by ``as_of``, with order and interaction features."""
    c = t.customers
    c = c.filter(c.first_seen_at <= ibis.literal(as_of)).select("customer_id", "country")
    orders = order_features(t, as_of)
    events = event_features(t, as_of)
    joined = c.left_join(orders, "customer_id").left_join(events, "customer_id")
    zero_filled = {name: joined[name].fill_null(0) for name in _COUNT_COLUMNS}
    zero_filled |= {f"spend_{d}": joined[f"spend_{d}"].fill_null(0.0) for d in WINDOWS}
    out = joined.select(*_DATED_COLUMNS, **zero_filled)
    return out.mutate(
        days_since_last_order=days_between(out.last_order_at, as_of),
        days_since_first_interaction=days_between(out.first_interaction_at, as_of),
        days_since_last_interaction=days_between(out.last_interaction_at, as_of),
        aov_365=(out.orders_365 > 0).ifelse(out.spend_365 / out.orders_365, ibis.null()),
    )


def customer_features_columns() -> list[str]:
    """The columns of :func:`customer_features`, in order (without building the expression)."""
    return [
        *_DATED_COLUMNS,
        *_COUNT_COLUMNS,
        *[f"spend_{d}" for d in WINDOWS],
        "days_since_last_order",
        "days_since_first_interaction",
        "days_since_last_interaction",
        "aov_365",
    ]
