"""What names a tag may use: the customer attribute schema, event fields, and references.

A schema is a plain mapping ``name -> type`` (``string``, ``number``, ``date``, ``timestamp``,
``boolean``), so the segments engine can extend it with computed features (RFM scores, spend)
without touching the language. ``traits.*`` (customers) and ``properties.*`` (events) are
untyped JSON: they are compared by the type of what they are compared with.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Literal, Protocol, TypeAlias

AttrType: TypeAlias = Literal["string", "number", "date", "timestamp", "boolean"]
#: The type of an expression: an attribute type, or "json" for untyped traits/properties.
ValueType: TypeAlias = Literal["string", "number", "date", "timestamp", "boolean", "json"]
ATTR_TYPES: tuple[AttrType, ...] = ("string", "number", "date", "timestamp", "boolean")

#: Customer attributes every siyu workspace has (``age`` is derived from ``birthday``).
DEFAULT_SCHEMA: Mapping[str, AttrType] = {
    "customer_id": "string",
    "user_id": "string",
    "email": "string",
    "phone": "string",
    "first_name": "string",
    "last_name": "string",
    "country": "string",
    "language": "string",
    "timezone": "string",
    "currency": "string",
    "birthday": "date",
    "age": "number",
    "first_seen_at": "timestamp",
    "last_seen_at": "timestamp",
}

#: Columns of an event usable inside an event condition (besides ``properties.*``).
EVENT_FIELDS: Mapping[str, AttrType] = {
    "event": "string",
    "type": "string",
    "source_id": "string",
    "name": "string",
}

#: JSON columns: ``traits.x`` on customers, ``properties.x`` on events.
CUSTOMER_JSON = "traits"
EVENT_JSON = "properties"


class Resolver(Protocol):
    """Resolves ``kind:name`` references (``tag:high_value``, ``tier:loyal``, ``segment:x``).

    The segments engine implements it; the language only knows that a reference is a condition.
    ``members`` returns an Ibis table with a ``customer_id`` column and optionally a boolean
    ``matched`` column; a customer satisfies the reference when it has a row (with ``matched``
    true, when that column exists).
    """

    @property
    def kinds(self) -> Collection[str]:
        """Reference kinds this resolver knows, e.g. ``{"tag", "tier", "segment"}``."""
        ...

    def exists(self, kind: str, name: str) -> bool:
        """Whether ``kind:name`` can be resolved (used by the type checker, no query)."""
        ...

    def members(self, kind: str, name: str) -> Any:
        """Ibis table of the customers satisfying ``kind:name``."""
        ...


def schema_from_table(
    table: Any, extra: Mapping[str, AttrType] | None = None
) -> dict[str, AttrType]:
    """A schema from an Ibis table's columns (JSON columns become the ``x.*`` namespaces)."""
    out: dict[str, AttrType] = {}
    for name, dtype in table.schema().items():
        if dtype.is_string():
            out[name] = "string"
        elif dtype.is_numeric():
            out[name] = "number"
        elif dtype.is_timestamp():
            out[name] = "timestamp"
        elif dtype.is_date():
            out[name] = "date"
        elif dtype.is_boolean():
            out[name] = "boolean"
    out.update(extra or {})
    return out
