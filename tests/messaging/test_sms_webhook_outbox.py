"""SMS through a local server speaking the Twilio Messages API contract, signed webhooks verified
by the receiving server, and the outbox file (both engines)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from siyu.config import load_settings
from siyu.messaging.contract import SendStatus
from siyu.messaging.send import send, send_many
from siyu.runtime import Runtime
from tests.messaging.helpers import T0, consent, customer, request, rows, template
from tests.messaging.servers import Call, Responder, http_server

SID = "AC0123456789abcdef0123456789abcdef"
TOKEN = "twilio-auth-token"
PROMO = {
    "name": "promo",
    "channel": "sms",
    "default_locale": "en",
    "variants": {
        "en": {"text": "Hi {{ customer.first_name }}: 20% off today. Reply STOP to opt out"},
        "zh-CN": {"text": "{{ customer.first_name }}，今天八折。回复TD退订"},
    },
}
NO_STOP = {
    "name": "promo_no_stop",
    "channel": "sms",
    "default_locale": "en",
    "variants": {"en": {"text": "Hi {{ customer.first_name }}: 20% off today."}},
}


def twilio_responder(
    fail: dict[str, tuple[int, int, str]], sent: list[dict[str, str]]
) -> Responder:
    """Twilio's Messages resource: basic auth, form body, 201 with a sid or an error object."""
    expected = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()

    def respond(call: Call) -> tuple[int, dict[str, Any]]:
        if call.headers.get("authorization") != expected:
            return 401, {"code": 20003, "message": "Authenticate", "status": 401}
        if call.method != "POST" or call.path != f"/2010-04-01/Accounts/{SID}/Messages.json":
            return 404, {"code": 20404, "message": "The requested resource was not found"}
        form = {k: v[0] for k, v in parse_qs(call.body.decode()).items()}
        to = form.get("To", "")
        if to in fail:
            status, code, message = fail[to]
            return status, {
                "code": code,
                "message": message,
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status,
            }
        sent.append(form)
        return 201, {
            "sid": f"SM{len(sent):032d}",
            "status": "queued",
            "to": to,
            "from": form.get("From"),
            "body": form.get("Body"),
            "account_sid": SID,
        }

    return respond


