"""WhatsApp Cloud API: a local server speaking Meta's documented contract receives the sends,
answers message ids and Graph errors, and posts signed status callbacks to siyu's real webhook
endpoint (served over HTTP by uvicorn), which moves the message rows forward."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from siyu.api import create_app
from siyu.collect.sources import create_source, set_webhook_secret
from siyu.config import Settings, load_settings
from siyu.messaging.channels.whatsapp import Pacer
from siyu.messaging.contract import SendStatus
from siyu.messaging.send import send_many
from siyu.runtime import Runtime
from tests.messaging.helpers import T0, consent, customer, request, rows, template
from tests.messaging.servers import WhatsAppFake, http_server, serve_app

APP_SECRET = "meta-app-secret"
OFFER = {
    "name": "wa_offer",
    "channel": "whatsapp",
    "default_locale": "en",
    "variants": {
        "en": {
            "text": "Hi {{ customer.first_name }}, {{ offer.amount | money(offer.currency) }} off.",
            "wa_template": "spring_offer",
            "wa_language": "en_US",
            "wa_components": [
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "{{ customer.first_name }}"},
                        {"type": "text", "text": "{{ offer.amount | money(offer.currency) }}"},
                    ],
                }
            ],
        },
        "de-DE": {
            "text": "Hallo {{ customer.first_name }}, {{ offer.amount | money(offer.currency) }}",
            "wa_template": "spring_offer",
            "wa_language": "de",
            "wa_components": [
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "{{ customer.first_name }}"},
                        {"type": "text", "text": "{{ offer.amount | money(offer.currency) }}"},
                    ],
                }
            ],
        },
    },
}
TEXT_ONLY = {
    "name": "wa_reply",
    "channel": "whatsapp",
    "default_locale": "en",
    "variants": {"en": {"text": "Thanks {{ customer.first_name }}, we are on it."}},
}
CTX = {"offer": {"amount": "12", "currency": "EUR"}}


@dataclass
class Env:
    fake: WhatsAppFake
    settings: Settings
    webhook: str  # siyu's real webhook URL for the WhatsApp source
    calls: list[object]


@pytest.fixture
def wa(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    fake = WhatsAppFake("v21.0", "106540352242922", "EAAG-test-token", APP_SECRET)
    ws = rt.workspace().workspace_id
    with rt.db.engine.begin() as conn:
        source, _ = create_source(conn, ws, "wa", "whatsapp")
        set_webhook_secret(conn, ws, "wa", webhook_secret=APP_SECRET)
    with http_server(fake.respond) as (graph, calls):
        monkeypatch.setenv("SIYU_WHATSAPP_BASE_URL", graph)
        monkeypatch.setenv("SIYU_WHATSAPP_API_VERSION", fake.version)
        monkeypatch.setenv("SIYU_WHATSAPP_TOKEN", fake.token)
        monkeypatch.setenv("SIYU_WHATSAPP_PHONE_NUMBER_ID", fake.phone_number_id)
        settings = load_settings()
        with serve_app(create_app(settings, rt)) as base:
            yield Env(fake, settings, f"{base}/webhooks/whatsapp/{source.source_id}", calls)


def _epoch(moment: datetime) -> int:
    return int(moment.replace(tzinfo=UTC).timestamp())


def test_templates_window_errors_and_status_callbacks(rt: Runtime, wa: Env) -> None:
    template(rt, OFFER)
    template(rt, TEXT_ONLY)
    people = {
        "inside": "4915112345671",  # wrote 2 hours ago: free-form text allowed
        "outside": "4915112345672",  # wrote 30 hours ago: approved template only
        "gone": "4915112345673",  # 131026 undeliverable
        "stale": "4915112345674",  # 131047 re-engagement required
        "busy": "4915112345675",  # 130429 rate limited
    }
    cids = {}
    for who, number in people.items():
        cids[who] = customer(
            rt, number, phone=f"+{number}", first_name=who.title(), country="DE", language="de"
        )
        consent(rt, number, "whatsapp", "granted", T0 - timedelta(days=5))
    us = customer(rt, "15550001111", phone="+15550001111", first_name="Ann", country="US")
    consent(rt, "15550001111", "email", "granted", T0 - timedelta(days=5))  # not WhatsApp
    for who, hours in (("inside", 2), ("outside", 30)):
        inbound = wa.fake.inbound(
            people[who], f"wamid.IN-{who}", _epoch(T0 - timedelta(hours=hours)), "Hallo?"
        )
        assert wa.fake.post(wa.webhook, inbound) == 200
    wa.fake.fail = {
        people["gone"]: (400, 131026, "Message undeliverable"),
        people["stale"]: (400, 131047, "Re-engagement message"),
        people["busy"]: (429, 130429, "Rate limit hit"),
    }
    order = ["inside", "outside", "gone", "stale", "busy"]
    reqs = [request(rt, cids[w], f"offer-{w}", "whatsapp", "wa_offer", context=CTX) for w in order]
    reqs.append(request(rt, us, "offer-us", "whatsapp", "wa_offer", context=CTX))
    reqs.append(
        request(
            rt, cids["outside"], "reply-outside", "whatsapp", "wa_reply", purpose="transactional"
        )
    )
    reqs.append(
        request(rt, cids["inside"], "reply-inside", "whatsapp", "wa_reply", purpose="transactional")
    )
    out = send_many(rt.db, reqs, now=T0, settings=wa.settings)
    got = [(o.status, o.reason_code) for o in out]
    assert got == [
        (SendStatus.SENT, None),
        (SendStatus.SENT, None),
        (SendStatus.FAILED, "undeliverable"),
        (SendStatus.FAILED, "reengagement_required"),
        (SendStatus.RETRY, "rate_limited"),
        (SendStatus.SKIPPED, "consent_missing"),  # US: WhatsApp is opt-in
        (SendStatus.FAILED, "outside_service_window"),  # no approved template, window closed
        (SendStatus.SENT, None),
    ]
    assert "131026" in (out[2].reason or "")

    # what reached the Graph API: every call authenticated, to the documented path
    bodies = dict(wa.fake.sent)
    assert set(bodies) == {o.provider_message_id for o in out if o.status == SendStatus.SENT}
    inside, outside = (
        bodies[str(out[0].provider_message_id)],
        bodies[str(out[1].provider_message_id)],
    )
    assert inside["to"] == people["inside"]
    assert bodies[str(out[7].provider_message_id)]["text"]["body"] == "Thanks Inside, we are on it."
    assert inside["type"] == "text"
    assert inside["text"]["body"].replace("\xa0", " ") == "Hallo Inside, 12,00 €"
    assert outside["type"] == "template"
    tpl = outside["template"]
    assert (tpl["name"], tpl["language"]) == ("spring_offer", {"code": "de"})
    params = [p["text"].replace("\xa0", " ") for p in tpl["components"][0]["parameters"]]
    assert params == ["Outside", "12,00 €"]
    # 6 calls: the consent skip and the closed window never reached the API
    assert len(wa.calls) == 6
    assert {(c.path, c.headers["authorization"]) for c in wa.calls} == {
        (f"/v21.0/{wa.fake.phone_number_id}/messages", f"Bearer {wa.fake.token}")
    }
    assert people["gone"] not in {b["to"] for b in bodies.values()}  # refused by the API

    # status callbacks, out of order and repeated, signed like Meta's
    w_in, w_out = out[0].provider_message_id, out[1].provider_message_id
    w_reply = out[7].provider_message_id
    assert w_in is not None
    assert w_out is not None
    assert w_reply is not None
    assert w_in.startswith("wamid.")
    at = _epoch(T0) + 5
    fake = wa.fake
    assert fake.callback(wa.webhook, [fake.status(w_in, "read", at + 60)]) == 200
    assert fake.callback(wa.webhook, [fake.status(w_in, "delivered", at + 30)]) == 200
    assert fake.callback(wa.webhook, [fake.status(w_in, "read", at + 60)]) == 200  # Meta retry
    failed = fake.status(w_out, "failed", at + 10, (131026, "Message undeliverable"))
    assert fake.callback(wa.webhook, [fake.status(w_out, "sent", at), failed]) == 200
    assert fake.callback(wa.webhook, [fake.status(w_reply, "delivered", at + 3)]) == 200
    # a forged callback is refused and changes nothing
    forged = [fake.status(w_reply, "failed", at + 9, (131026, "x"))]
    assert fake.callback(wa.webhook, forged, secret="not-the-app-secret") == 401

    stored = {
        r[0]: r[1:]
        for r in rows(
            rt,
            "SELECT provider_message_id, status, reason_code, delivered_at, read_at "
            "FROM messages WHERE provider_message_id IS NOT NULL",
        )
    }
    first = T0 + timedelta(seconds=5)
    assert stored[w_in] == (
        "read",
        None,
        first + timedelta(seconds=30),
        first + timedelta(minutes=1),
    )
    assert stored[w_out][:2] == ("failed", "undeliverable")
    assert stored[w_reply] == ("delivered", None, first + timedelta(seconds=3), None)
    # the callbacks are events too (the pipeline stored them once each, retries deduplicated)
    events = rows(
        rt,
        "SELECT event, count(*) FROM events WHERE event LIKE 'Message %' GROUP BY event "
        "ORDER BY event",
    )
    assert events == [
        ("Message Delivered", 2),
        ("Message Failed", 1),
        ("Message Read", 1),
        ("Message Received", 2),
        ("Message Sent", 1),
    ]


def test_callback_that_beats_the_bookkeeping_is_not_lost(rt: Runtime, wa: Env) -> None:
    """Meta may call the webhook before the send's HTTP answer reached siyu."""
    template(rt, OFFER)
    number = "4915112345679"
    cid = customer(rt, number, phone=f"+{number}", first_name="Kai", country="DE")
    consent(rt, number, "whatsapp", "granted", T0 - timedelta(days=5))
    at = _epoch(T0) + 1
    answers: list[int] = []

    def early(wamid: str, body: dict[str, object]) -> None:
        statuses = [wa.fake.status(wamid, "sent", at), wa.fake.status(wamid, "delivered", at + 1)]
        answers.append(wa.fake.callback(wa.webhook, statuses))

    wa.fake.on_accept = early
    out = send_many(
        rt.db,
        [request(rt, cid, "early-1", "whatsapp", "wa_offer", context=CTX)],
        now=T0,
        settings=wa.settings,
    )
    assert out[0].status == SendStatus.SENT
    assert answers == [200]
    stored = rows(rt, "SELECT status, delivered_at FROM messages WHERE customer_id = :c", c=cid)
    assert stored == [("delivered", T0 + timedelta(seconds=2))]


