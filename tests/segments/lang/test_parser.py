"""Tokenizer and parser: the example from the issue, precedence, and every syntax error."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from siyu.errors import InvalidInput
from siyu.segments.lang import TagSyntaxError, parse, window_start
from siyu.segments.lang.nodes import (
    Between,
    BoolOp,
    Call,
    Compare,
    InList,
    IsNull,
    Literal,
    Not,
    Path,
    Reference,
    Span,
    Window,
)
from siyu.segments.lang.tokens import tokenize
from tests.segments.lang.cases import SYNTAX_ERRORS

EXAMPLE = (
    'country in ("ID","TH","MY","PH") and age between 25 and 35 and '
    'count(event == "Product Viewed" and properties.category == "baby", last 30d) > 5 and '
    'count(event == "Community Message Posted", last 30d) >= 3'
)


def s(text: str) -> Literal:
    return Literal("string", text)


def n(value: int | Decimal) -> Literal:
    return Literal("number", value)


def p(*parts: str) -> Path:
    return Path(parts)


def test_tokens() -> None:
    toks = tokenize("count(x, last 12w) >= -1.50 'a\\'b' tag:high-value")
    assert [(t.kind, t.text) for t in toks] == [
        ("ident", "count"),
        ("punct", "("),
        ("ident", "x"),
        ("punct", ","),
        ("keyword", "last"),
        ("duration", "12w"),
        ("punct", ")"),
        ("op", ">="),
        ("number", "-1.50"),
        ("string", "'a\\'b'"),
        ("reference", "tag:high-value"),
        ("eof", ""),
    ]
    assert toks[5].value == (12, "w")
    assert toks[8].value == Decimal("-1.50")
    assert toks[9].value == "a'b"
    assert toks[10].value == ("tag", "high-value")


def test_string_escapes() -> None:
    assert parse(r'x == "a\"b\\c\n\t\u4e2d"') == Compare("==", p("x"), s('a"b\\c\n\t中'))


def test_the_issue_example() -> None:
    category = Compare("==", p("properties", "category"), s("baby"))
    viewed = BoolOp("and", Compare("==", p("event"), s("Product Viewed")), category)
    posted = Compare("==", p("event"), s("Community Message Posted"))
    expected = BoolOp(
        "and",
        BoolOp(
            "and",
            BoolOp(
                "and",
                InList(p("country"), (s("ID"), s("TH"), s("MY"), s("PH"))),
                Between(p("age"), n(25), n(35)),
            ),
            Compare(">", Call("count", (viewed,), Window(30, "d")), n(5)),
        ),
        Compare(">=", Call("count", (posted,), Window(30, "d")), n(3)),
    )
    assert parse(EXAMPLE) == expected


def test_precedence_and_grouping() -> None:
    a, b, c = (Compare("==", p(x), n(1)) for x in "abc")
    assert parse("a == 1 or b == 1 and c == 1") == BoolOp("or", a, BoolOp("and", b, c))
    assert parse("(a == 1 or b == 1) and c == 1") == BoolOp("and", BoolOp("or", a, b), c)
    assert parse("not a == 1 and b == 1") == BoolOp("and", Not(a), b)
    assert parse("not not a == 1") == Not(Not(a))
    assert parse("a == 1 and b == 1 and c == 1") == BoolOp("and", BoolOp("and", a, b), c)


def test_every_form() -> None:
    assert parse("x not in (1, 2.5, true)") == InList(
        p("x"), (n(1), n(Decimal("2.5")), Literal("boolean", True)), negated=True
    )
    assert parse("x not between 1 and 2") == Between(p("x"), n(1), n(2), negated=True)
    assert parse("x is null") == IsNull(p("x"))
    assert parse("x is not null") == IsNull(p("x"), negated=True)
    assert parse("tier:loyal") == Reference("tier", "loyal")
    assert parse('traits."first order".x') == p("traits", "first order", "x")
    assert parse("count() > 0") == Compare(">", Call("count", ()), n(0))
    assert parse("days_since(last 1y) < 2") == Compare(
        "<", Call("days_since", (), Window(1, "y")), n(2)
    )
    assert parse("sum(properties.total, type == 'track', last 6m) >= 100") == Compare(
        ">=",
        Call(
            "sum",
            (p("properties", "total"), Compare("==", p("type"), s("track"))),
            Window(6, "m"),
        ),
        n(100),
    )


def test_spans_point_into_the_source() -> None:
    tree = parse("  age >= 30")
    assert isinstance(tree, Compare)
    assert tree.span == Span(2, 11)
    assert tree.left.span == Span(2, 5)
    assert tree.right.span == Span(9, 11)


@pytest.mark.parametrize(("source", "message"), SYNTAX_ERRORS, ids=[m for _, m in SYNTAX_ERRORS])
def test_syntax_errors(source: str, message: str) -> None:
    with pytest.raises(TagSyntaxError) as info:
        parse(source)
    err = info.value
    assert err.message == message
    assert isinstance(err, InvalidInput)
    assert message.startswith(f"at {err.line}:{err.column}:")
    assert err.details["offset"] == err.offset
    caret_line = err.snippet.splitlines()[-1]
    assert caret_line.index("^") == err.column - 1


def test_positions_on_later_lines() -> None:
    with pytest.raises(TagSyntaxError) as info:
        parse('country == "ID"\n  and age >\n')
    err = info.value
    assert (err.line, err.column, err.offset) == (2, 12, 27)
    assert err.message == "at 2:12: expected a value after '>', found end of input"
    assert err.snippet == "  and age >\n           ^"
    assert err.expected == ("a value",)
    assert err.render().endswith(err.snippet)


def test_error_envelope_is_the_api_shape() -> None:
    with pytest.raises(TagSyntaxError) as info:
        parse("country in ( )")
    body = info.value.envelope()["error"]
    assert body["code"] == "invalid"
    assert body["field"] == "expression"
    assert body["details"]["line"] == 1
    assert body["details"]["column"] == 14
    assert body["details"]["expected"] == ["a string", "a number", "true", "false"]


@pytest.mark.parametrize(
    ("window", "as_of", "start"),
    [
        (Window(30, "d"), datetime(2025, 6, 30, 12), datetime(2025, 5, 31, 12)),
        (Window(2, "w"), datetime(2025, 6, 30), datetime(2025, 6, 16)),
        (Window(1, "m"), datetime(2025, 3, 31, 8), datetime(2025, 2, 28, 8)),
        (Window(1, "m"), datetime(2024, 3, 31), datetime(2024, 2, 29)),
        (Window(14, "m"), datetime(2025, 1, 15), datetime(2023, 11, 15)),
        (Window(1, "y"), datetime(2024, 2, 29), datetime(2023, 2, 28)),
    ],
)
def test_window_start(window: Window, as_of: datetime, start: datetime) -> None:
    assert window_start(window, as_of) == start
