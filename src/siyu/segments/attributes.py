"""The customer attributes tags are written over: profile, features, tiers, categories, consent.

Tag rules compare attributes (``tier == "loyal"``, ``spend_365 > 500``) and count events. This
module builds the one Ibis table with every attribute a built-in or user tag may use, and its
schema for the type checker. Category purchases are pivoted for the configured categories;
consent is the latest state per purpose and channel; loyalty and referral attributes come from
those programmes' tables (``programmes.py``), prediction scores from the predict slice.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime

import ibis
import ibis.expr.types as ir

from siyu.compute import WorkspaceTables
from siyu.predict import PREDICTION_SCHEMA, prediction_attributes
from siyu.segments.features import WINDOWS, customer_features, customer_features_columns
from siyu.segments.lang import DEFAULT_SCHEMA, AttrType, customer_attributes
from siyu.segments.programmes import PROGRAMME_SCHEMA, fill_programme, programme_parts

DEFAULT_CATEGORIES: tuple[str, ...] = ("baby", "beauty", "3C", "home", "apparel", "outdoor")
CONSENT_CHANNELS: tuple[str, ...] = ("email", "sms", "whatsapp")


def category_key(category: str) -> str:
    """Attribute-safe name of a category: '3C' -> '3c', 'Home & Garden' -> 'home_garden'."""
    return re.sub(r"[^a-z0-9]+", "_", category.lower()).strip("_")


def _category_purchases(t: WorkspaceTables, as_of: datetime, categories: Sequence[str]) -> ir.Table:
    o = t.orders
    lines = t.order_lines
    o = o.filter((o.placed_at <= ibis.literal(as_of)) & ~o.status.isin(["refunded", "cancelled"]))
    joined = lines.join(o, ["workspace_id", "order_id"]).select(
        "customer_id", "category", "placed_at"
    )
    recent = joined.placed_at > ibis.literal(as_of) - ibis.interval(days=365)
    aggs = {
        f"bought_{category_key(c)}_365": (recent & (joined.category == c)).ifelse(1, 0).sum()
        for c in categories
    }
    return joined.group_by("customer_id").aggregate(**aggs)


def _coupon_share(t: WorkspaceTables, as_of: datetime) -> ir.Table:
    o = t.orders
    o = o.filter(
        (o.placed_at <= ibis.literal(as_of))
        & (o.placed_at > ibis.literal(as_of) - ibis.interval(days=365))
    )
    with_coupon = (o.coupon.notnull() & (o.coupon != "")).ifelse(1.0, 0.0)
    return o.group_by("customer_id").aggregate(coupon_share_365=with_coupon.mean())


def _consent(t: WorkspaceTables, as_of: datetime) -> ir.Table:
    """Latest marketing consent status per channel, as booleans."""
    c = t.consents
    c = c.filter((c.timestamp <= ibis.literal(as_of)) & (c.purpose == "marketing"))
    latest = c.mutate(
        rank=ibis.row_number().over(
            group_by=["customer_id", "channel"], order_by=ibis.desc(c.timestamp)
        )
    ).filter(lambda x: x["rank"] == 0)
    aggs = {
        f"consent_{ch}": ((latest.channel == ch) & (latest.status == "granted")).ifelse(1, 0).max()
        for ch in CONSENT_CHANNELS
    }
    return latest.group_by("customer_id").aggregate(**aggs)


def tag_attributes(
    t: WorkspaceTables,
    as_of: datetime,
    categories: Sequence[str] = DEFAULT_CATEGORIES,
    *,
    features: ir.Table | None = None,
    current: ir.Table | None = None,
) -> ir.Table:
    """One row per customer known by ``as_of`` with every taggable attribute.

    ``features`` (``customer_features``) and ``current`` (tier and RFM per customer, default
    model) may be given when already computed in the same run; by default the features are
    computed here and the tiers read from the last stored segments run.
    """
    base = customer_attributes(t.customers, as_of)
    features = features if features is not None else customer_features(t, as_of)
    if current is None:
        current = t.customer_segments.filter(lambda s: s.model == "default")
    segment_columns = ("tier", "high_value", "r_score", "f_score", "m_score", "rfm_segment")
    feature_columns = customer_features_columns()[2:]  # without customer_id and country
    if current is features:
        # compute_all caches the features with the tiers and RFM beside them: one join.
        per_customer = [features.select("customer_id", *feature_columns, *segment_columns)]
    else:
        per_customer = [
            features.select("customer_id", *feature_columns),
            current.select("customer_id", *segment_columns),
        ]
    parts = [
        *per_customer,
        _category_purchases(t, as_of, categories),
        _coupon_share(t, as_of),
        _consent(t, as_of),
        prediction_attributes(t, as_of),
        *programme_parts(t, as_of),
    ]
    # One chain of left joins and one projection: Ibis resolves the columns once, instead of
    # once per join (building and compiling the expression took about a second more).
    joined = base
    for part in parts:
        joined = joined.left_join(part, base.customer_id == part.customer_id)
    table = joined.select(
        *[base[c] for c in base.columns],
        *[part[c] for part in parts for c in part.columns if c != "customer_id"],
    )
    table = fill_programme(table)
    fills = {
        f"bought_{category_key(c)}_365": table[f"bought_{category_key(c)}_365"].fill_null(0)
        for c in categories
    }
    fills |= {f"consent_{ch}": table[f"consent_{ch}"].fill_null(0) == 1 for ch in CONSENT_CHANNELS}
    return table.mutate(**fills)


def tag_schema(categories: Sequence[str] = DEFAULT_CATEGORIES) -> Mapping[str, AttrType]:
    """Types of the attributes of :func:`tag_attributes`, for the tag type checker."""
    schema: dict[str, AttrType] = dict(DEFAULT_SCHEMA)
    for name in ("orders_total", "interactions_30", "aov_365", "coupon_share_365"):
        schema[name] = "number"
    for days in WINDOWS:
        schema[f"orders_{days}"] = "number"
        schema[f"spend_{days}"] = "number"
    for name in (
        "days_since_last_order",
        "days_since_first_interaction",
        "days_since_last_interaction",
        "r_score",
        "f_score",
        "m_score",
    ):
        schema[name] = "number"
    for name in ("first_order_at", "last_order_at", "first_interaction_at", "last_interaction_at"):
        schema[name] = "timestamp"
    schema["tier"] = "string"
    schema["rfm_segment"] = "string"
    schema["high_value"] = "boolean"
    for c in categories:
        schema[f"bought_{category_key(c)}_365"] = "number"
    for ch in CONSENT_CHANNELS:
        schema[f"consent_{ch}"] = "boolean"
    schema.update(PREDICTION_SCHEMA)
    schema.update(PROGRAMME_SCHEMA)
    return schema
