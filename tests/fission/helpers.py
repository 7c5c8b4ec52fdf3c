"""Helpers of the fission tests: customers, orders and refunds through the real pipeline."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from siyu.collect.rows import customer_key
from siyu.runtime import Runtime

T0 = datetime(2026, 3, 2, 9, 0)


def iso(moment: datetime) -> str:
    return moment.isoformat() + "Z"


def customer(
    rt: Runtime,
    user_id: str,
    *,
    at: datetime = T0,
    timezone: str | None = None,
    device: str | None = None,
    address: dict[str, str] | None = None,
) -> str:
    """Identify ``user_id`` through the pipeline (with optional fingerprints); its customer id."""
    traits: dict[str, Any] = {"email": f"{user_id}@example.com"}
    if timezone:
        traits["timezone"] = timezone
    if address:
        traits["address"] = address
    message: dict[str, Any] = {
        "type": "identify",
        "userId": user_id,
        "messageId": f"id-{user_id}-{at.isoformat()}",
        "timestamp": iso(at),
        "traits": traits,
    }
    if device:
        message["context"] = {"device": {"id": device}}
    rt.pipeline().ingest([message])
    key = customer_key(rt.workspace().workspace_id, user_id, None)
    assert key is not None
    return key


def order(
    user_id: str,
    order_id: str,
    total: float,
    *,
    at: datetime,
    currency: str = "USD",
    ip: str | None = None,
    payment: str | None = None,
) -> dict[str, Any]:
    props: dict[str, Any] = {"order_id": order_id, "total": total, "currency": currency}
    if payment:
        props["payment_fingerprint"] = payment
    message: dict[str, Any] = {
        "type": "track",
        "event": "Order Completed",
        "userId": user_id,
        "messageId": f"oc-{order_id}",
        "timestamp": iso(at),
        "properties": props,
    }
    if ip:
        message["context"] = {"ip": ip}
    return message


def refund(user_id: str, order_id: str, amount: float, *, at: datetime) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Order Refunded",
        "userId": user_id,
        "messageId": f"rf-{order_id}",
        "timestamp": iso(at),
        "properties": {"order_id": order_id, "total": amount, "currency": "USD"},
    }


def ingest(rt: Runtime, *messages: dict[str, Any]) -> None:
    report = rt.pipeline().ingest(list(messages))
    assert report.quarantined == 0, report


def events(rt: Runtime, name: str) -> list[dict[str, Any]]:
    """Stored events of one name, oldest first: customer id and properties."""
    with rt.db.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT customer_id, properties FROM events WHERE event = :e "
                "ORDER BY timestamp, message_id"
            ),
            {"e": name},
        ).all()
    return [
        {"customer_id": r[0], **(r[1] if isinstance(r[1], dict) else json.loads(r[1]))}
        for r in rows
    ]
