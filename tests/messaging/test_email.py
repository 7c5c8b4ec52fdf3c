"""Email through a real SMTP server (aiosmtpd): multipart, RFC 8058 headers, locale and money,
and the unsubscribe link followed through the API withdrawing consent."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from siyu.api import create_app
from siyu.config import Settings, load_settings
from siyu.messaging.contract import SendStatus
from siyu.messaging.send import send, send_many
from siyu.runtime import Runtime
from tests.messaging.helpers import T0, consent, customer, request, rows, template
from tests.messaging.servers import Inbox, smtp_server

ORDER = {
    "name": "order_note",
    "channel": "email",
    "default_locale": "en",
    "variants": {
        "en": {
            "subject": "Your order, {{ customer.first_name }}",
            "text": "Total: {{ order.total | money(order.currency) }}",
            "html": "<p>Total: <b>{{ order.total | money(order.currency) }}</b></p>"
            "<p><a href='{{ unsubscribe_url }}'>Unsubscribe</a></p>",
        },
        "de-DE": {
            "subject": "Ihre Bestellung, {{ customer.first_name }}",
            "text": "Summe: {{ order.total | money(order.currency) }}",
            "html": "<p>Summe: {{ order.total | money(order.currency) }}</p>",
        },
        "zh-CN": {
            "subject": "{{ customer.first_name }}，您的订单",
            "text": "合计：{{ order.total | money(order.currency) }}，{{ day | date('long') }}",
        },
    },
}


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Inbox, Settings]]:
    with smtp_server() as (inbox, port):
        monkeypatch.setenv("SIYU_SMTP_PORT", str(port))
        monkeypatch.setenv("SIYU_SMTP_FROM", "Brand <news@brand.example>")
        monkeypatch.setenv("SIYU_PUBLIC_BASE_URL", "https://siyu.brand.example")
        yield inbox, load_settings()


def _plain(text: str) -> str:
    return text.replace("\xa0", " ").replace("\u202f", " ")


def test_multipart_headers_locale_and_money(rt: Runtime, smtp: tuple[Inbox, Settings]) -> None:
    inbox, settings = smtp
    template(rt, ORDER)
    de = customer(rt, "de1", email="Bob@Example.de", first_name="Bob", country="DE")
    at = customer(rt, "at1", email="al@example.at", first_name="Al", country="AT", language="de")
    zh = customer(rt, "cn1", email="li@example.cn", first_name="丽", country="CN", language="zh-CN")
    es = customer(rt, "us1", email="eva@example.com", first_name="Eva", country="US", language="es")
    for user in ("de1", "at1"):
        consent(rt, user, "email", "granted", T0 - timedelta(days=1))
    consent(rt, "cn1", "email", "granted", T0 - timedelta(days=1))
    ctx = {"order": {"total": "1234.50", "currency": "EUR"}, "day": "2026-03-02T12:00:00Z"}
    reqs = [
        request(rt, c, f"order-{c}", channel="email", tpl="order_note", context=ctx)
        for c in (de, at, zh, es)
    ]
    out = send_many(rt.db, reqs, now=T0, settings=settings)
    # 14:00 UTC is 22:00 in Shanghai: quiet hours defer (not drop) to 09:00 local = 01:00 UTC
    assert [o.status for o in out] == [SendStatus.SENT] * 2 + [SendStatus.DEFERRED, SendStatus.SENT]
    assert (out[2].reason_code, out[2].retry_at) == (
        "quiet_hours",
        T0.replace(hour=1) + timedelta(days=1),
    )
    assert send(rt.db, reqs[2], now=T0 + timedelta(hours=3), settings=settings).status == (
        SendStatus.DEFERRED
    )
    assert send(rt.db, reqs[2], now=out[2].retry_at, settings=settings).status == SendStatus.SENT
    by_to = {str(m["To"]): m for m in inbox.messages}
    assert set(by_to) == {"bob@example.de", "al@example.at", "li@example.cn", "eva@example.com"}

    m = by_to["bob@example.de"]
    assert m.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in m.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert m["Subject"] == "Ihre Bestellung, Bob"
    text = m.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert _plain(text).strip() == "Summe: 1.234,50 €"
    assert m["Message-ID"] == f"<{out[0].message_id}@brand.example>"
    unsub = str(m["List-Unsubscribe"])
    assert unsub.startswith("<https://siyu.brand.example/unsubscribe/")
    assert "<mailto:unsubscribe@brand.example?subject=unsubscribe%20" in unsub
    assert m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    # Austria falls back to the German variant; money in Austrian German
    assert by_to["al@example.at"]["Subject"] == "Ihre Bestellung, Al"
    # China: the zh-CN variant, yuan-style grouping and a Chinese long date
    zh_text = _plain(by_to["li@example.cn"].get_body(("plain",)).get_content())  # type: ignore[union-attr]
    assert zh_text.strip() == "合计：€1,234.50，2026年3月2日"
    # Spanish is not offered and the US market language is English: the default variant
    eva = by_to["eva@example.com"]
    assert eva["Subject"] == "Your order, Eva"
    assert "€1,234.50" in _plain(eva.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    html = eva.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "https://siyu.brand.example/unsubscribe/" in html

    stored = rows(rt, "SELECT status, recipient, locale, attempts FROM messages ORDER BY recipient")
    assert {r[0] for r in stored} == {"sent"}
    assert sorted(r[2] for r in stored) == ["de-DE", "de-DE", "en", "zh-CN"]
    assert {r[3] for r in stored} == {1}


def test_unsubscribe_link_withdraws_consent_and_next_send_is_skipped(
    rt: Runtime, settings: Settings, smtp: tuple[Inbox, Settings]
) -> None:
    inbox, smtp_settings = smtp
    template(rt, ORDER)
    cid = customer(rt, "de1", email="bob@example.de", first_name="Bob", country="DE")
    consent(rt, "de1", "email", "granted", T0 - timedelta(days=1))
    ctx = {"order": {"total": 5, "currency": "EUR"}, "day": "2026-03-02"}
    first = send(
        rt.db,
        request(rt, cid, "n1", channel="email", tpl="order_note", context=ctx),
        now=T0,
        settings=smtp_settings,
    )
    assert first.status == SendStatus.SENT
    link = str(inbox.messages[0]["List-Unsubscribe"]).split(",")[0].strip("<> ")
    path = link.removeprefix("https://siyu.brand.example")
    with TestClient(create_app(smtp_settings, rt)) as client:
        page = client.get(path)
        assert page.status_code == 200
        assert "<form method='post'" in page.text
        # GET changes nothing (mail scanners prefetch links)
        assert rows(rt, "SELECT status FROM consents WHERE status = 'withdrawn'") == []
        tampered = client.post(path[:-3] + "AAA", data={"List-Unsubscribe": "One-Click"})
        assert tampered.status_code == 400
        assert tampered.json()["error"]["code"] == "invalid"
        done = client.post(path, data={"List-Unsubscribe": "One-Click"})
        assert done.status_code == 200, done.text
    ledger = rows(
        rt,
        "SELECT customer_id, purpose, channel, status FROM consents WHERE status = 'withdrawn'",
    )
    assert ledger == [(cid, "marketing", "email", "withdrawn")]
    events = rows(rt, "SELECT event FROM events WHERE event IN ('Consent Updated', 'Unsubscribed')")
    assert sorted(e[0] for e in events) == ["Consent Updated", "Consent Updated", "Unsubscribed"]
    later = T0 + timedelta(hours=1)
    again = send(
        rt.db,
        request(rt, cid, "n2", channel="email", tpl="order_note", context=ctx),
        now=later,
        settings=smtp_settings,
    )
    assert (again.status, again.reason_code) == (SendStatus.SKIPPED, "consent_withdrawn")
    assert len(inbox.messages) == 1
    # transactional mail still goes out: the withdrawal was of marketing consent
    tx = send(
        rt.db,
        request(
            rt, cid, "n3", channel="email", tpl="order_note", context=ctx, purpose="transactional"
        ),
        now=later,
        settings=smtp_settings,
    )
    assert tx.status == SendStatus.SENT
    assert "List-Unsubscribe" not in inbox.messages[1]


def test_smtp_refusals_map_to_outcomes(rt: Runtime, smtp: tuple[Inbox, Settings]) -> None:
    inbox, settings = smtp
    template(rt, ORDER)
    hard = customer(rt, "u1", email="gone@example.com", country="US", first_name="A")
    soft = customer(rt, "u2", email="busy@example.com", country="US", first_name="B")
    policy = customer(rt, "u3", email="strict@example.com", country="US", first_name="C")
    inbox.refuse = {
        "gone@example.com": "550 5.1.1 No such user",
        "busy@example.com": "451 4.3.0 Try again later",
        "strict@example.com": "554 5.7.1 Message refused by policy",
    }
    ctx = {"order": {"total": 5, "currency": "USD"}, "day": "2026-03-02"}
    out = send_many(
        rt.db,
        [
            request(rt, c, f"r-{c}", channel="email", tpl="order_note", context=ctx)
            for c in (hard, soft, policy)
        ],
        now=T0,
        settings=settings,
    )
    # a hard bounce fails and suppresses the address; a policy refusal only fails
    assert (out[0].status, out[0].reason_code) == (SendStatus.FAILED, "hard_bounce")
    assert "550" in (out[0].reason or "")
    assert (out[2].status, out[2].reason_code) == (SendStatus.FAILED, "smtp_rejected")
    assert rows(rt, "SELECT channel, address, reason FROM suppressions") == [
        ("email", "gone@example.com", "bounce")
    ]
    later = send(
        rt.db,
        request(rt, hard, "r-again", channel="email", tpl="order_note", context=ctx),
        now=T0 + timedelta(days=1),
        settings=settings,
    )
    assert (later.status, later.reason_code) == (SendStatus.SKIPPED, "suppressed")
    assert out[1].status == SendStatus.RETRY
    assert out[1].retry_at is not None
    wait = (out[1].retry_at - T0).total_seconds()
    assert (
        settings.messaging_retry_base_seconds <= wait <= 1.5 * settings.messaging_retry_base_seconds
    )
    # the retry, once due, is re-claimed and delivered (the server now accepts)
    inbox.refuse = {}
    again = send(
        rt.db,
        request(rt, soft, f"r-{soft}", channel="email", tpl="order_note", context=ctx),
        now=out[1].retry_at,
        settings=settings,
    )
    assert again.status == SendStatus.SENT
    assert rows(rt, "SELECT attempts FROM messages WHERE status = 'sent'") == [(2,)]
    assert [str(m["To"]) for m in inbox.messages] == ["busy@example.com"]
