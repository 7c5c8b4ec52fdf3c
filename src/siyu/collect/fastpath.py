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
from typing import Any, NamedTuple

from pydantic import BaseModel

from siyu.collect.ecommerce import (
    CheckoutStarted,
    CommunityEvent,
    CouponEvent,
    EmailEvent,
    MessageEvent,
    ProductEvent,
    Properties,
    ReferralEvent,
)

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


def fast_fields(payload: dict[str, Any]) -> dict[str, Any] | None:
    """The model field values of a plain call, or None to let the models decide.

    An id is kept as the models keep it only when it is a string of 1 to 200 characters
    without surrounding spaces (the models strip them); each check is written out, as this
    runs once per event.
    """
    get = payload.get
    kind = get("type")
    if type(kind) is not str or kind not in _FAST_TYPES:  # a list/dict type is unhashable
        return None
    message_id = get("messageId")
    if message_id is not None and (
        type(message_id) is not str
        or not 0 < len(message_id) <= 200
        or message_id[0].isspace()
        or message_id[-1].isspace()
    ):
        return None
    user_id = get("userId")
    if user_id is not None and (
        type(user_id) is not str
        or not 0 < len(user_id) <= 200
        or user_id[0].isspace()
        or user_id[-1].isspace()
    ):
        return None
    anonymous_id = get("anonymousId")
    if anonymous_id is not None and (
        type(anonymous_id) is not str
        or not 0 < len(anonymous_id) <= 200
        or anonymous_id[0].isspace()
        or anonymous_id[-1].isspace()
    ):
        return None
    if user_id is None and anonymous_id is None:
        return None
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
    if context is None:
        context = {}
    elif type(context) is not dict:
        return None
    integrations = get("integrations")
    if integrations is None:
        integrations = {}
    elif type(integrations) is not dict:
        return None
    if kind == "track":
        event = get("event")
        if type(event) is not str or not 0 < len(event) <= 200:
            return None
        properties = get("properties")
        if properties is None:
            properties = {}
        elif type(properties) is not dict:
            return None
        return {
            "type": kind,
            "message_id": message_id,
            "user_id": user_id,
            "anonymous_id": anonymous_id,
            "timestamp": timestamp,
            "sent_at": sent_at,
            "original_timestamp": original,
            "properties": properties,
            "context": context,
            "integrations": integrations,
            "event": event,
        }
    doc = get("traits" if kind == "identify" else "properties")
    if doc is None:
        doc = {}
    elif type(doc) is not dict:
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
    if kind == "identify":
        fields["traits"] = doc
    else:
        fields["properties"] = doc
    fields["context"] = context
    fields["integrations"] = integrations
    if kind != "identify":
        for key in ("name", "category"):
            value = get(key)
            if value is not None and (type(value) is not str or len(value) > 200):
                return None
            fields[key] = value
    return fields


# Properties of documented events ------------------------------------------------------------
#
# A documented event's properties are checked against its pydantic model, which costs a model
# instance per event (about 3 us for Product Viewed). The instance is read afterwards only to
# maintain orders, refunds, consents and products. For the models below, properties whose
# declared fields are all plain short strings are accepted here with a few look-ups and keep no
# instance (``ValidCall.props`` stays None): the event is stored with its properties as sent,
# exactly as after the model. Anything else (a number, a Decimal, a currency, a product id or
# list that the products table reads, a field the table does not know) goes to the model.
# ``tests/collect/test_fastpath.py`` checks that the models accept all this accepts.

_TEXT = 500  # ecommerce.Text: stripped, then 1 to 500 characters
_ID = 200  # spec.Identifier: stripped, blank is null, at most 200 characters
_ANY = 0  # a plain ``str | None`` field, no length limit

# model -> (required fields, optional fields), each field with its length limit. Product ids
# are left out on purpose: products_table reads them from the model instance.
_PLAIN_FIELDS: dict[type[BaseModel], tuple[dict[str, int], dict[str, int]]] = {
    Properties: ({}, {}),
    ProductEvent: (
        {},
        {
            "name": _TEXT,
            "category": _TEXT,
            "brand": _TEXT,
            "variant": _TEXT,
            "coupon": _TEXT,
            "url": _ANY,
            "image_url": _ANY,
        },
    ),
    CheckoutStarted: ({}, {"order_id": _ID}),
    CouponEvent: ({}, {"order_id": _ID, "cart_id": _ID, "coupon_id": _ID, "coupon_name": _TEXT}),
    MessageEvent: ({"channel": _TEXT}, {"message_id": _ID, "campaign_id": _ID}),
    EmailEvent: ({}, {"campaign_id": _ID, "message_id": _ID}),
    CommunityEvent: ({"community": _TEXT}, {"channel": _TEXT}),
    ReferralEvent: ({"referral_code": _TEXT}, {"channel": _TEXT}),
}

_MODEL = -1  # a declared field the model must check


class PlainRule(NamedTuple):
    """How :func:`plain_properties` checks one model's properties."""

    required: tuple[tuple[str, int], ...]
    fields: dict[str, int]  # declared field -> length limit, or _MODEL


def _rule(model: type[BaseModel]) -> PlainRule | None:
    spec = _PLAIN_FIELDS.get(model)
    if spec is None:
        return None
    required, optional = spec
    declared = model.model_fields
    if {n for n, f in declared.items() if f.is_required()} != set(required):
        return None  # the model changed: let it decide
    fields = dict.fromkeys(declared, _MODEL)
    fields.update({n: limit for n, limit in {**required, **optional}.items() if n in declared})
    return PlainRule(tuple(required.items()), fields)


PLAIN_RULES: dict[type[BaseModel], PlainRule] = {
    model: rule for model in _PLAIN_FIELDS if (rule := _rule(model)) is not None
}


def plain_properties(rule: PlainRule, props: dict[str, Any]) -> bool:
    """True when the model of ``rule`` accepts ``props`` and no field needs its instance.

    A text field must be a non-empty string without surrounding spaces (the model strips them
    and refuses what is left empty), an identifier any string (a blank one becomes null), each
    within its length limit; an optional field may be null; extra keys are kept as sent, as
    the models do (``extra="allow"``).
    """
    for name, _limit in rule.required:
        if props.get(name) is None:
            return False
    fields = rule.fields
    for key, value in props.items():
        limit = fields.get(key)
        if limit is None:
            continue  # an extra property
        if limit == _MODEL:
            return False
        if value is None:
            continue  # an optional field left empty (a required one was refused above)
        if type(value) is not str:
            return False
        if limit == _TEXT:  # stripped, then it must not be empty
            if not value or value[0].isspace() or value[-1].isspace() or len(value) > _TEXT:
                return False
        elif limit and len(value) > limit:
            return False
    return True