def test_sms_contract_stop_suppression_and_content_rules(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    template(rt, PROMO)
    template(rt, NO_STOP)
    ann = customer(rt, "ann", phone="+1 (415) 555-0100", first_name="Ann", country="US")
    bob = customer(rt, "bob", phone="+14155550101", first_name="Bob", country="US")
    li = customer(rt, "li", phone="+8613800138000", first_name="丽", country="CN", language="zh")
    eve = customer(rt, "eve", phone="+14155550102", first_name="Eve", country="US")
    for user in ("ann", "bob", "eve"):
        consent(rt, user, "sms", "granted", T0 - timedelta(days=1))
    consent(rt, "li", "sms", "granted", T0 - timedelta(days=1))
    sent: list[dict[str, str]] = []
    fail = {"+14155550101": (400, 21610, "Attempt to send to unsubscribed recipient")}
    with http_server(twilio_responder(fail, sent)) as (base, calls):
        monkeypatch.setenv("SIYU_SMS_BASE_URL", base)
        monkeypatch.setenv("SIYU_SMS_ACCOUNT_SID", SID)
        monkeypatch.setenv("SIYU_SMS_AUTH_TOKEN", TOKEN)
        monkeypatch.setenv("SIYU_SMS_FROM", "+14155559999")
        settings = load_settings()
        # outside quiet hours in each market: 17:00 UTC is noon in New York, 02:00 UTC is
        # 10:00 in Shanghai
        at_us = T0 + timedelta(hours=3)
        out = send_many(
            rt.db,
            [
                request(rt, ann, "p-ann", "sms", "promo"),
                request(rt, bob, "p-bob", "sms", "promo"),
                request(rt, eve, "p-eve", "sms", "promo_no_stop"),
            ],
            now=at_us,
            settings=settings,
        )
        at_cn = T0 + timedelta(hours=12)
        out_cn = send(rt.db, request(rt, li, "p-li", "sms", "promo"), now=at_cn, settings=settings)
        again = send(
            rt.db, request(rt, bob, "p-bob-2", "sms", "promo"), now=at_cn, settings=settings
        )
    assert [(o.status, o.reason_code) for o in out] == [
        (SendStatus.SENT, None),
        (SendStatus.SKIPPED, "recipient_unsubscribed"),  # 21610: the customer replied STOP
        (SendStatus.FAILED, "content_rule"),  # a US marketing SMS must say how to opt out
    ]
    assert "21610" in (out[1].reason or "")
    assert "opt out" in (out[2].reason or "")
    assert out_cn.status == SendStatus.SENT
    # the STOP reply suppressed the number: the next message is not even attempted
    assert (again.status, again.reason_code) == (SendStatus.SKIPPED, "suppressed")
    assert len(calls) == 3  # ann, bob (refused), li
    assert [(f["To"], f["From"]) for f in sent] == [
        ("+14155550100", "+14155559999"),
        ("+8613800138000", "+14155559999"),
    ]
    assert sent[0]["Body"] == "Hi Ann: 20% off today. Reply STOP to opt out"
    assert sent[1]["Body"] == "丽，今天八折。回复TD退订"
    assert out[0].provider_message_id == "SM" + "1".zfill(32)
    assert rows(rt, "SELECT channel, address, reason FROM suppressions") == [
        ("sms", "+14155550101", "unsubscribe")
    ]


def test_signed_webhook_verified_by_the_receiver(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    template(
        rt,
        {
            "name": "order_hook",
            "channel": "webhook",
            "default_locale": "en",
            "variants": {"en": {"subject": "Order {{ order }}", "text": "for {{ customer.id }}"}},
        },
    )
    secret = "whsec-brand"
    verified: list[dict[str, object]] = []
    answers = iter([503, 200, 200, 422])

    def receiver(call: Call) -> tuple[int, dict[str, object]]:
        """The brand's endpoint: recompute the HMAC over the raw body before trusting it."""
        ts = call.headers["x-siyu-timestamp"]
        mac = hmac.new(secret.encode(), ts.encode() + b"." + call.body, hashlib.sha256)
        if not hmac.compare_digest("v1=" + mac.hexdigest(), call.headers["x-siyu-signature"]):
            return 401, {"error": "bad signature"}
        body = json.loads(call.body)
        assert body["message_id"] == call.headers["x-siyu-message-id"]
        status = next(answers)
        if status == 200:
            verified.append(body)
        return status, {}

    cid = customer(rt, "de1", email="bob@example.de", country="DE", first_name="Bob")
    with http_server(receiver) as (base, calls):
        monkeypatch.setenv("SIYU_WEBHOOK_URL", f"{base}/hooks/siyu")
        monkeypatch.setenv("SIYU_WEBHOOK_SECRET", secret)
        settings = load_settings()
        # no consent needed: the message goes to the brand's own system, not to the customer
        req = request(rt, cid, "hook-1", "webhook", "order_hook", context={"order": "A-1"})
        first = send(rt.db, req, now=T0, settings=settings)
        assert (first.status, first.reason_code) == (SendStatus.RETRY, "endpoint_unavailable")
        assert first.retry_at is not None
        second = send(rt.db, req, now=first.retry_at, settings=settings)
        assert second.status == SendStatus.SENT
        dup = send(rt.db, req, now=first.retry_at + timedelta(hours=1), settings=settings)
        assert dup.status == SendStatus.DUPLICATE
        other = request(rt, cid, "hook-2", "webhook", "order_hook", context={"order": "A-2"})
        assert send(rt.db, other, now=T0, settings=settings).status == SendStatus.SENT
        bad = request(rt, cid, "hook-3", "webhook", "order_hook", context={"order": "A-3"})
        refused = send(rt.db, bad, now=T0, settings=settings)
        assert (refused.status, refused.reason_code) == (SendStatus.FAILED, "endpoint_rejected")
        # a receiver with another secret refuses every delivery
        monkeypatch.setenv("SIYU_WEBHOOK_SECRET", "not-the-secret")
        forged = request(rt, cid, "hook-4", "webhook", "order_hook", context={"order": "A-4"})
        wrong = send(rt.db, forged, now=T0, settings=load_settings())
        assert wrong.status == SendStatus.FAILED
        assert "401" in (wrong.reason or "")
    assert [b["subject"] for b in verified] == ["Order A-1", "Order A-2"]
    assert {c.path for c in calls} == {"/hooks/siyu"}
    assert len(calls) == 5  # the duplicate was never posted again
    # both attempts of hook-1 carried the same message id: receivers deduplicate on it
    ids = [c.headers["x-siyu-message-id"] for c in calls[:2]]
    assert ids[0] == ids[1] == first.message_id


def test_outbox_rows_and_file_written_once(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    template(
        rt,
        {
            "name": "hi",
            "channel": "outbox",
            "default_locale": "en",
            "variants": {"en": {"subject": "Hi {{ customer.first_name }}", "text": "Hello"}},
        },
    )
    path = Path("outbox.jsonl").resolve()
    monkeypatch.setenv("SIYU_MESSAGING_OUTBOX_FILE", str(path))
    settings = load_settings()
    ids = [
        customer(rt, f"u{i}", email=f"u{i}@example.com", first_name=f"U{i}", country="US")
        for i in range(3)
    ]
    reqs = [request(rt, c, f"k-{c}", "outbox", "hi") for c in ids]
    assert {o.status for o in send_many(rt.db, reqs, now=T0, settings=settings)} == {
        SendStatus.SENT
    }
    assert {o.status for o in send_many(rt.db, reqs, now=T0, settings=settings)} == {
        SendStatus.DUPLICATE
    }
    lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    assert sorted(x["subject"] for x in lines) == ["Hi U0", "Hi U1", "Hi U2"]
    assert len(rows(rt, "SELECT 1 FROM outbox")) == 3
    assert {x["idempotency_key"] for x in lines} == {r.idempotency_key for r in reqs}
