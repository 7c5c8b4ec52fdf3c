"""Type checker: names per context, compatible comparisons, references; every type error."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

import pytest

from siyu.segments.lang import (
    DEFAULT_SCHEMA,
    TagTypeError,
    inline_references,
    normalise,
    to_text,
    validate,
)
from tests.segments.lang.cases import (
    CYCLE_ERROR,
    NO_RESOLVER_ERROR,
    REFERENCE_ERRORS,
    SYNTAX_ERRORS,
    TYPE_ERRORS,
)
from tests.segments.lang.test_parser import EXAMPLE

DOCS = Path(__file__).resolve().parents[3] / "docs" / "tags.md"


class Resolver:
    kinds: Collection[str] = ("tag", "tier")

    def exists(self, kind: str, name: str) -> bool:
        return (kind, name) in {("tag", "vip"), ("tier", "loyal")}

    def members(self, kind: str, name: str) -> Any:
        raise AssertionError("the checker never queries")


def test_the_issue_example_type_checks() -> None:
    validate(EXAMPLE)


@pytest.mark.parametrize(
    "source",
    [
        "traits.vip",
        "traits.vip == true and traits.score > 3 and traits.city in ('Jakarta', 'Bandung')",
        'birthday < "2000-01-01" and first_seen_at >= "2025-01-01T08:00:00"',
        "not (age < 18) and language is not null",
        "count(properties.vip) > 0",
        "sum(properties.total, event == 'Order Completed', last 90d) >= 100.5",
        "avg(properties.price) between 10 and 20 and days_since() is null",
        "count(source_id == 'shopify' and name != 'x' and type == 'track') > 0",
        "(age > 1) == true",
    ],
)
def test_well_typed(source: str) -> None:
    validate(source)


def test_schema_is_pluggable() -> None:
    schema = {**DEFAULT_SCHEMA, "rfm_score": "number", "vip": "boolean"}
    validate("rfm_score >= 4 and vip", schema=schema)
    with pytest.raises(TagTypeError, match="unknown attribute 'age'"):
        validate("age > 3", schema={"country": "string"})


def test_references_with_a_resolver() -> None:
    validate("tag:vip and not tier:loyal", resolver=Resolver())


@pytest.mark.parametrize(("source", "message"), TYPE_ERRORS, ids=[m for _, m in TYPE_ERRORS])
def test_type_errors(source: str, message: str) -> None:
    with pytest.raises(TagTypeError) as info:
        validate(source)
    err = info.value
    assert err.message == message
    assert message.endswith(f" at {err.line}:{err.column}")
    assert err.snippet.splitlines()[-1].index("^") == err.column - 1


@pytest.mark.parametrize(("source", "message"), [*REFERENCE_ERRORS, NO_RESOLVER_ERROR])
def test_reference_errors(source: str, message: str) -> None:
    resolver = None if (source, message) == NO_RESOLVER_ERROR else Resolver()
    with pytest.raises(TagTypeError) as info:
        validate(source, resolver=resolver)
    assert info.value.message == message


ALL_MESSAGES = [m for _, m in [*SYNTAX_ERRORS, *TYPE_ERRORS, *REFERENCE_ERRORS, NO_RESOLVER_ERROR]]


@pytest.mark.parametrize("message", ALL_MESSAGES)
def test_every_error_message_is_documented(message: str) -> None:
    assert message in DOCS.read_text(encoding="utf-8"), f"docs/tags.md lacks: {message}"


def test_normalise() -> None:
    assert normalise("(a==1)and(b==2 or c==3)") == ("a == 1 and (b == 2 or c == 3)")


def test_inline_references_of_the_same_batch() -> None:
    trees = inline_references(
        {
            "mum": 'count(properties.category == "baby", last 90d) > 2',
            "engaged_mum": "tag:mum and count(event == 'Community Message Posted') >= 3",
            "sea_engaged_mum": 'country in ("ID", "TH") and tag:engaged_mum and tier:loyal',
        },
        resolver=Resolver(),
    )
    assert to_text(trees["sea_engaged_mum"]) == (
        'country in ("ID", "TH") and (count(properties.category == "baby", last 90d) > 2 and '
        'count(event == "Community Message Posted") >= 3) and tier:loyal'
    )


@pytest.mark.parametrize(
    ("definitions", "message"),
    [
        ({"a": "tag:b and age > 1", "b": "country == 'ID' or tag:a"}, CYCLE_ERROR),
        ({"a": "age > 1 and tag:a"}, "tag:a refers back to itself (a -> a) at 1:13"),
        ({"a": "tag:zzz"}, "unknown tag 'zzz' at 1:1"),
    ],
)
def test_inline_reference_errors(definitions: dict[str, str], message: str) -> None:
    with pytest.raises(TagTypeError) as info:
        inline_references(definitions, resolver=Resolver())
    assert info.value.message == message
