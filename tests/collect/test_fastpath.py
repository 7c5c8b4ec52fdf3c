"""The fast path never accepts what the models refuse, and agrees on what both accept."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from siyu.collect.fastpath import PLAIN_RULES, fast_fields, plain_properties
from siyu.collect.spec import call_adapter
from siyu.registry import registry

IDS = st.one_of(
    st.none(),
    st.text(max_size=5),
    st.sampled_from(["u1", " padded ", "", "x" * 201, "x" * 200]),
    st.integers(-5, 5),
)
TIMES = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "2025-03-01T10:00:00Z",
            "2025-03-01T10:00:00.123+07:00",
            "2025-03-01 10:00:00+00:00",
            "2025-03-01T10:00:00",
            "2025-03-01",
            "2025-W09-6T10:00:00Z",
            "not a time",
            "2025-13-01T10:00:00Z",
        ]
    ),
    st.integers(0, 2_000_000_000),
)
DOCS = st.one_of(st.none(), st.just({}), st.just({"a": 1}), st.just([1]), st.just("x"))
PAYLOADS = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["track", "identify", "page", "screen", "group", "alias", "x"]),
    },
    optional={
        "messageId": IDS,
        "userId": IDS,
        "anonymousId": IDS,
        "timestamp": TIMES,
        "sentAt": TIMES,
        "event": st.one_of(
            st.none(), st.sampled_from(["", "Order Completed", "e" * 201]), st.integers()
        ),
        "name": st.one_of(st.none(), st.just("Home"), st.just("n" * 201)),
        "properties": DOCS,
        "traits": DOCS,
        "context": DOCS,
        "integrations": DOCS,
    },
)


# too_slow: the first examples pay for building the models' validators on a loaded machine.
@settings(
    max_examples=600, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(payload=PAYLOADS)
def test_fast_path_agrees_with_the_models(payload: dict[str, Any]) -> None:
    fast = fast_fields(payload)
    try:
        model = call_adapter.validate_python(payload).__dict__
    except ValidationError:
        assert fast is None, payload
        return
    if fast is not None:
        for key, value in fast.items():
            assert model[key] == value, (key, payload)
        assert set(fast) == set(model), payload


def test_plain_calls_take_the_fast_path() -> None:
    call = {
        "type": "track",
        "event": "Product Viewed",
        "userId": "u1",
        "messageId": "m1",
        "timestamp": "2025-03-01T10:00:00Z",
        "properties": {"sku": "a"},
    }
    assert fast_fields(call) is not None
    assert fast_fields({**call, "userId": 42}) is None  # numbers go to the models


# Properties of documented events: plain_properties accepts only what the models accept.

PROPERTY_VALUES = st.one_of(
    st.none(),
    st.text(max_size=4),
    st.sampled_from(["a", " a", "a ", "  ", "", "\t", "x" * 200, "x" * 201, "x" * 500, "x" * 501]),
    st.integers(-3, 3),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.just([]),
    st.just({"a": 1}),
)


def _properties_of(model: type[Any]) -> st.SearchStrategy[dict[str, Any]]:
    names = [*model.model_fields, "extra", "path", "value"]
    return st.dictionaries(st.sampled_from(names), PROPERTY_VALUES, max_size=6)


@pytest.mark.parametrize("model", list(PLAIN_RULES), ids=lambda m: m.__name__)
@settings(
    max_examples=400, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(data=st.data())
def test_plain_properties_never_accept_what_the_model_refuses(
    model: type[Any], data: st.DataObject
) -> None:
    props = data.draw(_properties_of(model))
    if plain_properties(PLAIN_RULES[model], props):
        model.model_validate(props)  # raises if the fast path was more permissive


def test_plain_properties_cover_the_common_events() -> None:
    schemas = dict(registry.event_schemas.items())
    view = PLAIN_RULES[schemas["Product Viewed"]]
    assert plain_properties(view, {"category": "baby", "path": "/p/1", "value": 1.5})
    assert not plain_properties(view, {"product_id": "p1"})  # the products table reads it
    assert not plain_properties(view, {"price": 10})  # a Decimal: the model decides
    assert not plain_properties(view, {"category": " baby"})  # the model strips it
    email = PLAIN_RULES[schemas["Email Opened"]]
    assert plain_properties(email, {"campaign": "c1", "campaign_id": "c1"})
    assert schemas["Order Completed"] not in PLAIN_RULES
    assert schemas["Order Refunded"] not in PLAIN_RULES
    assert schemas["Consent Updated"] not in PLAIN_RULES
