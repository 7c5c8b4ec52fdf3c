"""The fast path never accepts what the models refuse, and agrees on what both accept."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from siyu.collect.fastpath import fast_fields
from siyu.collect.spec import call_adapter

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


@settings(max_examples=600, derandomize=True)
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
