"""Why a customer has or lacks a tag: every sub-expression's value for one customer.

The expression is compiled as for a whole workspace, then each node of the tree becomes one
column of a single one-row query filtered to the customer. The result is a tree of
:class:`Step` objects that ``siyu tags explain`` prints and the API returns as JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from siyu.errors import NotFound
from siyu.segments.lang.compiler import Compiler
from siyu.segments.lang.nodes import (
    CONDITIONS,
    BoolOp,
    Call,
    Expr,
    Literal,
    Not,
    Path,
    Reference,
    children,
)
from siyu.segments.lang.printer import to_text
from siyu.segments.lang.schema import AttrType, Resolver


@dataclass(frozen=True)
class Step:
    """One sub-expression: its text, its value for the customer and, if a condition, whether held.

    ``held`` is None for plain values (attributes, aggregates) and for conditions whose value is
    unknown because an attribute is missing.
    """

    text: str
    kind: str
    value: Any
    held: bool | None
    children: tuple[Step, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "kind": self.kind,
            "value": _jsonable(self.value),
            "held": self.held,
            "children": [c.to_dict() for c in self.children],
        }


@dataclass(frozen=True)
class Explanation:
    customer_id: str
    expression: str
    as_of: datetime
    matched: bool
    root: Step

    def lines(self) -> list[str]:
        """An indented, human-readable account, one sub-expression per line."""
        verdict = "has" if self.matched else "lacks"
        out = [f"{self.customer_id} {verdict} the tag (as of {self.as_of.isoformat()})"]

        def visit(step: Step, depth: int) -> None:
            mark = {True: "yes", False: "no", None: "unknown"}[step.held]
            if step.kind in ("attribute", "aggregate", "literal") and step.held is None:
                shown = f"{step.text} = {_show(step.value)}"
            else:
                shown = f"[{mark}] {step.text}"
            out.append("  " * (depth + 1) + shown)
            for child in step.children:
                visit(child, depth + 1)

        visit(self.root, 0)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "expression": self.expression,
            "as_of": self.as_of.isoformat(),
            "matched": self.matched,
            "explanation": self.root.to_dict(),
        }


def _kind(node: Expr) -> str:
    if isinstance(node, Literal):
        return "literal"
    if isinstance(node, Path):
        return "attribute"
    if isinstance(node, Call):
        return "aggregate"
    if isinstance(node, Reference):
        return "reference"
    return type(node).__name__.lower()


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def _show(value: Any) -> str:
    if value is None:
        return "missing"
    if isinstance(value, str):
        return repr(value)
    return str(_jsonable(value))


def explain(
    expression: str | Expr,
    customer_id: str,
    *,
    customers: Any,
    events: Any,
    as_of: datetime,
    schema: Mapping[str, AttrType] | None = None,
    resolver: Resolver | None = None,
) -> Explanation:
    """Evaluate every sub-expression of ``expression`` for ``customer_id`` in one query."""
    compiler = Compiler(
        customers=customers, events=events, as_of=as_of, schema=schema, resolver=resolver
    )
    tree = compiler.add(expression)
    table = compiler.joined()
    nodes: list[tuple[Expr, bool]] = []

    def collect(node: Expr, as_condition: bool) -> None:
        nodes.append((node, as_condition))
        if isinstance(node, Call):  # an aggregate is a leaf: its value is what matters
            return
        nested = isinstance(node, BoolOp | Not)
        for child in children(node):
            collect(child, nested)

    collect(tree, True)
    columns: dict[str, Any] = {}
    for i, (node, as_condition) in enumerate(nodes):
        if isinstance(node, Literal):
            continue
        if as_condition or isinstance(node, CONDITIONS):
            columns[f"n{i}"] = compiler.condition(node, "customer", table)
        elif isinstance(node, Path) and compiler.checker.path_type(node, "customer") == "json":
            columns[f"n{i}"] = compiler.value(node, "customer", table, "json").cast("string")
        else:
            columns[f"n{i}"] = compiler.value(node, "customer", table)
    one = table.filter(table.customer_id == customer_id)
    row_expr = one.select("customer_id", **columns).limit(1)
    rows = row_expr.to_pyarrow().to_pylist()
    if not rows:
        raise NotFound(
            f"Customer '{customer_id}' is not in this workspace (as of {as_of.isoformat()}).",
            hint="Check the customer id (siyu customers list) or the as-of date.",
        )
    row = rows[0]
    position = iter(range(len(nodes)))

    def build(node: Expr) -> Step:
        i = next(position)
        sub = () if isinstance(node, Call) else tuple(build(c) for c in children(node))
        if isinstance(node, BoolOp):  # a and b and c: one step with three children
            sub = tuple(
                grand
                for child, step in zip(children(node), sub, strict=True)
                for grand in (step.children if _same_op(child, node) else (step,))
            )
        sub = tuple(step for step in sub if step.kind != "literal")  # literals speak for themselves
        if isinstance(node, Literal):
            held_literal = bool(node.value) if nodes[i][1] else None  # `true` as a whole tag
            return Step(to_text(node), "literal", node.value, held_literal, sub)
        value = row[f"n{i}"]
        is_condition = nodes[i][1] or isinstance(node, CONDITIONS)
        held = (bool(value) if value is not None else None) if is_condition else None
        return Step(to_text(node), _kind(node), value, held, sub)

    root = build(tree)
    return Explanation(customer_id, to_text(tree), compiler.as_of, root.held is True, root)


def _same_op(child: Expr, parent: BoolOp) -> bool:
    return isinstance(child, BoolOp) and child.op == parent.op
