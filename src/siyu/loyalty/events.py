"""Every loyalty state change also becomes an event in the event log, through the pipeline.

State changes are committed first (ledger rows, tier changes, membership periods, coupons,
redemptions); each has a deterministic message id (``loy-`` + md5 of workspace and key), so
:func:`publish` can find, set-based, the changes whose event is not in the log yet and send them
through ``Pipeline.ingest`` (no side door). A crash between the two is repaired by the next
publish (``siyu loyalty sync`` publishes everything pending); the pipeline deduplicates by message
id, so concurrent publishers never store an event twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from siyu.access.workspaces import get_workspace_by_id
from siyu.collect import Pipeline
from siyu.config import Settings, load_settings
from siyu.identity.subject import SUBJECT_COLUMNS, Sender, ingest_as, sender_of, subject_join
from siyu.store.database import Database

POINTS_EVENTS = {
    "earn": "Points Earned",
    "redeem": "Points Redeemed",
    "expire": "Points Expired",
    "reverse": "Points Reversed",
}

LOYALTY_EVENTS: dict[str, str] = {
    "Points Earned": "Points were credited (points, reason, reference, expires_at).",
    "Points Redeemed": "Points were spent (points, reason, reference).",
    "Points Expired": "A lot of points expired (points, lot).",
    "Points Reversed": "Points were clawed back after a refund (points, shortfall, order_id).",
    "Member Tier Changed": "The member tier changed (from_tier, to_tier, rule, growth_value).",
    "Membership Started": "A paid membership began (plan_id, starts_at, ends_at, amount).",
    "Membership Renewed": "A paid membership was extended (plan_id, ends_at, amount).",
    "Membership Lapsed": "A paid membership ended without renewal (plan_id).",
    "Membership Cancelled": "A paid membership was cancelled (plan_id).",
    "Coupon Issued": "A coupon code was issued (code, campaign_id, description, expires_at).",
    "Coupon Redeemed": "A coupon was used on an order (code, order_id, discount, currency).",
}


def _mid(key_sql: str) -> str:
    return f"'loy-' || md5(:ws || ':' || {key_sql})"


def _sources(customer_filter: str) -> list[tuple[str, str]]:
    """(kind, SQL) per state-change table; each row: mid, customer_id, ts, and properties."""
    return [
        (
            "points",
            f"""
            SELECT {_mid("l.idempotency_key")} AS mid, min(l.customer_id) AS customer_id,
                   min(l.created_at) AS ts, min(l.kind) AS kind, sum(l.amount) AS points,
                   sum(l.shortfall) AS shortfall, min(l.reason) AS reason,
                   min(l.reference) AS reference, max(l.expires_at) AS expires_at,
                   l.idempotency_key AS key
            FROM points_ledger l
            WHERE l.workspace_id = :ws {customer_filter.format(t="l")}
            GROUP BY l.idempotency_key
            """,
        ),
        (
            "tier",
            f"""
            SELECT {_mid("'tier:' || t.change_id")} AS mid, t.customer_id, t.changed_at AS ts,
                   t.from_tier, t.to_tier, t.rule, t.growth_value
            FROM tier_changes t
            WHERE t.workspace_id = :ws {customer_filter.format(t="t")}
            """,
        ),
        (
            "membership",
            f"""
            SELECT {_mid("'membership:' || p.idempotency_key")} AS mid, p.customer_id,
                   p.created_at AS ts, p.kind, p.plan_id, p.starts_at, p.ends_at, p.amount,
                   p.currency, p.reference
            FROM membership_periods p
            WHERE p.workspace_id = :ws {customer_filter.format(t="p")}
            """,
        ),
        (
            "coupon",
            f"""
            SELECT {_mid("'coupon:' || c.code")} AS mid, c.customer_id, c.issued_at AS ts,
                   c.code, c.campaign_id, c.spec, c.expires_at
            FROM coupons c
            WHERE c.workspace_id = :ws AND c.customer_id IS NOT NULL
                  {customer_filter.format(t="c")}
            """,
        ),
        (
            "redemption",
            f"""
            SELECT {_mid("'redemption:' || r.code || ':' || r.order_id")} AS mid, r.customer_id,
                   r.redeemed_at AS ts, r.code, r.order_id, r.campaign_id, r.discount,
                   r.currency
            FROM coupon_redemptions r
            WHERE r.workspace_id = :ws AND r.status = 'redeemed' AND r.customer_id IS NOT NULL
                  {customer_filter.format(t="r")}
            """,
        ),
    ]


MEMBERSHIP_EVENTS = {
    "start": "Membership Started",
    "renew": "Membership Renewed",
    "lapse": "Membership Lapsed",
    "cancel": "Membership Cancelled",
}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        return value.isoformat() + "Z"
    return value


def _event(kind: str, row: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if kind == "points":
        props = {
            "points": int(row["points"]),
            "reason": row["reason"],
            "reference": row["reference"],
            "idempotency_key": row["key"],
        }
        if row["kind"] == "earn":
            props["expires_at"] = row["expires_at"]
        if row["kind"] == "reverse":
            props["shortfall"] = int(row["shortfall"])
        return POINTS_EVENTS[row["kind"]], props
    if kind == "tier":
        tier_keys = ("from_tier", "to_tier", "rule", "growth_value")
        return "Member Tier Changed", {k: row[k] for k in tier_keys}
    if kind == "membership":
        plan_keys = ("plan_id", "starts_at", "ends_at", "amount", "currency", "reference")
        return MEMBERSHIP_EVENTS[row["kind"]], {k: row[k] for k in plan_keys}
    if kind == "coupon":
        from siyu.loyalty.coupons import CouponSpec

        spec = CouponSpec.model_validate(row["spec"])
        props = {k: row[k] for k in ("code", "campaign_id", "expires_at")}
        return "Coupon Issued", {**props, "description": spec.describe()}
    keys = ("code", "order_id", "campaign_id", "discount", "currency")
    return "Coupon Redeemed", {k: row[k] for k in keys}


def pending_messages(
    conn: sa.Connection, workspace_id: str, customer_ids: Sequence[str] | None = None
) -> list[tuple[Sender, dict[str, Any]]]:
    """Segment track calls for the state changes whose event is not stored yet, each with the
    sender it is sent as (the customer's own: :mod:`siyu.identity.subject`)."""
    params: dict[str, Any] = {"ws": workspace_id}
    customer_filter = anchors_filter = ""
    if customer_ids is not None:
        if not customer_ids:
            return []
        customer_filter = "AND {t}.customer_id IN :customers"
        anchors_filter = "AND a.customer_id IN :customers"
        params["customers"] = sorted(set(customer_ids))
    messages: list[tuple[Sender, dict[str, Any]]] = []
    for kind, sql in _sources(customer_filter):
        query = sa.text(
            f"""
            SELECT s.*, {SUBJECT_COLUMNS}
            FROM ({sql}) s
            {subject_join("s.customer_id", anchors_filter)}
            WHERE NOT EXISTS (
                SELECT 1 FROM events e WHERE e.workspace_id = :ws AND e.message_id = s.mid)
            """
        )
        if "customers" in params:
            query = query.bindparams(sa.bindparam("customers", expanding=True))
        result = conn.execute(query, params)
        names = list(result.keys())  # once: a RowMapping per row rebuilt its keys every time
        for values in result:
            row = dict(zip(names, values, strict=True))
            sender = sender_of(str(row["customer_id"]), row)
            name, props = _event(kind, row)
            message: dict[str, Any] = {
                "type": "track",
                "event": name,
                "messageId": row["mid"],
                "timestamp": row["ts"].isoformat() + "Z",
                "properties": {
                    "customer_id": row["customer_id"],
                    **{k: _plain(v) for k, v in props.items() if v is not None},
                },
                "context": {"library": {"name": "siyu-loyalty"}},
            }
            messages.append((sender, message))
    return messages


def publish(
    db: Database,
    workspace_id: str,
    *,
    customer_ids: Sequence[str] | None = None,
    settings: Settings | None = None,
) -> int:
    """Send pending loyalty events through the pipeline; return how many were stored."""
    with db.engine.connect() as conn:
        messages = pending_messages(conn, workspace_id, customer_ids)
        workspace = get_workspace_by_id(conn, workspace_id) if messages else None
    if not messages or workspace is None:
        return 0
    latest = max(datetime.fromisoformat(m["timestamp"][:-1]) for _, m in messages)
    now = max(datetime.now(UTC).replace(tzinfo=None), latest)
    pipeline = Pipeline(db, workspace, settings or load_settings())
    return ingest_as(pipeline, messages, origin="loyalty", received_at=now)
