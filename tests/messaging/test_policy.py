"""The send policy: consent by region, frequency caps (rolling window and local calendar day),
quiet hours deferral, content checks; every skip and deferral recorded with why."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from siyu.config import load_settings
from siyu.messaging.content import ContentInput
from siyu.messaging.contract import SendStatus
from siyu.messaging.policy import ConsentRecord, consent_decision
from siyu.messaging.send import send, send_many
from siyu.registry import registry
from siyu.runtime import Runtime
from tests.messaging.helpers import HELLO, T0, consent, customer, request, rows, template

DAY = timedelta(days=1)
GRANT = {("marketing", "email"): ConsentRecord("email", "granted", T0 - DAY)}
GRANT_ALL = {("marketing", "all"): ConsentRecord("all", "granted", T0 - DAY)}
GRANT_SMS_OLD_WITHDRAW = {
    ("marketing", "sms"): ConsentRecord("sms", "withdrawn", T0 - 3 * DAY),
    ("marketing", "all"): ConsentRecord("all", "granted", T0 - DAY),
}


@pytest.mark.parametrize(
    ("purpose", "channel", "country", "records", "expected"),
    [
        # EU and UK: opt-in for every channel
        ("marketing", "email", "DE", {}, "consent_missing"),
        ("marketing", "email", "DE", GRANT, None),
        ("marketing", "whatsapp", "DE", GRANT_ALL, None),
        ("marketing", "email", "GB", {}, "consent_missing"),
        # US: email opt-out, SMS (and WhatsApp) opt-in
        ("marketing", "email", "US", {}, None),
        ("marketing", "sms", "US", {}, "consent_missing"),
        ("marketing", "whatsapp", "US", {}, "consent_missing"),
        # China (PIPL): separate consent per channel; a blanket grant is not enough
        ("marketing", "email", "CN", GRANT_ALL, "consent_not_separate"),
        ("marketing", "email", "CN", GRANT, None),
        # a region siyu has no rule for is treated as opt-in
        ("marketing", "email", "BR", {}, "consent_missing"),
        # the latest record wins: a later blanket grant after an SMS withdrawal
        ("marketing", "sms", "DE", GRANT_SMS_OLD_WITHDRAW, None),
        # transactional: no grant needed, but a withdrawal of transactional consent is respected
        ("transactional", "email", "DE", {}, None),
        (
            "transactional",
            "email",
            "DE",
            {("transactional", "all"): ConsentRecord("all", "withdrawn", T0)},
            "consent_withdrawn",
        ),
    ],
)
def test_consent_by_region(
    purpose: str,
    channel: str,
    country: str,
    records: dict[tuple[str, str], ConsentRecord],
    expected: str | None,
) -> None:
    d = consent_decision(purpose, channel, country, records)
    assert d.reason_code == expected
    assert (d.action == "send") == (expected is None)
    if expected:
        assert d.reason  # a sentence for people


def test_region_rules_at_send_time(rt: Runtime) -> None:
    """Through send_many with the outbox acting as SMS: US SMS needs a grant, email does not."""
    template(
        rt,
        {
            "name": "hello",
            "channel": "outbox",
            "variants": {"en": {"subject": "Hi", "text": "Hi! Reply STOP to opt out"}},
        },
    )
    us = customer(rt, "us1", email="ann@example.com", phone="+14155550100", country="US")
    sms = load_settings(messaging_outbox_as="sms")
    email = load_settings(messaging_outbox_as="email")
    at = T0 + timedelta(hours=3)  # noon in New York
    o = send(rt.db, request(rt, us, "s1"), now=at, settings=sms)
    assert (o.status, o.reason_code) == (SendStatus.SKIPPED, "consent_missing")
    assert "US requires opt-in marketing consent for sms" in (o.reason or "")
    assert send(rt.db, request(rt, us, "e1"), now=at, settings=email).status == SendStatus.SENT
    consent(rt, "us1", "sms", "granted", at)
    o = send(rt.db, request(rt, us, "s2"), now=at + timedelta(minutes=1), settings=sms)
    assert o.status == SendStatus.SENT
    assert rows(rt, "SELECT recipient FROM outbox ORDER BY recipient") == [
        ("+14155550100",),
        ("ann@example.com",),
    ]


def test_frequency_caps_rolling_window_and_local_day(rt: Runtime) -> None:
    template(rt, HELLO)
    la = customer(rt, "la1", email="lee@example.com", country="US", timezone="America/Los_Angeles")
    settings = load_settings(messaging_cap_per_day=2, messaging_cap_per_window=5)
    day1 = datetime(2026, 3, 2, 17, 0)  # 09:00 in Los Angeles, Monday 2 March
    out = send_many(
        rt.db, [request(rt, la, "k1"), request(rt, la, "k2")], now=day1, settings=settings
    )
    assert [o.status for o in out] == [SendStatus.SENT, SendStatus.SENT]
    # 03:00 UTC on 3 March is a new UTC day but still Monday evening (19:00) in Los Angeles
    evening = datetime(2026, 3, 3, 3, 0)
    o = send(rt.db, request(rt, la, "k3"), now=evening, settings=settings)
    assert (o.status, o.reason_code) == (SendStatus.DEFERRED, "frequency_cap_day")
    assert o.retry_at == datetime(2026, 3, 3, 17, 0)  # the next local morning, after quiet hours
    assert "America/Los_Angeles" in (o.reason or "")
    # not dropped: due again at retry_at, it goes out
    assert send(rt.db, request(rt, la, "k3"), now=o.retry_at, settings=settings).status == (
        SendStatus.SENT
    )
    day2 = datetime(2026, 3, 3, 18, 0)
    assert send(rt.db, request(rt, la, "k4"), now=day2, settings=settings).status == (
        SendStatus.SENT
    )
    day3 = datetime(2026, 3, 4, 18, 0)
    assert send(rt.db, request(rt, la, "k5"), now=day3, settings=settings).status == (
        SendStatus.SENT
    )
    # five in the rolling week: the sixth is skipped, not deferred
    o = send(rt.db, request(rt, la, "k6"), now=day3 + timedelta(minutes=5), settings=settings)
    assert (o.status, o.reason_code) == (SendStatus.SKIPPED, "frequency_cap_window")
    # a week after the first sends the window has room again
    later = day1 + timedelta(days=7, minutes=1)
    assert send(rt.db, request(rt, la, "k7"), now=later, settings=settings).status == (
        SendStatus.SENT
    )
    # caps are per channel and for marketing only: a transactional message is not counted
    tx = send(
        rt.db,
        request(rt, la, "t1", purpose="transactional"),
        now=later + timedelta(minutes=1),
        settings=settings,
    )
    assert tx.status == SendStatus.SENT
    log = rows(
        rt, "SELECT idempotency_key, status, reason_code FROM messages ORDER BY idempotency_key"
    )
    assert [(k, s) for k, s, _ in log] == [
        ("k1", "sent"),
        ("k2", "sent"),
        ("k3", "sent"),
        ("k4", "sent"),
        ("k5", "sent"),
        ("k6", "skipped"),
        ("k7", "sent"),
        ("t1", "sent"),
    ]


def test_quiet_hours_defer_to_the_end_of_the_window(rt: Runtime) -> None:
    template(rt, HELLO)
    la = customer(rt, "la1", email="lee@example.com", country="US", timezone="America/Los_Angeles")
    night = datetime(2026, 3, 2, 6, 0)  # 22:00 on Sunday in Los Angeles
    o = send(rt.db, request(rt, la, "m1"), now=night)
    assert (o.status, o.reason_code) == (SendStatus.DEFERRED, "quiet_hours")
    assert o.retry_at == datetime(2026, 3, 2, 17, 0)  # 09:00 local
    assert "quiet hours in America/Los_Angeles" in (o.reason or "")
    # asking again before the end changes nothing and sends nothing
    early = send(rt.db, request(rt, la, "m1"), now=night + timedelta(hours=2))
    assert early.status == SendStatus.DEFERRED
    assert rows(rt, "SELECT count(*) FROM outbox") == [(0,)]
    # transactional messages are not held back
    tx = send(rt.db, request(rt, la, "tx", purpose="transactional"), now=night)
    assert tx.status == SendStatus.SENT
    done = send(rt.db, request(rt, la, "m1"), now=o.retry_at)
    assert done.status == SendStatus.SENT
    assert rows(rt, "SELECT status, reason_code FROM messages WHERE idempotency_key = 'm1'") == [
        ("sent", None)
    ]


def _no_superlatives(m: ContentInput) -> str | None:
    """A market rule of the test: German marketing must not call anything 'das Beste'."""
    if m.country == "DE" and "das Beste" in (m.rendered.text or ""):
        return "comparative advertising claims are not allowed in this market"
    return None


def test_content_check_extension_point(rt: Runtime) -> None:
    registry.content_checks.register("test_no_superlatives", _no_superlatives)
    template(
        rt,
        {
            "name": "claim",
            "channel": "email",
            "variants": {"de": {"subject": "Neu", "text": "{{ product }} ist das Beste"}},
        },
    )
    de = customer(rt, "de1", email="bob@example.de", country="DE")
    at = customer(rt, "at1", email="al@example.at", country="AT")
    for user in ("de1", "at1"):
        consent(rt, user, "email", "granted", T0 - DAY)
    out = send_many(
        rt.db,
        [
            request(rt, de, "c1", tpl="claim", context={"product": "Tee"}),
            request(rt, at, "c2", tpl="claim", context={"product": "Tee"}),
        ],
        now=T0,
    )
    assert (out[0].status, out[0].reason_code) == (SendStatus.FAILED, "content_rule")
    assert "test_no_superlatives" in (out[0].reason or "")
    assert out[1].status == SendStatus.SENT
    assert rows(rt, "SELECT reason_code FROM messages WHERE idempotency_key = 'c1'") == [
        ("content_rule",)
    ]
