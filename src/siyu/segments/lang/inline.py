"""Tags that use other tags of the same catalogue, compiled as one query.

``tag:engaged_mum`` inside another definition of the same batch is replaced by that
definition's syntax tree before compiling, so a whole catalogue of tags that build on each
other is still one scan of the events (equal aggregates are shared, see the compiler).
References to anything else are left for the :class:`~siyu.segments.lang.schema.Resolver`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from typing import Any

from siyu.segments.lang.checker import Checker
from siyu.segments.lang.errors import TagTypeError, line_col
from siyu.segments.lang.nodes import (
    Between,
    BoolOp,
    Call,
    Compare,
    Expr,
    InList,
    IsNull,
    Not,
    Reference,
    walk,
)
from siyu.segments.lang.parser import parse
from siyu.segments.lang.schema import AttrType, Resolver


def transform(node: Expr, fn: Callable[[Expr], Expr | None]) -> Expr:
    """``node`` with every sub-tree for which ``fn`` returns a node replaced by it."""
    found = fn(node)
    if found is not None:
        return found
    if isinstance(node, Call):
        return replace(node, args=tuple(transform(a, fn) for a in node.args))
    if isinstance(node, Compare | BoolOp):
        return replace(node, left=transform(node.left, fn), right=transform(node.right, fn))
    if isinstance(node, InList | IsNull | Not):
        return replace(node, operand=transform(node.operand, fn))
    if isinstance(node, Between):
        return replace(
            node,
            operand=transform(node.operand, fn),
            low=transform(node.low, fn),
            high=transform(node.high, fn),
        )
    return node


class _Local:
    """A resolver that also knows the definitions of the batch (for type checking)."""

    def __init__(self, kind: str, names: Collection[str], outer: Resolver | None) -> None:
        self.kind, self.names, self.outer = kind, set(names), outer

    @property
    def kinds(self) -> Collection[str]:
        return {self.kind, *(self.outer.kinds if self.outer else ())}

    def exists(self, kind: str, name: str) -> bool:
        if kind == self.kind and name in self.names:
            return True
        return self.outer is not None and self.outer.exists(kind, name)

    def members(self, kind: str, name: str) -> Any:
        assert self.outer is not None
        return self.outer.members(kind, name)


def inline_references(
    definitions: Mapping[str, str],
    *,
    kind: str = "tag",
    schema: Mapping[str, AttrType] | None = None,
    resolver: Resolver | None = None,
) -> dict[str, Expr]:
    """Checked trees of ``definitions`` with ``kind:name`` of the batch replaced by its tree.

    Raises :class:`TagTypeError` for a definition that refers back to itself, pointing at the
    reference that closes the cycle.
    """
    trees = {name: parse(text) for name, text in definitions.items()}
    local = _Local(kind, trees, resolver)
    for name, tree in trees.items():
        Checker(definitions[name], schema, local).check(tree)
    done: dict[str, Expr] = {}

    def expand(name: str, stack: tuple[str, ...]) -> Expr:
        if name in done:
            return done[name]
        for node in walk(trees[name]):
            if isinstance(node, Reference) and node.kind == kind and node.name in (*stack, name):
                source = definitions[name]
                line, col = line_col(source, node.span.start)
                chain = " -> ".join((*stack, name, node.name))
                raise TagTypeError(
                    f"{node.text} refers back to itself ({chain}) at {line}:{col}",
                    source=source,
                    offset=node.span.start,
                    length=node.span.end - node.span.start,
                )

        def substitute(node: Expr) -> Expr | None:
            if isinstance(node, Reference) and node.kind == kind and node.name in trees:
                return expand(node.name, (*stack, name))
            return None

        done[name] = transform(trees[name], substitute)
        return done[name]

    return {name: expand(name, ()) for name in trees}
