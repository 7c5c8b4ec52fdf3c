"""WhatsApp Cloud API webhooks (Meta, field ``messages``) -> canonical messages.

An inbound message becomes Message Received from the sender's ``wa_id`` (the user id, and the
phone trait in E.164), with the 24-hour customer-service window it opens: until
``service_window_expires_at`` the brand may answer with free-form messages, after it only with
approved templates. A status callback (sent, delivered, read, failed) becomes Message Sent,
Message Delivered, Message Read or Message Failed for the recipient, carrying the WhatsApp
message id (``wamid``) it refers to and, for failures, Meta's error code and title.

Meta retries deliveries; message ids derive from the ``wamid`` (and status), so a retry is a
duplicate in the pipeline.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

STATUS_EVENTS = {
    "sent": "Message Sent",
    "delivered": "Message Delivered",
    "read": "Message Read",
    "failed": "Message Failed",
}
SERVICE_WINDOW = timedelta(hours=24)


def _when(epoch: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(epoch), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat().replace("+00:00", "Z")


def _inbound(msg: dict[str, Any], value: dict[str, Any]) -> dict[str, Any]:
    wa_id = str(msg.get("from", ""))
    names = {
        str(c.get("wa_id")): (c.get("profile") or {}).get("name")
        for c in value.get("contacts") or []
        if isinstance(c, dict)
    }
    when = _when(msg.get("timestamp"))
    kind = msg.get("type")
    body = msg.get(kind) if isinstance(kind, str) else None
    text = (body or {}).get("body") if isinstance(body, dict) else None
    props = {
        "channel": "whatsapp",
        "message_id": msg.get("id"),
        "message_type": kind,
        "text": text,
        "phone_number_id": (value.get("metadata") or {}).get("phone_number_id"),
        "service_window_open": True,
        "service_window_expires_at": _iso(when + SERVICE_WINDOW) if when else None,
        "context_message_id": (msg.get("context") or {}).get("id"),
    }
    traits = {"phone": "+" + wa_id.lstrip("+"), "whatsapp": wa_id, "name": names.get(wa_id)}
    return {
        "type": "track",
        "messageId": f"whatsapp:{msg.get('id')}",
        "event": "Message Received",
        "userId": wa_id,
        "timestamp": _iso(when),
        "properties": {k: v for k, v in props.items() if v is not None},
        "context": {"traits": {k: v for k, v in traits.items() if v}},
    }


def _status(status: dict[str, Any]) -> dict[str, Any] | None:
    event = STATUS_EVENTS.get(str(status.get("status")))
    if event is None:
        return None
    errors = [e for e in status.get("errors") or [] if isinstance(e, dict)]
    first = errors[0] if errors else {}
    props = {
        "channel": "whatsapp",
        "message_id": status.get("id"),
        "status": status.get("status"),
        "error_code": first.get("code"),
        "error_title": first.get("title"),
        "error_details": (first.get("error_data") or {}).get("details"),
        "conversation_id": (status.get("conversation") or {}).get("id"),
        "pricing_category": (status.get("pricing") or {}).get("category"),
    }
    return {
        "type": "track",
        "messageId": f"whatsapp:{status.get('id')}:{status.get('status')}",
        "event": event,
        "userId": str(status.get("recipient_id", "")),
        "timestamp": _iso(_when(status.get("timestamp"))),
        "properties": {k: v for k, v in props.items() if v is not None},
    }


def translate(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Canonical messages for one verified webhook notification (all entries and changes)."""
    out: list[dict[str, Any]] = []
    for entry in payload.get("entry") or []:
        for change in (entry or {}).get("changes") or []:
            if not isinstance(change, dict) or change.get("field") != "messages":
                continue
            value = change.get("value") or {}
            for msg in value.get("messages") or []:
                if isinstance(msg, dict):
                    out.append(_inbound(msg, value))
            for status in value.get("statuses") or []:
                if isinstance(status, dict) and (m := _status(status)) is not None:
                    out.append(m)
    return out
