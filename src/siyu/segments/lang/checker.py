"""The type checker: every name known, every comparison between compatible types.

Two contexts: the *customer* context (attributes from the schema, ``traits.*``, aggregates,
references) and the *event* context inside an aggregate's condition (``event``, ``type``,
``source_id``, ``name``, ``properties.*``). Using a name in the wrong context is an error with its
position, as is comparing a number with a string. Errors read
``'age' is a number; cannot compare it with the string "x" at 1:7``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from datetime import date, datetime
from typing import Literal as TypingLiteral

from siyu.segments.lang.errors import TagTypeError, line_col
from siyu.segments.lang.functions import AggregateFunction, known_names, lookup
from siyu.segments.lang.nodes import (
    Between,
    BoolOp,
    Call,
    Compare,
    CompareOp,
    Expr,
    InList,
    IsNull,
    Literal,
    Not,
    Path,
    Reference,
)
from siyu.segments.lang.printer import literal_text, to_text
from siyu.segments.lang.schema import (
    CUSTOMER_JSON,
    DEFAULT_SCHEMA,
    EVENT_FIELDS,
    EVENT_JSON,
    AttrType,
    Resolver,
    ValueType,
)

Context = TypingLiteral["customer", "event"]
_ARTICLE = {"string": "a string", "number": "a number", "date": "a date"}
_ARTICLE |= {"timestamp": "a timestamp", "boolean": "a boolean", "json": "an untyped JSON value"}


def parse_temporal(text: str, kind: str) -> date | datetime | None:
    """The date or timestamp written in a string literal, or None if it is not one."""
    try:
        if kind == "date":
            return date.fromisoformat(text)
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value


class Checker:
    """Types of nodes under one schema; :meth:`check` validates a whole expression."""

    def __init__(
        self,
        source: str,
        schema: Mapping[str, AttrType] | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.source = source
        self.schema = dict(DEFAULT_SCHEMA if schema is None else schema)
        self.resolver = resolver

    # -- errors ----------------------------------------------------------------------------------

    def fail(self, message: str, node: Expr, *expected: str) -> TagTypeError:
        line, col = line_col(self.source, node.span.start)
        return TagTypeError(
            f"{message} at {line}:{col}",
            source=self.source,
            offset=node.span.start,
            length=max(1, node.span.end - node.span.start),
            expected=expected,
        )

    def describe(self, node: Expr) -> str:
        if isinstance(node, Literal):
            if node.kind == "boolean":
                return literal_text(node)
            return f"the {node.kind} {literal_text(node)}"
        if isinstance(node, Path):
            return f"'{node.dotted}'"
        return to_text(node)

    # -- public ----------------------------------------------------------------------------------

    def check(self, node: Expr) -> None:
        """Raise :class:`TagTypeError` unless ``node`` is a well-typed customer condition."""
        self.condition(node, "customer")

    def condition(self, node: Expr, ctx: Context) -> None:
        """``node`` must be true/false: a comparison, a boolean, a reference, ``and``..."""
        kind = self.type_of(node, ctx)
        if kind in ("boolean", "json"):
            return
        if isinstance(node, Call):
            hint = f"compare it, as in {to_text(node)} > 0"
        elif isinstance(node, Literal):
            raise self.fail(f"{self.describe(node)} is not a condition", node, "a condition")
        else:
            hint = f"a condition needs a comparison, such as {to_text(node)} == ..."
        raise self.fail(f"{self.describe(node)} is {_ARTICLE[kind]}; {hint}", node, "a condition")

    def type_of(self, node: Expr, ctx: Context) -> ValueType:
        if isinstance(node, Literal):
            return node.kind
        if isinstance(node, Path):
            return self.path_type(node, ctx)
        if isinstance(node, Reference):
            self.reference(node, ctx)
            return "boolean"
        if isinstance(node, Call):
            self.call(node, ctx)
            return "number"
        if isinstance(node, BoolOp):
            self.condition(node.left, ctx)
            self.condition(node.right, ctx)
        elif isinstance(node, Not):
            self.condition(node.operand, ctx)
        elif isinstance(node, Compare):
            self.compare(node.op, node.left, node.right, ctx)
        elif isinstance(node, InList):
            for item in node.items:
                self.compare("==", node.operand, item, ctx)
        elif isinstance(node, Between):
            self.compare("<=", node.operand, node.low, ctx)
            self.compare("<=", node.operand, node.high, ctx)
            low, high = self.type_of(node.low, ctx), self.type_of(node.high, ctx)
            if self.type_of(node.operand, ctx) == "json" and low != high:
                raise self.fail(
                    f"the bounds of 'between' must have one type; found {self.describe(node.low)} "
                    f"and {self.describe(node.high)}",
                    node.high,
                )
        elif isinstance(node, IsNull):
            self.type_of(node.operand, ctx)
        return "boolean"

    # -- names -----------------------------------------------------------------------------------

    def path_type(self, node: Path, ctx: Context) -> ValueType:
        name, head = node.dotted, node.parts[0]
        if ctx == "event":
            if name in EVENT_FIELDS:
                return EVENT_FIELDS[name]
            if head == EVENT_JSON and len(node.parts) > 1:
                return "json"
            if head == EVENT_JSON:
                raise self.fail("expected a property name after 'properties.'", node)
            if name in self.schema or head == CUSTOMER_JSON:
                raise self.fail(
                    f"'{name}' is a customer attribute; inside an event condition only "
                    "event, type, source_id, name and properties.* are allowed",
                    node,
                    *EVENT_FIELDS,
                    "properties.*",
                )
            raise self.unknown(node, [*EVENT_FIELDS, EVENT_JSON], "event field")
        if name in self.schema:
            return self.schema[name]
        if head == CUSTOMER_JSON and len(node.parts) > 1:
            return "json"
        if head == EVENT_JSON or name in EVENT_FIELDS:
            what = "an event property" if head == EVENT_JSON else "an event field"
            raise self.fail(
                f"'{name}' is {what}; use it inside an event function, "
                f"as in count({name} == ..., last 30d)",
                node,
            )
        raise self.unknown(node, [*self.schema, CUSTOMER_JSON], "attribute")

    def unknown(self, node: Path, names: list[str], what: str) -> TagTypeError:
        close = difflib.get_close_matches(node.dotted, names, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return self.fail(f"unknown {what} '{node.dotted}'{hint}", node, *sorted(names))

    def reference(self, node: Reference, ctx: Context) -> None:
        if ctx == "event":
            raise self.fail(f"{node.text} cannot be used inside an event condition", node)
        if self.resolver is None:
            raise self.fail(f"{node.text}: references cannot be used here", node)
        kinds = sorted(self.resolver.kinds)
        if node.kind not in kinds:
            known = ", ".join(kinds) or "none"
            raise self.fail(f"unknown reference kind '{node.kind}:' (known: {known})", node, *kinds)
        if not self.resolver.exists(node.kind, node.name):
            raise self.fail(f"unknown {node.kind} '{node.name}'", node)

    def call(self, node: Call, ctx: Context) -> AggregateFunction:
        if ctx == "event":
            raise self.fail(f"{node.name}() cannot be nested inside an event condition", node)
        function = lookup(node.name)
        if function is None:
            names = known_names()
            close = difflib.get_close_matches(node.name, names, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise self.fail(
                f"unknown function '{node.name}'; {hint}(functions: {', '.join(names)})",
                node,
                *names,
            )
        args = list(node.args)
        usage = f"usage: {function.signature}"
        if function.takes_value:
            if not args:
                raise self.fail(
                    f"{node.name}() needs a value such as properties.total; {usage}", node
                )
            value = args.pop(0)
            kind = self.type_of(value, "event")
            if kind not in ("number", "json"):
                raise self.fail(
                    f"{node.name}() needs a number, but {self.describe(value)} is "
                    f"{_ARTICLE[kind]}; {usage}",
                    value,
                )
        if len(args) > 1:
            raise self.fail(f"too many arguments to {node.name}(); {usage}", args[1])
        if args:
            self.condition(args[0], "event")
        return function

    # -- comparisons -----------------------------------------------------------------------------

    def compare(self, op: CompareOp, left: Expr, right: Expr, ctx: Context) -> None:
        lt, rt = self.type_of(left, ctx), self.type_of(right, ctx)
        # The typed side is the authority; the error points at the other one.
        anchor, other, at, ot = (
            (right, left, rt, lt) if _is_literal(left) else (left, right, lt, rt)
        )
        if lt == "json" and rt == "json":
            raise self.fail(
                f"cannot compare two untyped values ({self.describe(left)} and "
                f"{self.describe(right)}); compare one of them with a literal",
                right,
            )
        if "json" in (lt, rt):
            typed = rt if lt == "json" else lt
            if typed in ("date", "timestamp"):
                raise self.fail(
                    f"cannot compare an untyped JSON value with {_ARTICLE[typed]}", right
                )
        elif at in ("date", "timestamp") and ot == "string" and isinstance(other, Literal):
            if parse_temporal(str(other.value), at) is None:
                example = '"2025-01-31"' if at == "date" else '"2025-01-31T12:00:00"'
                raise self.fail(
                    f"{self.describe(anchor)} is {_ARTICLE[at]}; cannot compare it with "
                    f"{self.describe(other)} (write {at}s as {example})",
                    other,
                )
        elif at != ot:
            raise self.fail(
                f"{self.describe(anchor)} is {_ARTICLE[at]}; cannot compare it with "
                f"{self.describe(other)}",
                other,
                at,
            )
        if op not in ("==", "!=") and "boolean" in (lt, rt):
            raise self.fail(f"booleans can only be compared with == or != (found '{op}')", right)


def _is_literal(node: Expr) -> bool:
    return isinstance(node, Literal)


def check(
    source: str,
    node: Expr,
    schema: Mapping[str, AttrType] | None = None,
    resolver: Resolver | None = None,
) -> None:
    """Type-check ``node`` (parsed from ``source``); raises :class:`TagTypeError`."""
    Checker(source, schema, resolver).check(node)
