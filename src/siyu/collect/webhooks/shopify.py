"""Shopify webhooks (https://shopify.dev/docs/api/webhooks) -> canonical messages.

Topics handled: ``orders/create`` -> Order Completed; ``orders/updated`` and ``orders/paid`` ->
Order Updated (or Order Cancelled when ``cancelled_at`` is set); ``refunds/create`` -> Order
Refunded with the successful refund transactions; ``customers/create``/``customers/update`` ->
identify with traits, plus Consent Updated from ``email_marketing_consent`` and
``sms_marketing_consent``.

Shopify delivers at least once: every message id is derived from ``X-Shopify-Event-Id`` (the
same for every retry of one event), so a redelivery is a duplicate in the pipeline.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

TOPICS = (
    "orders/create",
    "orders/updated",
    "orders/paid",
    "refunds/create",
    "customers/create",
    "customers/update",
)

# Shopify marketing consent states -> the consent ledger's statuses.
CONSENT_STATES = {
    "subscribed": "granted",
    "not_subscribed": "denied",
    "unsubscribed": "withdrawn",
    "redacted": "withdrawn",
}


def _money(value: Any) -> str | None:
    if value in (None, ""):
        return None
    try:
        return str(Decimal(str(value)))
    except InvalidOperation:
        return str(value)  # left for the pipeline to reject, naming the field


def _user(payload: dict[str, Any]) -> dict[str, Any]:
    customer = payload.get("customer") or {}
    ids: dict[str, Any] = {}
    if customer.get("id") is not None:
        ids["userId"] = str(customer["id"])
    email = payload.get("email") or payload.get("contact_email") or customer.get("email")
    traits = {k: v for k, v in {"email": email, "phone": payload.get("phone")}.items() if v}
    if not ids:
        # A guest checkout: the order's own id keeps it apart until One-ID links the e-mail.
        ids["anonymousId"] = f"shopify-order-{payload.get('id')}"
    return {**ids, "context": {"traits": traits}} if traits else ids


def _products(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "product_id": None if li.get("product_id") is None else str(li["product_id"]),
            "sku": li.get("sku") or None,
            "variant": li.get("variant_title") or None,
            "name": li.get("title") or li.get("name"),
            "price": _money(li.get("price")),
            "quantity": li.get("quantity", 1),
        }
        for li in lines
        if isinstance(li, dict)
    ]


def _order(payload: dict[str, Any], topic: str, event_id: str) -> list[dict[str, Any]]:
    shipping = sum(
        (Decimal(str(s.get("price") or 0)) for s in payload.get("shipping_lines") or []),
        Decimal(0),
    )
    props = {
        "order_id": str(payload.get("id")),
        "order_name": payload.get("name"),
        "total": _money(payload.get("total_price")),
        "subtotal": _money(payload.get("subtotal_price")),
        "tax": _money(payload.get("total_tax")),
        "discount": _money(payload.get("total_discounts")),
        "shipping": str(shipping),
        "currency": payload.get("currency"),
        "financial_status": payload.get("financial_status"),
        "products": _products(payload.get("line_items") or []),
    }
    if topic == "orders/create":
        event, when = "Order Completed", payload.get("created_at")
    elif payload.get("cancelled_at"):
        event, when = "Order Cancelled", payload.get("cancelled_at")
        props["reason"] = payload.get("cancel_reason")
    else:
        event, when = "Order Updated", payload.get("updated_at") or payload.get("created_at")
    messages = [
        {
            "type": "track",
            "messageId": f"shopify:{event_id}",
            "event": event,
            "timestamp": when,
            "properties": {k: v for k, v in props.items() if v is not None},
            **_user(payload),
        }
    ]
    user = _user(payload)
    traits = user.get("context", {}).get("traits")
    if traits:
        # Track calls carry no traits for One-ID: the buyer's e-mail/phone go in an identify.
        ids = {k: v for k, v in user.items() if k != "context"}
        customer = payload.get("customer") or {}
        names = {k: customer.get(k) for k in ("first_name", "last_name") if customer.get(k)}
        messages.append(
            {
                "type": "identify",
                "messageId": f"shopify:{event_id}:identify",
                "timestamp": when,
                "traits": {**traits, **names},
                **ids,
            }
        )
    if topic == "orders/create" and "buyer_accepts_marketing" in payload:
        messages.append(
            _consent(
                event_id,
                "email",
                "granted" if payload["buyer_accepts_marketing"] else "denied",
                when,
                _user(payload),
                "shopify checkout: buyer_accepts_marketing",
            )
        )
    return messages


def _refund(payload: dict[str, Any], event_id: str) -> list[dict[str, Any]]:
    done = [
        t
        for t in payload.get("transactions") or []
        if isinstance(t, dict) and t.get("kind") == "refund" and t.get("status") == "success"
    ]
    total = sum((Decimal(str(t.get("amount") or 0)) for t in done), Decimal(0))
    currency = next((t.get("currency") for t in done if t.get("currency")), None)
    lines = [r.get("line_item") or {} for r in payload.get("refund_line_items") or []]
    for line, r in zip(lines, payload.get("refund_line_items") or [], strict=False):
        line["quantity"] = r.get("quantity", line.get("quantity"))
    props = {
        "order_id": str(payload.get("order_id")),
        "refund_id": str(payload.get("id")),
        "total": str(total),
        "currency": currency,
        "note": payload.get("note"),
        "products": _products(lines),
    }
    customer_id = (payload.get("customer") or {}).get("id") or payload.get("user_id")
    ids = (
        {"userId": str(customer_id)}
        if customer_id is not None and "customer" in payload
        else {"anonymousId": f"shopify-order-{payload.get('order_id')}"}
    )
    return [
        {
            "type": "track",
            "messageId": f"shopify:{event_id}",
            "event": "Order Refunded",
            "timestamp": payload.get("processed_at") or payload.get("created_at"),
            "properties": {k: v for k, v in props.items() if v is not None},
            **ids,
        }
    ]


def _consent(
    event_id: str, channel: str, status: str, when: Any, ids: dict[str, Any], evidence: str
) -> dict[str, Any]:
    return {
        "type": "track",
        "messageId": f"shopify:{event_id}:consent:{channel}",
        "event": "Consent Updated",
        "timestamp": when,
        "properties": {
            "purpose": "marketing",
            "channel": channel,
            "status": status,
            "evidence": evidence,
        },
        **ids,
    }


def _customer(payload: dict[str, Any], event_id: str) -> list[dict[str, Any]]:
    address = payload.get("default_address") or {}
    traits = {
        "email": payload.get("email"),
        "phone": payload.get("phone"),
        "first_name": payload.get("first_name"),
        "last_name": payload.get("last_name"),
        "country": address.get("country_code"),
        "city": address.get("city"),
        "currency": payload.get("currency"),
        "tags": payload.get("tags") or None,
        "shopify_state": payload.get("state"),
        "verified_email": payload.get("verified_email"),
    }
    ids = {"userId": str(payload.get("id"))}
    when = payload.get("updated_at") or payload.get("created_at")
    messages = [
        {
            "type": "identify",
            "messageId": f"shopify:{event_id}",
            "timestamp": when,
            "traits": {k: v for k, v in traits.items() if v not in (None, "")},
            **ids,
        }
    ]
    for field, channel in (("email_marketing_consent", "email"), ("sms_marketing_consent", "sms")):
        consent = payload.get(field)
        if isinstance(consent, dict) and consent.get("state") in CONSENT_STATES:
            messages.append(
                _consent(
                    event_id,
                    channel,
                    CONSENT_STATES[consent["state"]],
                    consent.get("consent_updated_at") or when,
                    ids,
                    f"shopify {field}: {consent['state']} ({consent.get('opt_in_level')})",
                )
            )
    return messages


def translate(topic: str, payload: dict[str, Any], event_id: str) -> list[dict[str, Any]]:
    """Canonical messages for one verified Shopify webhook (empty for an unhandled topic)."""
    if topic.startswith("orders/") and topic in TOPICS:
        return _order(payload, topic, event_id)
    if topic == "refunds/create":
        return _refund(payload, event_id)
    if topic in ("customers/create", "customers/update"):
        return _customer(payload, event_id)
    return []
