"""Signed unsubscribe links and the withdrawal of consent they record.

A link carries (workspace, customer, channel, message) and an HMAC-SHA256 of them under
``secret_key``, so it cannot be forged or pointed at another customer, and needs no database
lookup to verify. ``GET`` shows a confirmation page (mail scanners follow links; a GET must not
unsubscribe); ``POST`` -- the confirmation form, or a mail client's RFC 8058 one-click
``List-Unsubscribe=One-Click`` -- records a ``Consent Updated`` event (marketing, the channel,
withdrawn) through the ingestion pipeline, so the consent ledger and the event log agree and the
next marketing send to that customer on that channel is skipped.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from siyu.config import Settings
from siyu.errors import InvalidInput, NotFound
from siyu.identity.subject import ingest_as, senders_of
from siyu.store.schema import consents, customers

if TYPE_CHECKING:
    from siyu.collect.pipeline import Pipeline


@dataclass(frozen=True)
class UnsubscribeToken:
    workspace_id: str
    customer_id: str
    channel: str
    message_id: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(settings: Settings, payload: str) -> str:
    key = settings.secret_key.get_secret_value().encode()
    return _b64(hmac.new(key, b"unsubscribe:" + payload.encode(), hashlib.sha256).digest())


def make_token(settings: Settings, t: UnsubscribeToken) -> str:
    payload = _b64(
        json.dumps(
            [t.workspace_id, t.customer_id, t.channel, t.message_id], separators=(",", ":")
        ).encode()
    )
    return f"{payload}.{_mac(settings, payload)}"


def read_token(settings: Settings, token: str) -> UnsubscribeToken:
    """Verify a token; InvalidInput when it was altered or is not a siyu unsubscribe token."""
    payload, _, mac = token.partition(".")
    if not payload or not mac or not hmac.compare_digest(mac, _mac(settings, payload)):
        raise InvalidInput(
            "This unsubscribe link is not valid (it was altered or cut).",
            hint="Open the complete link from the message, or reply to the sender.",
            field="token",
        )
    try:
        ws, customer, channel, message = json.loads(_unb64(payload))
    except (ValueError, TypeError) as exc:
        raise InvalidInput("This unsubscribe link is malformed.", field="token") from exc
    return UnsubscribeToken(str(ws), str(customer), str(channel), str(message))


def unsubscribe_url(
    settings: Settings, workspace_id: str, customer_id: str, channel: str, message_id: str
) -> str:
    token = make_token(settings, UnsubscribeToken(workspace_id, customer_id, channel, message_id))
    return f"{settings.public_base_url.rstrip('/')}/unsubscribe/{token}"


def withdraw(
    conn_engine: sa.Engine,
    pipeline: Pipeline,
    token: UnsubscribeToken,
    now: datetime,
    method: str,
) -> str:
    """Record the withdrawal through ``pipeline``; return its id.

    The events are sent as the customer's own sender (:mod:`siyu.identity.subject`), and the
    ledger row is attributed to the token's customer: the token names them exactly, whatever
    provisional id the pipeline derives from a sender of a customer One-ID has not seen yet.
    """
    with conn_engine.connect() as conn:
        known = conn.execute(
            sa.select(customers.c.customer_id).where(
                customers.c.workspace_id == token.workspace_id,
                customers.c.customer_id == token.customer_id,
            )
        ).first()
        sender = senders_of(conn, token.workspace_id, [token.customer_id])[token.customer_id]
    if known is None:
        raise NotFound("The customer of this unsubscribe link no longer exists.")
    consent_id = f"unsubscribe:{token.message_id}:{token.channel}"
    evidence = {"method": method, "message_id": token.message_id}
    at = now.isoformat() + "Z"
    records = [
        {
            "type": "track",
            "event": "Consent Updated",
            "messageId": consent_id,
            "timestamp": at,
            "properties": {
                "purpose": "marketing",
                "channel": token.channel,
                "status": "withdrawn",
                "evidence": evidence,
            },
        },
        {
            "type": "track",
            "event": "Unsubscribed",
            "messageId": f"{consent_id}:event",
            "timestamp": at,
            "properties": {"channel": token.channel, "message_id": token.message_id},
        },
    ]
    ingest_as(pipeline, [(sender, r) for r in records], origin="unsubscribe")
    with conn_engine.begin() as conn:
        conn.execute(
            consents.update()
            .where(
                consents.c.workspace_id == token.workspace_id,
                consents.c.consent_id == consent_id,
            )
            .values(customer_id=token.customer_id)
        )
    return consent_id
