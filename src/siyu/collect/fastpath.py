"""A fast path for the common shapes of Segment calls.

Validating each event through Pydantic models costs more than everything else in ingestion
together. Most traffic is plain track/identify/page calls with string ids and ISO timestamps, so
this module checks exactly those shapes with a few dictionary look-ups and returns the same
field values the models would. Anything it does not recognise (numbers as ids, unusual
timestamp formats, group and alias calls, any invalid record) returns None and goes through the
Pydantic models, which then accept it or word the precise error. The fast path is therefore never
more permissive than the models; ``tests/collect/test_fastpath.py`` checks the agreement.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

_FAST_TYPES = frozenset(("track", "identify", "page", "screen"))


def _time(value: object) -> datetime | bool | None:
    """A zone-aware datetime, None when absent, False when the models must decide."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) < 20 or value[10] not in "Tt ":
        return False
    if value[4] != "-" or value[7] != "-":
        return False
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return False
    return parsed if parsed.tzinfo is not None else False


def _ident(value: object) -> str | bool | None:
    """A plain id as the models would keep it: None when absent, False when they must decide."""
    if value is None:
        return None
    if type(value) is str and 0 < len(value) <= 200 and not value[0].isspace():
        return False if value[-1].isspace() else value
    return False


def fast_fields(payload: dict[str, Any]) -> dict[str, Any] | None:
    """The model field values of a plain call, or None to let the models decide."""
    kind = payload.get("type")
    if type(kind) is not str or kind not in _FAST_TYPES:  # a list/dict type is unhashable
        return None
    message_id = _ident(payload.get("messageId"))
    user_id = _ident(payload.get("userId"))
    anonymous_id = _ident(payload.get("anonymousId"))
    if message_id is False or user_id is False or anonymous_id is False:
        return None
    if user_id is None and anonymous_id is None:
        return None
    get = payload.get
    timestamp = get("timestamp")
    if timestamp is not None:
        timestamp = _time(timestamp)
        if timestamp is False:
            return None
    sent_at = get("sentAt")
    if sent_at is not None:
        sent_at = _time(sent_at)
        if sent_at is False:
            return None
    original = get("originalTimestamp")
    if original is not None:
        original = _time(original)
        if original is False:
            return None
    context = get("context")
    integrations = get("integrations")
    if context is None:
        context = {}
    elif type(context) is not dict:
        return None
    if integrations is None:
        integrations = {}
    elif type(integrations) is not dict:
        return None
    fields: dict[str, Any] = {
        "type": kind,
        "message_id": message_id,
        "user_id": user_id,
        "anonymous_id": anonymous_id,
        "timestamp": timestamp,
        "sent_at": sent_at,
        "original_timestamp": original,
    }
    doc = get("traits" if kind == "identify" else "properties")
    if doc is None:
        doc = {}
    elif type(doc) is not dict:
        return None
    if kind == "identify":
        fields["traits"] = doc
    else:
        fields["properties"] = doc
    fields["context"] = context
    fields["integrations"] = integrations
    if kind == "track":
        event = get("event")
        if type(event) is not str or not 0 < len(event) <= 200:
            return None
        fields["event"] = event
    elif kind != "identify":
        for key in ("name", "category"):
            value = get(key)
            if value is not None and (type(value) is not str or len(value) > 200):
                return None
            fields[key] = value
    return fields
