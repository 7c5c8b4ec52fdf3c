"""send_many: consent at send time, idempotency, outbox exactly once (both engines)."""

from __future__ import annotations

from datetime import timedelta

from siyu.messaging.contract import SendStatus
from siyu.messaging.send import send, send_many
from siyu.runtime import Runtime
from tests.messaging.helpers import HELLO, T0, consent, customer, request, rows, template


def test_consent_policy_by_region_and_idempotent_outbox(rt: Runtime) -> None:
    template(rt, HELLO)
    us = customer(rt, "us1", email="ann@example.com", first_name="Ann", country="US")
    de = customer(rt, "de1", email="bob@example.de", first_name="Bob", country="DE")
    de_ok = customer(rt, "de2", email="cy@example.de", first_name="Cy", country="DE")
    consent(rt, "de2", "email", "granted", T0 - timedelta(days=3))
    reqs = [request(rt, c, f"k-{c}") for c in (us, de, de_ok)]
    out = send_many(rt.db, reqs, now=T0)
    assert [o.status for o in out] == [SendStatus.SENT, SendStatus.SKIPPED, SendStatus.SENT]
    assert out[1].reason_code == "consent_missing"
    assert "EU/EEA" in (out[1].reason or "")
    box = rows(rt, "SELECT customer_id, recipient, subject FROM outbox ORDER BY recipient")
    assert [(r[1], r[2]) for r in box] == [
        ("ann@example.com", "Hi Ann"),
        ("cy@example.de", "Hallo Cy"),
    ]
    again = send_many(rt.db, reqs, now=T0 + timedelta(minutes=1))
    assert [o.status for o in again] == [SendStatus.DUPLICATE] * 3
    assert len(rows(rt, "SELECT 1 FROM outbox")) == 2
    stored = rows(rt, "SELECT status, reason_code FROM messages ORDER BY customer_id")
    assert sorted(s[0] for s in stored) == ["sent", "sent", "skipped"]


def test_withdrawal_wins_and_latest_record_decides(rt: Runtime) -> None:
    template(rt, HELLO)
    us = customer(rt, "us1", email="ann@example.com", country="US", first_name="Ann")
    consent(rt, "us1", "all", "withdrawn", T0 - timedelta(days=2))
    o = send(rt.db, request(rt, us, "a"), now=T0)
    assert (o.status, o.reason_code) == (SendStatus.SKIPPED, "consent_withdrawn")
    consent(rt, "us1", "email", "granted", T0 - timedelta(days=1))
    o = send(rt.db, request(rt, us, "b"), now=T0)
    assert o.status == SendStatus.SENT
    # transactional: no grant needed in the EU, but suppression still applies
    de = customer(rt, "de1", email="bob@example.de", country="DE", first_name="Bob")
    o = send(rt.db, request(rt, de, "t1", purpose="transactional"), now=T0)
    assert o.status == SendStatus.SENT
