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
_ID_KEYS = (("messageId", "message_id"), ("userId", "user_id"), ("anonymousId", "anonymous_id"))
_TIME_KEYS = (
    ("timestamp", "timestamp"),
    ("sentAt", "sent_at"),
    ("originalTimestamp", "original_timestamp"),
)
_DOC_KEYS = ("properties", "traits", "context", "integrations")


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


def fast_fields(payload: dict[str, Any]) -> dict[str, Any] | None:
    """The model field values of a plain call, or None to let the models decide."""
    kind = payload.get("type")
    if type(kind) is not str or kind not in _FAST_TYPES:  # a list/dict type is unhashable
        return None
    fields: dict[str, Any] = {"type": kind}
    for wire, name in _ID_KEYS:
        value = payload.get(wire)
        if value is None:
            fields[name] = None
        elif type(value) is str and 0 < len(value) <= 200 and not value[0].isspace():
            if value[-1].isspace():
                return None
            fields[name] = value
        else:
            return None
    if fields["user_id"] is None and fields["anonymous_id"] is None:
        return None
    for wire, name in _TIME_KEYS:
        parsed = _time(payload.get(wire))
        if parsed is False:
            return None
        fields[name] = parsed
    for key in _DOC_KEYS:
        doc = payload.get(key)
        if doc is None:
            fields[key] = {}
        elif type(doc) is dict:
            fields[key] = doc
        else:
            return None
    if kind == "track":
        event = payload.get("event")
        if type(event) is not str or not 0 < len(event) <= 200:
            return None
        fields["event"] = event
        fields.pop("traits")
    elif kind == "identify":
        fields.pop("properties")
    else:
        for key in ("name", "category"):
            value = payload.get(key)
            if value is not None and (type(value) is not str or len(value) > 200):
                return None
            fields[key] = value
        fields.pop("traits")
    return fields
