"""Shopify and WhatsApp Cloud API webhooks, signed exactly as the vendors sign them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from siyu.access import Workspace
from siyu.collect.sources import create_source, revoke_source, set_webhook_secret
from siyu.runtime import Runtime
from siyu.store import schema
from tests.api.envelope import assert_error

SECRET = "shpss_0123456789abcdef"
APP_SECRET = "meta-app-secret"
TOKEN = "verify-me"

# After Shopify's documented orders/create example payload (trimmed to what siyu reads).
ORDER = {
    "id": 820982911946154508,
    "name": "#9999",
    "email": "jon@example.com",
    "created_at": "2025-03-01T10:00:00-05:00",
    "updated_at": "2025-03-01T10:00:00-05:00",
    "currency": "EUR",
    "total_price": "403.00",
    "subtotal_price": "393.00",
    "total_tax": "0.00",
    "total_discounts": "5.00",
    "financial_status": "paid",
    "buyer_accepts_marketing": True,
    "cancelled_at": None,
    "customer": {"id": 115310627314723954, "email": "jon@example.com"},
    "shipping_lines": [{"price": "10.00"}],
    "line_items": [
        {
            "id": 1,
            "product_id": 632910392,
            "sku": "IPOD-342-N",
            "title": "IPod Nano",
            "variant_title": "Pink",
            "price": "199.00",
            "quantity": 1,
        },
        {
            "id": 2,
            "product_id": 632910393,
            "sku": "CASE-1",
            "title": "Case",
            "price": "97.00",
            "quantity": 2,
        },
    ],
}
REFUND = {
    "id": 509562969,
    "order_id": 820982911946154508,
    "created_at": "2025-03-03T12:00:00-05:00",
    "processed_at": "2025-03-03T12:00:00-05:00",
    "note": "damaged",
    "refund_line_items": [
        {
            "line_item_id": 1,
            "quantity": 1,
            "line_item": {"id": 1, "product_id": 632910392, "sku": "IPOD-342-N", "price": "199.00"},
        }
    ],
    "transactions": [
        {"id": 1, "kind": "refund", "status": "success", "amount": "199.00", "currency": "EUR"},
        {"id": 2, "kind": "refund", "status": "failure", "amount": "5.00", "currency": "EUR"},
    ],
}
CUSTOMER = {
    "id": 706405506930370084,
    "email": "bob@example.com",
    "first_name": "Bob",
    "last_name": "Norman",
    "phone": "+16136120707",
    "created_at": "2025-03-01T10:00:00-05:00",
    "updated_at": "2025-03-02T10:00:00-05:00",
    "state": "enabled",
    "default_address": {"country_code": "CA", "city": "Ottawa"},
    "email_marketing_consent": {
        "state": "subscribed",
        "opt_in_level": "confirmed_opt_in",
        "consent_updated_at": "2025-03-01T10:00:00-05:00",
    },
    "sms_marketing_consent": {"state": "not_subscribed", "opt_in_level": "single_opt_in"},
}


@pytest.fixture
def shop(rt: Runtime, workspace: Workspace) -> str:
    with rt.db.engine.begin() as conn:
        source, _ = create_source(conn, workspace.workspace_id, "shop", "shopify")
        set_webhook_secret(conn, workspace.workspace_id, "shop", webhook_secret=SECRET)
    return source.source_id


@pytest.fixture
def wa(rt: Runtime, workspace: Workspace) -> str:
    with rt.db.engine.begin() as conn:
        source, _ = create_source(conn, workspace.workspace_id, "wa", "whatsapp")
        set_webhook_secret(
            conn, workspace.workspace_id, "wa", webhook_secret=APP_SECRET, verify_token=TOKEN
        )
    return source.source_id


def shopify_post(
    client: TestClient, source: str, topic: str, payload: Any, event_id: str, secret: str = SECRET
) -> Any:
    body = orjson.dumps(payload)
    sig = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    headers = {
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": sig,
        "X-Shopify-Event-Id": event_id,
        "X-Shopify-Webhook-Id": "wh-" + event_id,
        "Content-Type": "application/json",
    }
    return client.post(f"/webhooks/shopify/{source}", content=body, headers=headers)


def events(rt: Runtime) -> list[dict[str, Any]]:
    e = schema.events
    with rt.db.engine.connect() as conn:
        rows = conn.execute(sa.select(e).order_by(e.c.message_id))
        return [dict(r._mapping) for r in rows]


def test_shopify_order_refund_and_customer_become_canonical_events(
    client: TestClient, rt: Runtime, shop: str
) -> None:
    for topic, payload, eid in (
        ("orders/create", ORDER, "e1"),
        ("refunds/create", REFUND, "e2"),
        ("customers/create", CUSTOMER, "e3"),
    ):
        response = shopify_post(client, shop, topic, payload, eid)
        assert response.status_code == 200, response.text
        assert response.json()["quarantined"] == 0, response.text
    stored = {e["message_id"]: e for e in events(rt)}
    assert stored["shopify:e1"]["event"] == "Order Completed"
    assert stored["shopify:e2"]["event"] == "Order Refunded"
    assert stored["shopify:e3"]["type"] == "identify"
    buyer = stored["shopify:e1:identify"]
    traits = buyer["traits"] if isinstance(buyer["traits"], dict) else orjson.loads(buyer["traits"])
    assert (buyer["user_id"], traits["email"]) == ("115310627314723954", "jon@example.com")
    assert {
        "shopify:e1:consent:email",
        "shopify:e3:consent:email",
        "shopify:e3:consent:sms",
    } <= set(stored)
    with rt.db.engine.connect() as conn:
        order = conn.execute(sa.select(schema.orders)).one()._mapping
        lines = conn.execute(sa.select(sa.func.count()).select_from(schema.order_lines)).scalar()
        consents = conn.execute(
            sa.select(schema.consents.c.channel, schema.consents.c.status)
        ).all()
    assert (order["order_id"], str(order["currency"])) == ("820982911946154508", "EUR")
    assert float(order["total"]) == 403.0
    assert float(order["refunded"]) == 199.0
    assert lines == 2
    assert sorted((c.channel, c.status) for c in consents) == [
        ("email", "granted"),
        ("email", "granted"),
        ("sms", "denied"),
    ]


def test_shopify_redelivery_is_deduplicated_on_the_event_id(
    client: TestClient, rt: Runtime, shop: str
) -> None:
    first = shopify_post(client, shop, "orders/create", ORDER, "same").json()
    again = shopify_post(client, shop, "orders/create", ORDER, "same").json()
    assert first["stored"] == 3
    assert again["stored"] == 0
    assert again["duplicates"] == 3
    paid = shopify_post(client, shop, "orders/paid", ORDER, "other").json()
    assert paid["stored"] == 2  # Order Updated + identify
    assert [e["event"] for e in events(rt) if e["type"] == "track"].count("Order Updated") == 1


def test_shopify_cancelled_order_update(client: TestClient, rt: Runtime, shop: str) -> None:
    shopify_post(client, shop, "orders/create", ORDER, "c1")
    cancelled = {**ORDER, "cancelled_at": "2025-03-02T10:00:00-05:00", "cancel_reason": "customer"}
    assert shopify_post(client, shop, "orders/updated", cancelled, "c2").status_code == 200
    assert "Order Cancelled" in {e["event"] for e in events(rt)}


def test_bad_shopify_signatures_are_refused_logged_and_not_ingested(
    client: TestClient, rt: Runtime, shop: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="siyu.webhooks"):
        response = shopify_post(client, shop, "orders/create", ORDER, "x", secret="wrong")
        assert_error(response, 401, "unauthorized")
        body = orjson.dumps(ORDER)
        unsigned = client.post(
            f"/webhooks/shopify/{shop}", content=body, headers={"X-Shopify-Topic": "orders/create"}
        )
        assert_error(unsigned, 401, "unauthorized")
    assert "X-Shopify-Hmac-Sha256 does not match" in caplog.text
    assert events(rt) == []
    with rt.db.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.quarantine)).scalar() == 0


def test_revoked_or_wrong_kind_sources_are_refused(
    client: TestClient, rt: Runtime, workspace: Workspace, shop: str, wa: str
) -> None:
    assert_error(shopify_post(client, wa, "orders/create", ORDER, "k"), 403, "forbidden")
    assert_error(shopify_post(client, "src_nope", "orders/create", ORDER, "k"), 404, "not_found")
    with rt.db.engine.begin() as conn:
        revoke_source(conn, workspace.workspace_id, "shop")
    assert_error(shopify_post(client, shop, "orders/create", ORDER, "k"), 401, "unauthorized")


def test_unknown_topic_is_acknowledged_and_ignored(
    client: TestClient, rt: Runtime, shop: str
) -> None:
    response = shopify_post(client, shop, "products/create", {"id": 1}, "p1")
    assert response.json() == {"success": True, "ignored": "products/create"}
    assert events(rt) == []


# -- WhatsApp Cloud API -------------------------------------------------------------------------


def wa_post(client: TestClient, source: str, payload: Any, secret: str = APP_SECRET) -> Any:
    body = orjson.dumps(payload)
    sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return client.post(
        f"/webhooks/whatsapp/{source}",
        content=body,
        headers={"X-Hub-Signature-256": sig, "Content-Type": "application/json"},
    )


def notification(value: dict[str, Any]) -> dict[str, Any]:
    meta = {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"}
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {"messaging_product": "whatsapp", "metadata": meta, **value},
                    }
                ],
            }
        ],
    }


INBOUND = notification(
    {
        "contacts": [{"profile": {"name": "Kerry Fisher"}, "wa_id": "16315551181"}],
        "messages": [
            {
                "from": "16315551181",
                "id": "wamid.IN1",
                "timestamp": "1740823200",
                "type": "text",
                "text": {"body": "Is the stroller in stock?"},
            }
        ],
    }
)
STATUSES = notification(
    {
        "statuses": [
            {
                "id": "wamid.OUT1",
                "status": "delivered",
                "timestamp": "1740823300",
                "recipient_id": "16315551181",
            },
            {
                "id": "wamid.OUT1",
                "status": "read",
                "timestamp": "1740823400",
                "recipient_id": "16315551181",
            },
            {
                "id": "wamid.OUT2",
                "status": "failed",
                "timestamp": "1740823500",
                "recipient_id": "16315551181",
                "errors": [
                    {
                        "code": 131047,
                        "title": "Re-engagement message",
                        "error_data": {"details": "More than 24 hours have passed"},
                    }
                ],
            },
        ]
    }
)


def test_whatsapp_handshake(client: TestClient, wa: str) -> None:
    ok = client.get(
        f"/webhooks/whatsapp/{wa}",
        params={"hub.mode": "subscribe", "hub.verify_token": TOKEN, "hub.challenge": "1158201444"},
    )
    assert (ok.status_code, ok.text) == (200, "1158201444")
    bad = client.get(
        f"/webhooks/whatsapp/{wa}",
        params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"},
    )
    assert_error(bad, 403, "forbidden")


def test_whatsapp_messages_and_statuses(client: TestClient, rt: Runtime, wa: str) -> None:
    assert wa_post(client, wa, INBOUND).json()["stored"] == 1
    assert wa_post(client, wa, STATUSES).json()["stored"] == 3
    assert wa_post(client, wa, STATUSES).json()["duplicates"] == 3  # Meta retried
    by_id = {e["message_id"]: e for e in events(rt)}
    received = by_id["whatsapp:wamid.IN1"]
    assert (received["event"], received["user_id"]) == ("Message Received", "16315551181")
    props = (
        orjson.loads(received["properties"])
        if isinstance(received["properties"], str)
        else received["properties"]
    )
    assert props["service_window_open"] is True
    assert props["service_window_expires_at"] == "2025-03-02T10:00:00Z"
    assert by_id["whatsapp:wamid.OUT1:delivered"]["event"] == "Message Delivered"
    assert by_id["whatsapp:wamid.OUT1:read"]["event"] == "Message Read"
    failed = by_id["whatsapp:wamid.OUT2:failed"]
    fprops = (
        orjson.loads(failed["properties"])
        if isinstance(failed["properties"], str)
        else failed["properties"]
    )
    assert (failed["event"], fprops["error_code"]) == ("Message Failed", 131047)


def test_whatsapp_bad_signature_is_refused(client: TestClient, rt: Runtime, wa: str) -> None:
    assert_error(wa_post(client, wa, INBOUND, secret="wrong"), 401, "unauthorized")
    assert events(rt) == []
