"""Builders of Segment-spec messages for tests."""

from __future__ import annotations

from typing import Any


def order(
    order_id: str,
    *,
    user: str = "u1",
    total: float | None = None,
    currency: str = "USD",
    lines: list[tuple[str, float, int]] | None = None,
    ts: str = "2025-03-01T10:00:00Z",
    mid: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    props: dict[str, Any] = {"order_id": order_id, "currency": currency, **extra}
    if total is not None:
        props["total"] = total
    if lines is not None:
        props["products"] = [
            {"product_id": sku, "sku": sku, "price": price, "quantity": qty, "category": "baby"}
            for sku, price, qty in lines
        ]
    return {
        "type": "track",
        "event": "Order Completed",
        "userId": user,
        "timestamp": ts,
        "messageId": mid or f"order-{order_id}",
        "properties": props,
    }


def refund(
    order_id: str, amount: float | None, *, mid: str, currency: str | None = None
) -> dict[str, Any]:
    props: dict[str, Any] = {"order_id": order_id}
    if amount is not None:
        props["total"] = amount
    if currency:
        props["currency"] = currency
    return {
        "type": "track",
        "event": "Order Refunded",
        "userId": "u1",
        "timestamp": "2025-03-05T10:00:00Z",
        "messageId": mid,
        "properties": props,
    }


def track(
    mid: str, event: str = "Product Viewed", user: str = "u1", **props: Any
) -> dict[str, Any]:
    return {
        "type": "track",
        "event": event,
        "userId": user,
        "timestamp": "2025-03-01T10:00:00Z",
        "messageId": mid,
        "properties": props,
    }