def test_service_window_is_per_whatsapp_number(rt: Runtime, wa: Env) -> None:
    """The store knows the customer by its own id; they write from WhatsApp (the wa_id is
    another user id, which One-ID does not merge with the store's): the window is Meta's, per
    WhatsApp number, so their message opens it for the store's customer too."""
    template(rt, TEXT_ONLY)
    cid = customer(rt, "shop-77", phone="+49 151 12345680", first_name="Mia", country="DE")
    inbound = wa.fake.inbound("4915112345680", "wamid.IN-mia", _epoch(T0) - 3600, "Hallo")
    assert wa.fake.post(wa.webhook, inbound) == 200
    req = request(rt, cid, "reply-mia", "whatsapp", "wa_reply", purpose="transactional")
    out = send_many(rt.db, [req], now=T0, settings=wa.settings)
    assert out[0].status == SendStatus.SENT
    (body,) = wa.fake.sent.values()
    assert (body["type"], body["to"]) == ("text", "4915112345680")
    assert body["text"]["body"] == "Thanks Mia, we are on it."


def test_pacer_spaces_sends_per_business_number() -> None:
    """Per-number throughput: each call gets the next slot 1/rate after the previous one."""
    clock = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)

    pacer = Pacer(clock=lambda: clock[0], sleep=sleep)
    slots = [pacer.wait("number-A", 4.0) for _ in range(5)]
    assert slots == [100.0, 100.25, 100.5, 100.75, 101.0]
    assert slept == [0.25, 0.5, 0.75, 1.0]
    # another business number has its own budget
    assert pacer.wait("number-B", 4.0) == 100.0
    # once time has passed the budget is free again
    clock[0] = 200.0
    assert pacer.wait("number-A", 4.0) == 200.0
    assert len(slept) == 4
