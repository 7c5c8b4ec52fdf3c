"""A sender that stopped during the provider call leaves a 'sending' row: the key coming back
later never produces a blind second email, while a webhook (deduplicated by its receiver on the
message id) is sent again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from siyu.config import Settings, load_settings
from siyu.messaging.contract import SendStatus
from siyu.messaging.send import send
from siyu.runtime import Runtime
from tests.messaging.helpers import HELLO, T0, customer, request, rows, template
from tests.messaging.servers import Call, Inbox, http_server, smtp_server


def _as_if_crashed_while_sending(rt: Runtime, key: str, at: datetime) -> None:
    """The state a process leaves when it dies after committing 'sending', before the answer."""
    with rt.db.engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE messages SET status = 'sending', provider_message_id = NULL, "
                "sent_at = NULL, claim_token = 'dead', updated_at = :at "
                "WHERE idempotency_key = :k"
            ),
            {"k": key, "at": at},
        )


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Inbox, Settings]]:
    with smtp_server() as (inbox, port):
        monkeypatch.setenv("SIYU_SMTP_PORT", str(port))
        yield inbox, load_settings()


def test_email_left_sending_is_never_resent(rt: Runtime, smtp: tuple[Inbox, Settings]) -> None:
    inbox, settings = smtp
    template(rt, HELLO)
    cid = customer(rt, "us1", email="ann@example.com", first_name="Ann", country="US")
    req = request(rt, cid, "mail-1", channel="email")
    assert send(rt.db, req, now=T0, settings=settings).status == SendStatus.SENT
    _as_if_crashed_while_sending(rt, "mail-1", T0)
    # soon after, another worker may still be in the provider call: a duplicate, nothing else
    soon = send(rt.db, req, now=T0 + timedelta(minutes=5), settings=settings)
    assert (soon.status, soon.reason_code) == (SendStatus.DUPLICATE, "duplicate")
    # later, the outcome is declared unknown and the message is not sent a second time
    later = send(rt.db, req, now=T0 + timedelta(minutes=11), settings=settings)
    assert (later.status, later.reason_code) == (SendStatus.DUPLICATE, "outcome_unknown")
    assert "not sent again" in (later.reason or "")
    assert len(inbox.messages) == 1
    assert rows(rt, "SELECT status, reason_code FROM messages") == [("unknown", "outcome_unknown")]
    again = send(rt.db, req, now=T0 + timedelta(hours=1), settings=settings)
    assert (again.status, again.reason_code) == (SendStatus.DUPLICATE, "outcome_unknown")
    assert len(inbox.messages) == 1


def test_webhook_left_sending_is_resent_with_the_same_id(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    template(
        rt,
        {"name": "hook", "channel": "webhook", "variants": {"en": {"text": "order {{ order }}"}}},
    )
    cid = customer(rt, "de1", email="bob@example.de", country="DE")
    with http_server(lambda call: (200, {})) as (base, calls):
        monkeypatch.setenv("SIYU_WEBHOOK_URL", f"{base}/in")
        monkeypatch.setenv("SIYU_WEBHOOK_SECRET", "s")
        settings = load_settings()
        req = request(rt, cid, "hook-1", "webhook", "hook", context={"order": "A-1"})
        first = send(rt.db, req, now=T0, settings=settings)
        assert first.status == SendStatus.SENT
        _as_if_crashed_while_sending(rt, "hook-1", T0)
        soon = send(rt.db, req, now=T0 + timedelta(minutes=5), settings=settings)
        assert soon.status == SendStatus.DUPLICATE
        later = send(rt.db, req, now=T0 + timedelta(minutes=11), settings=settings)
        assert later.status == SendStatus.SENT
        posted: list[Call] = list(calls)
    assert len(posted) == 2
    assert {c.headers["x-siyu-message-id"] for c in posted} == {first.message_id}
    assert rows(rt, "SELECT status, attempts FROM messages") == [("sent", 2)]
