"""Helpers of the messaging tests: customers and consents through the real pipeline, templates."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from siyu.collect.rows import customer_key
from siyu.messaging.contract import SendRequest
from siyu.messaging.templates import save_template, template_from_doc
from siyu.registry import registry
from siyu.runtime import Runtime

T0 = datetime(2026, 3, 2, 14, 0, 0)  # a Monday, 14:00 UTC: daytime in Europe and the US


def iso(moment: datetime) -> str:
    return moment.isoformat() + "Z"


def customer(rt: Runtime, user: str, at: datetime = T0, **traits: Any) -> str:
    """Create a customer from an identify call; return their customer id."""
    report = rt.pipeline().ingest(
        [
            {
                "type": "identify",
                "userId": user,
                "timestamp": iso(at),
                "messageId": f"{user}-identify-{at.isoformat()}",
                "traits": traits,
            }
        ],
        received_at=at,
    )
    assert report.quarantined == 0, report
    cid = customer_key(rt.workspace().workspace_id, user, None)
    assert cid is not None
    return cid


def consent(
    rt: Runtime, user: str, channel: str, status: str, at: datetime, purpose: str = "marketing"
) -> None:
    report = rt.pipeline().ingest(
        [
            {
                "type": "track",
                "event": "Consent Updated",
                "userId": user,
                "timestamp": iso(at),
                "messageId": f"{user}-consent-{purpose}-{channel}-{status}-{at.isoformat()}",
                "properties": {"purpose": purpose, "channel": channel, "status": status},
            }
        ],
        received_at=at,
    )
    assert report.quarantined == 0, report


def template(rt: Runtime, doc: dict[str, Any], at: datetime = T0) -> None:
    t = template_from_doc(doc, registry.channels.names())
    with rt.db.engine.begin() as conn:
        save_template(conn, rt.workspace().workspace_id, t, at)


def request(
    rt: Runtime, cid: str, key: str, channel: str = "outbox", tpl: str = "hello", **kw: Any
) -> SendRequest:
    return SendRequest(
        workspace_id=rt.workspace().workspace_id,
        customer_id=cid,
        channel=channel,
        purpose=kw.pop("purpose", "marketing"),
        template=tpl,
        idempotency_key=key,
        **kw,
    )


def rows(rt: Runtime, sql: str, **params: Any) -> list[Any]:
    with rt.db.engine.connect() as conn:
        return list(conn.execute(sa.text(sql), params).all())


HELLO = {
    "name": "hello",
    "channel": "email",
    "default_locale": "en",
    "variants": {
        "en": {
            "subject": "Hi {{ customer.first_name }}",
            "text": "Hello {{ customer.first_name }}",
        },
        "de-DE": {"subject": "Hallo {{ customer.first_name }}", "text": "Hallo!"},
    },
}
