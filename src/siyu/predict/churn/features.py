"""Point-in-time churn features and labels, set-based (Ibis) on the database in use.

Features of a customer as of a cut-off read only orders placed and events stamped at or before
the cut-off; labels read only the window after it. The population is every customer with at
least one valid order (not cancelled, not refunded in full) by the cut-off.

The label is the issue's definition of churn: no purchase and no interaction in the next
``horizon_days`` (90). An interaction is anything the customer did (track, page and screen
events), not what the brand did to her (messages sent, deliveries, bounces).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import ibis
import ibis.expr.types as ir

from siyu.compute import WorkspaceTables
from siyu.segments.features import own_act

#: Events that count as email sends for the open rate (opens / sends in 90 days).
EMAIL_SEND_EVENTS: tuple[str, ...] = ("Email Sent", "Email Delivered")
VISIT_EVENTS: tuple[str, ...] = ("Product Viewed", "Product List Viewed", "Products Searched")

#: The model's inputs, in order (names are also the explanation keys).
FEATURES: tuple[str, ...] = (
    "days_since_last_order",
    "days_since_first_order",
    "orders_total",
    "orders_90",
    "orders_365",
    "spend_365",
    "avg_cycle_days",
    "cycle_ratio",
    "days_since_last_interaction",
    "interactions_30",
    "interactions_90",
    "visit_days_30",
    "email_opens_90",
    "negative_30",
)


def _orders(t: WorkspaceTables) -> ir.Table:
    o = t.orders
    return o.filter(o.customer_id.notnull() & ~o.status.isin(["refunded", "cancelled"]))


def interactions(t: WorkspaceTables) -> ir.Table:
    """Events the customer did herself: not those about her (:data:`SYSTEM_EVENTS`: messages
    sent to her, siyu's own loyalty and fission events such as "Points Earned")."""
    e = t.events
    return e.filter(e.customer_id.notnull() & e.type.isin(["track", "page", "screen"]) & own_act(e))


def _negative(e: ir.Table) -> ir.BooleanValue:
    """A negative service interaction: a refund or cancellation, a review rated 2 or less, or a
    customer message tagged ``sentiment: negative`` by the help desk."""
    rating = e.properties["rating"].float
    sentiment = e.properties["sentiment"].str
    return (
        e.event.isin(["Order Refunded", "Order Cancelled"])
        | ((e.event == "Product Reviewed") & (rating <= 2)).fill_null(False)
        | ((e.event == "Message Received") & (sentiment == "negative")).fill_null(False)
    )


def churn_features(t: WorkspaceTables, as_of: datetime) -> ir.Table:
    """One row per buyer by ``as_of`` with :data:`FEATURES` (missing values are NULL)."""
    cut = ibis.literal(as_of, type="timestamp")
    cut_day = ibis.date(as_of.date())
    o = _orders(t)
    o = o.filter(o.placed_at <= cut)
    value = o.total_base.cast("float64") - o.refunded_base.cast("float64").fill_null(0.0)
    o = o.mutate(day=o.placed_at.date(), value=value)
    in_90 = o.placed_at > ibis.literal(as_of - timedelta(days=90), type="timestamp")
    in_365 = o.placed_at > ibis.literal(as_of - timedelta(days=365), type="timestamp")
    buyers = o.group_by("customer_id").aggregate(
        first_day=o.day.min(),
        last_day=o.day.max(),
        order_days=o.day.nunique(),
        orders_total=o.count(),
        orders_90=in_90.ifelse(1, 0).sum(),
        orders_365=in_365.ifelse(1, 0).sum(),
        spend_365=in_365.ifelse(o.value, 0.0).sum(),
    )
    e = interactions(t)
    e = e.filter(e.timestamp <= cut)
    since = e.group_by("customer_id").aggregate(last_interaction=e.timestamp.max().date())
    recent = e.filter(e.timestamp > ibis.literal(as_of - timedelta(days=90), type="timestamp"))
    in_30 = recent.timestamp > ibis.literal(as_of - timedelta(days=30), type="timestamp")
    visit = recent.type.isin(["page", "screen"]) | recent.event.isin(VISIT_EVENTS).fill_null(False)
    activity = recent.group_by("customer_id").aggregate(
        interactions_30=in_30.ifelse(1, 0).sum(),
        interactions_90=recent.count(),
        visit_days_30=(in_30 & visit).ifelse(recent.timestamp.date(), ibis.null("date")).nunique(),
        email_opens_90=(recent.event == "Email Opened").fill_null(False).ifelse(1, 0).sum(),
        negative_30=(in_30 & _negative(recent)).ifelse(1, 0).sum(),
    )
    sends = t.events.filter(
        (t.events.timestamp <= cut)
        & (t.events.timestamp > ibis.literal(as_of - timedelta(days=90), type="timestamp"))
        & t.events.event.isin(EMAIL_SEND_EVENTS)
        & t.events.customer_id.notnull()
    )
    sent = sends.group_by("customer_id").aggregate(email_sends_90=sends.count())
    table = buyers
    for part in (since, activity, sent):
        table = table.left_join(part, "customer_id").drop("customer_id_right")
    cycle = (table.order_days > 1).ifelse(
        table.last_day.delta(table.first_day, unit="day").cast("float64")
        / (table.order_days - 1).cast("float64"),
        ibis.null("float64"),
    )
    recency = cut_day.delta(table.last_day, unit="day").cast("float64")
    return table.select(
        "customer_id",
        days_since_last_order=recency,
        days_since_first_order=cut_day.delta(table.first_day, unit="day").cast("float64"),
        orders_total=table.orders_total.cast("float64"),
        orders_90=table.orders_90.cast("float64"),
        orders_365=table.orders_365.cast("float64"),
        spend_365=table.spend_365.cast("float64"),
        avg_cycle_days=cycle,
        cycle_ratio=recency / cycle,
        days_since_last_interaction=cut_day.delta(table.last_interaction, unit="day").cast(
            "float64"
        ),
        interactions_30=table.interactions_30.fill_null(0).cast("float64"),
        interactions_90=table.interactions_90.fill_null(0).cast("float64"),
        visit_days_30=table.visit_days_30.fill_null(0).cast("float64"),
        email_opens_90=table.email_opens_90.fill_null(0).cast("float64"),
        negative_30=table.negative_30.fill_null(0).cast("float64"),
        email_sends_90=table.email_sends_90.fill_null(0).cast("float64"),
    )


def churn_labels(t: WorkspaceTables, as_of: datetime, horizon_days: int = 90) -> ir.Table:
    """``customer_id, churned`` for the buyers by ``as_of``: no order and no interaction in
    (as_of, as_of + horizon_days]."""
    start = ibis.literal(as_of, type="timestamp")
    end = ibis.literal(as_of + timedelta(days=horizon_days), type="timestamp")
    o = _orders(t)
    population = o.filter(o.placed_at <= start).select("customer_id").distinct()
    bought = o.filter((o.placed_at > start) & (o.placed_at <= end)).select("customer_id")
    e = interactions(t)
    acted = e.filter((e.timestamp > start) & (e.timestamp <= end)).select("customer_id")
    active = bought.union(acted, distinct=True).mutate(active=ibis.literal(True))
    joined = population.left_join(active, "customer_id").drop("customer_id_right")
    return joined.select("customer_id", churned=joined.active.isnull())
