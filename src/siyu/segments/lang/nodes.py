"""The typed syntax tree of the tag language.

Nodes are frozen dataclasses. Every node carries its source ``span`` (offsets into the text), but
spans are excluded from equality and hashing: two trees are equal when they mean the same thing,
wherever they were written. That makes structurally identical aggregates share one column in the
compiled query, and lets the round-trip test compare a re-parsed pretty-print with the original.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal as TypingLiteral
from typing import TypeAlias

CompareOp: TypeAlias = TypingLiteral["==", "!=", "<", "<=", ">", ">="]
COMPARE_OPS: tuple[CompareOp, ...] = ("==", "!=", "<", "<=", ">", ">=")
LiteralKind: TypeAlias = TypingLiteral["string", "number", "boolean"]
DurationUnit: TypeAlias = TypingLiteral["d", "w", "m", "y"]


@dataclass(frozen=True)
class Span:
    """Half-open character range ``[start, end)`` in the source."""

    start: int
    end: int


NO_SPAN = Span(0, 0)


@dataclass(frozen=True)
class Literal:
    """A string, number (int or Decimal) or boolean written in the source."""

    kind: LiteralKind
    value: str | int | Decimal | bool
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True)
class Path:
    """An attribute: ``country``, ``traits.vip``, ``properties.category`` or ``event``."""

    parts: tuple[str, ...]
    span: Span = field(default=NO_SPAN, compare=False, repr=False)

    @property
    def dotted(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True)
class Reference:
    """``tag:high_value``, ``tier:loyal``, ``segment:x``: resolved by a :class:`Resolver`."""

    kind: str
    name: str
    span: Span = field(default=NO_SPAN, compare=False, repr=False)

    @property
    def text(self) -> str:
        return f"{self.kind}:{self.name}"


@dataclass(frozen=True)
class Window:
    """``last 30d``: events with ``as_of - 30 days < timestamp <= as_of``."""

    amount: int
    unit: DurationUnit
    span: Span = field(default=NO_SPAN, compare=False, repr=False)

    @property
    def text(self) -> str:
        return f"last {self.amount}{self.unit}"


@dataclass(frozen=True)
class Call:
    """An aggregate over the customer's events: ``count(PRED, last 30d)``."""

    name: str
    args: tuple[Expr, ...]
    window: Window | None = None
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True)
class Compare:
    op: CompareOp
    left: Expr
    right: Expr
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True)
class InList:
    """``x in ("a", "b")`` or, with ``negated``, ``x not in (...)``."""

    operand: Expr
    items: tuple[Literal, ...]
    negated: bool = False
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True)
class Between:
    """``x between low and high``, both ends included (``not between`` when negated)."""

    operand: Expr
    low: Expr
    high: Expr
    negated: bool = False
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True)
class IsNull:
    operand: Expr
    negated: bool = False
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True)
class Not:
    operand: Expr
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True)
class BoolOp:
    """``left and right`` / ``left or right`` (left-associative, ``and`` binds tighter)."""

    op: TypingLiteral["and", "or"]
    left: Expr
    right: Expr
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


Expr: TypeAlias = (
    Literal | Path | Reference | Call | Compare | InList | Between | IsNull | Not | BoolOp
)
#: Nodes that are conditions by construction (printed in parentheses when used as a value).
CONDITIONS = (Compare, InList, Between, IsNull, Not, BoolOp)


def children(node: Expr) -> tuple[Expr, ...]:
    """Direct sub-expressions, in source order."""
    if isinstance(node, Call):
        return node.args
    if isinstance(node, Compare | BoolOp):
        return (node.left, node.right)
    if isinstance(node, InList):
        return (node.operand, *node.items)
    if isinstance(node, Between):
        return (node.operand, node.low, node.high)
    if isinstance(node, IsNull | Not):
        return (node.operand,)
    return ()


def walk(node: Expr) -> list[Expr]:
    """Every node of the tree, parents before children."""
    out: list[Expr] = [node]
    for child in children(node):
        out.extend(walk(child))
    return out
