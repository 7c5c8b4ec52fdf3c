"""Email opens and clicks: signed tracking links, recorded as events and on the message row.

With ``messaging_email_tracking`` on, the email channel rewrites each ``http(s)`` link of a
message's HTML part (except the unsubscribe link) to ``/t/c/{token}`` and adds a 1x1 image
``/t/o/{token}``. The token carries (workspace, message id, target URL) under an HMAC of
``secret_key``, so the redirect cannot be abused to send people elsewhere (no open redirect) and
needs no lookup to verify.

A hit records ``Email Opened`` / ``Email Clicked`` (``campaign_id`` = the journey, ``message_id``,
``url``) through the pipeline, with deterministic message ids (the first open; one click per
URL), so journeys' measurement counts them, and stamps the message row's ``read_at`` (a click
implies an open) and moves its status to ``read``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from siyu.config import Settings
from siyu.errors import InvalidInput
from siyu.identity.subject import ingest_as, senders_of
from siyu.messaging.tables import messages

if TYPE_CHECKING:
    from siyu.collect.pipeline import Pipeline

_HREF = re.compile(r"""(href\s*=\s*)(["'])(https?://[^"']+)\2""", re.IGNORECASE)
# A 1x1 transparent GIF.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


@dataclass(frozen=True)
class TrackToken:
    workspace_id: str
    message_id: str
    url: str  # '' for the open pixel


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _mac(settings: Settings, payload: str) -> str:
    key = settings.secret_key.get_secret_value().encode()
    return _b64(hmac.new(key, b"track:" + payload.encode(), hashlib.sha256).digest())


def make_token(settings: Settings, t: TrackToken) -> str:
    raw = json.dumps([t.workspace_id, t.message_id, t.url], separators=(",", ":"))
    payload = _b64(raw.encode())
    return f"{payload}.{_mac(settings, payload)}"


def read_token(settings: Settings, token: str) -> TrackToken:
    payload, _, mac = token.partition(".")
    if not payload or not mac or not hmac.compare_digest(mac, _mac(settings, payload)):
        raise InvalidInput("This link is not valid (it was altered or cut).", field="token")
    try:
        ws, message_id, url = json.loads(
            base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        )
    except (ValueError, TypeError) as exc:
        raise InvalidInput("This link is malformed.", field="token") from exc
    return TrackToken(str(ws), str(message_id), str(url))


def _base(settings: Settings) -> str:
    return settings.public_base_url.rstrip("/")


def instrument_html(
    settings: Settings, workspace_id: str, message_id: str, html: str, keep: str | None
) -> str:
    """Links rewritten through /t/c, the open pixel appended; ``keep`` (unsubscribe) untouched."""

    def link(m: re.Match[str]) -> str:
        url = m.group(3).replace("&amp;", "&")
        if keep and url == keep:
            return m.group(0)
        token = make_token(settings, TrackToken(workspace_id, message_id, url))
        return f"{m.group(1)}{m.group(2)}{_base(settings)}/t/c/{token}{m.group(2)}"

    out = _HREF.sub(link, html)
    pixel_token = make_token(settings, TrackToken(workspace_id, message_id, ""))
    img = (
        f'<img src="{escape(_base(settings))}/t/o/{pixel_token}" width="1" height="1" '
        'alt="" style="display:none">'
    )
    if re.search(r"</body>", out, re.IGNORECASE):
        return re.sub(r"</body>", img + "</body>", out, count=1, flags=re.IGNORECASE)
    return out + img


def record_hit(
    engine: sa.Engine,
    pipeline: Pipeline,
    token: TrackToken,
    now: datetime,
) -> bool:
    """Record an open (``url`` empty) or a click; False when the message is unknown."""
    m = messages.c
    with engine.begin() as conn:
        row = conn.execute(
            sa.select(m.customer_id, m.journey_id, m.channel).where(
                m.workspace_id == token.workspace_id, m.message_id == token.message_id
            )
        ).first()
        if row is None:
            return False
        conn.execute(
            messages.update()
            .where(m.workspace_id == token.workspace_id, m.message_id == token.message_id)
            .values(
                read_at=sa.func.coalesce(m.read_at, now),
                delivered_at=sa.func.coalesce(m.delivered_at, now),
                status=sa.case(
                    (m.status.in_(("sent", "delivered", "unknown")), "read"), else_=m.status
                ),
            )
        )
        sender = senders_of(conn, token.workspace_id, [row.customer_id])[row.customer_id]
    props: dict[str, Any] = {"message_id": token.message_id, "channel": row.channel}
    if row.journey_id:
        props["campaign_id"] = row.journey_id
    if token.url:
        event = "Email Clicked"
        digest = hashlib.sha256(token.url.encode()).hexdigest()[:16]
        mid = f"click:{token.message_id}:{digest}"
        props["url"] = token.url
    else:
        event, mid = "Email Opened", f"open:{token.message_id}"
    record = {
        "type": "track",
        "event": event,
        "messageId": mid,
        "timestamp": now.isoformat() + "Z",
        "properties": props,
    }
    ingest_as(pipeline, [(sender, record)], origin="tracking")
    return True
