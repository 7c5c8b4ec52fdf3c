"""The tag language: parse, type-check, compile to Ibis, explain. See docs/tags.md.

Typical use by the segments engine::

    customers = customer_attributes(t.customers, as_of)        # adds ``age``
    table = compile_tags({"baby_sea": text, ...}, customers=customers, events=t.events,
                         as_of=as_of, resolver=my_resolver)   # customer_id + one bool per tag
    why = explain(text, "cus_...", customers=customers, events=t.events, as_of=as_of)

Tags of one catalogue that use each other (``tag:x`` where ``x`` is in the same batch) are
inlined first, so the whole catalogue is still one scan::

    table = compile_tags(inline_references(definitions, resolver=r), ..., resolver=r)

``validate(text)`` parses and type-checks without touching data (for editors and the API).
"""

from __future__ import annotations

from collections.abc import Mapping

from siyu.segments.lang.checker import Checker
from siyu.segments.lang.compiler import (
    Compiler,
    compile_tag,
    compile_tags,
    customer_attributes,
    window_start,
    with_age,
)
from siyu.segments.lang.errors import TagError, TagSyntaxError, TagTypeError
from siyu.segments.lang.explain import Explanation, Step, explain
from siyu.segments.lang.functions import BUILTIN_FUNCTIONS, AggregateFunction, register
from siyu.segments.lang.inline import inline_references
from siyu.segments.lang.nodes import Expr
from siyu.segments.lang.parser import parse
from siyu.segments.lang.printer import to_text
from siyu.segments.lang.schema import (
    DEFAULT_SCHEMA,
    EVENT_FIELDS,
    AttrType,
    Resolver,
    schema_from_table,
)


def validate(
    source: str,
    schema: Mapping[str, AttrType] | None = None,
    resolver: Resolver | None = None,
) -> Expr:
    """Parse and type-check ``source``; returns the tree or raises :class:`TagError`."""
    tree = parse(source)
    Checker(source, schema, resolver).check(tree)
    return tree


def normalise(source: str) -> str:
    """The canonical text of ``source`` (what to store and show back)."""
    return to_text(parse(source))


__all__ = [
    "BUILTIN_FUNCTIONS",
    "DEFAULT_SCHEMA",
    "EVENT_FIELDS",
    "AggregateFunction",
    "AttrType",
    "Compiler",
    "Explanation",
    "Expr",
    "Resolver",
    "Step",
    "TagError",
    "TagSyntaxError",
    "TagTypeError",
    "compile_tag",
    "compile_tags",
    "customer_attributes",
    "explain",
    "inline_references",
    "normalise",
    "parse",
    "register",
    "schema_from_table",
    "to_text",
    "validate",
    "window_start",
    "with_age",
]
