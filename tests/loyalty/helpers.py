"""Helpers of the loyalty tests: customers and orders through the real pipeline."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from siyu.collect.rows import customer_key
from siyu.runtime import Runtime


def iso(moment: datetime) -> str:
    return moment.isoformat() + "Z"


def customer(rt: Runtime, user_id: str, *, country: str = "DE", at: datetime) -> str:
    """Identify ``user_id`` through the pipeline; return its customer id."""
    ws = rt.workspace()
    rt.pipeline().ingest(
        [
            {
                "type": "identify",
                "userId": user_id,
                "messageId": f"id-{user_id}",
                "timestamp": iso(at),
                "traits": {"email": f"{user_id}@example.com", "country": country},
            }
        ]
    )
    key = customer_key(ws.workspace_id, user_id, None)
    assert key is not None
    return key


def order(
    user_id: str,
    order_id: str,
    total: float,
    *,
    at: datetime,
    currency: str = "USD",
    coupon: str | None = None,
    discount: float | None = None,
) -> dict[str, Any]:
    props: dict[str, Any] = {"order_id": order_id, "total": total, "currency": currency}
    if coupon is not None:
        props["coupon"] = coupon
    if discount is not None:
        props["discount"] = discount
    return {
        "type": "track",
        "event": "Order Completed",
        "userId": user_id,
        "messageId": f"oc-{order_id}",
        "timestamp": iso(at),
        "properties": props,
    }


def refund(
    user_id: str, order_id: str, amount: float, *, at: datetime, n: int = 1
) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Order Refunded",
        "userId": user_id,
        "messageId": f"rf-{order_id}-{n}",
        "timestamp": iso(at),
        "properties": {"order_id": order_id, "total": amount, "currency": "USD"},
    }


def events(rt: Runtime, name: str) -> list[dict[str, Any]]:
    """Stored events of one name, oldest first, with their properties."""
    with rt.db.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT customer_id, user_id, properties FROM events WHERE event = :e "
                "ORDER BY timestamp, message_id"
            ),
            {"e": name},
        ).all()
    import json

    return [
        {
            "customer_id": r[0],
            "user_id": r[1],
            "properties": r[2] if isinstance(r[2], dict) else json.loads(r[2]),
        }
        for r in rows
    ]
