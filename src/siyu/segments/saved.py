"""Saved segments: named expressions over tags, tiers, RFM, reachability and attributes.

A segment is written in the tag language (docs/tags.md) plus the references of
:mod:`siyu.segments.resolver`, for example
``tag:high_potential_baby and tier:loyal and reachable:whatsapp``. It is parsed into a tree and
type-checked (errors carry line, column and a caret), and compiled to one Ibis expression, so a
live count while editing, a refresh of every segment and an export all run as set-based SQL on
the engine in use. Definitions are versioned: each update bumps ``version`` and ``updated_at``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from siyu.access import Workspace, utcnow
from siyu.compute import WorkspaceTables, tables
from siyu.errors import Conflict, InvalidInput, NotFound
from siyu.segments.attributes import tag_attributes, tag_schema
from siyu.segments.lang import (
    DEFAULT_SCHEMA,
    Expr,
    compile_tags,
    customer_attributes,
    inline_references,
    normalise,
    parse,
)
from siyu.segments.lang.nodes import Call, Path, Reference, children, walk
from siyu.segments.resolver import SegmentResolver
from siyu.segments.tables import segment_definitions, segment_members, segment_snapshots
from siyu.segments.tagging import all_tags
from siyu.store import Database

SEGMENT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,79}$")
DRAFT = "__draft__"


@dataclass(frozen=True)
class Segment:
    segment_id: str
    name: str
    description: str
    expression: str
    version: int
    created_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "segment_id": self.segment_id,
            "name": self.name,
            "description": self.description,
            "expression": self.expression,
            "version": self.version,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True)
class Count:
    expression: str
    members: int
    customers: int
    as_of: datetime


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _row(r: Any) -> Segment:
    return Segment(
        r.segment_id, r.name, r.description, r.expression, r.version, r.created_at, r.updated_at
    )


def list_segments(db: Database, workspace_id: str) -> list[Segment]:
    d = segment_definitions
    with db.engine.connect() as conn:
        rows = conn.execute(
            sa.select(d).where(d.c.workspace_id == workspace_id).order_by(d.c.segment_id)
        ).all()
    return [_row(r) for r in rows]


def get_segment(db: Database, workspace_id: str, segment_id: str) -> Segment:
    for segment in list_segments(db, workspace_id):
        if segment.segment_id == segment_id:
            return segment
    raise NotFound(
        f"No segment {segment_id!r} in this workspace.",
        hint="List segments with 'siyu segments list' (GET /api/segments).",
    )


# -- compiling ----------------------------------------------------------------------------------


def _needs_features(tree: Expr) -> bool:
    """Whether the expression reads computed attributes (spend, tier...) besides the profile."""

    def paths(node: Expr) -> list[Path]:
        if isinstance(node, Path):
            return [node]
        if isinstance(node, Call):
            return []
        return [p for child in children(node) for p in paths(child)]

    return any(p.parts[0] not in DEFAULT_SCHEMA and p.parts[0] != "traits" for p in paths(tree))


def checked_trees(
    db: Database,
    t: WorkspaceTables,
    as_of: datetime,
    definitions: Mapping[str, str],
) -> tuple[dict[str, Expr], SegmentResolver]:
    """Checked trees of ``definitions`` with ``segment:x`` replaced by x's saved expression."""
    saved = {s.segment_id: s.expression for s in list_segments(db, t.workspace_id)}
    merged = {**saved, **definitions}
    resolver = SegmentResolver(t, as_of, all_tags(db, t.workspace_id), merged)
    trees = inline_references(merged, kind="segment", schema=tag_schema(), resolver=resolver)
    return {name: trees[name] for name in definitions}, resolver


def membership_table(
    db: Database, workspace_id: str, definitions: Mapping[str, str], as_of: datetime
) -> Any:
    """Ibis table ``customer_id`` + one boolean column per definition, in one query."""
    t = tables(db, workspace_id)
    trees, resolver = checked_trees(db, t, as_of, definitions)
    if any(_needs_features(tree) for tree in trees.values()):
        customers = tag_attributes(t, as_of)
    else:
        customers = customer_attributes(t.customers, as_of)
    return compile_tags(
        trees,
        customers=customers,
        events=t.events,
        as_of=as_of,
        schema=tag_schema(),
        resolver=resolver,
    )


def count(db: Database, workspace_id: str, expression: str, as_of: datetime | None = None) -> Count:
    """Validate ``expression`` and count the customers it holds now: the live count of an editor."""
    as_of = as_of or _now()
    table = membership_table(db, workspace_id, {DRAFT: expression}, as_of)
    row = table.aggregate(
        members=table[DRAFT].ifelse(1, 0).sum(), customers=table.count()
    ).to_pyarrow()
    return Count(
        expression=normalise(expression),
        members=int(row["members"][0].as_py() or 0),
        customers=int(row["customers"][0].as_py() or 0),
        as_of=as_of,
    )


# -- definitions --------------------------------------------------------------------------------


def _check_id(segment_id: str) -> None:
    if not SEGMENT_ID.match(segment_id):
        raise InvalidInput(
            f"Segment id {segment_id!r} is not valid.",
            hint="Use 1-80 lowercase letters, digits, '_' or '-', starting with a letter or digit.",
            field="segment_id",
        )


def _validated(db: Database, workspace_id: str, segment_id: str, expression: str) -> str:
    """The canonical text of ``expression``, checked together with every other saved segment."""
    t = tables(db, workspace_id)
    trees, _ = checked_trees(db, t, _now(), {segment_id: expression})
    assert trees  # raises before when invalid
    return normalise(expression)


def create_segment(
    db: Database,
    workspace: Workspace,
    segment_id: str,
    expression: str,
    *,
    name: str | None = None,
    description: str = "",
) -> Segment:
    """Check and store a new segment (version 1)."""
    ws = workspace.workspace_id
    _check_id(segment_id)
    if any(s.segment_id == segment_id for s in list_segments(db, ws)):
        raise Conflict(
            f"Segment {segment_id!r} exists already.",
            hint="Choose another id, or update it ('siyu segments create --replace', PUT).",
        )
    text = _validated(db, ws, segment_id, expression)
    now = utcnow()
    with db.engine.begin() as conn:
        conn.execute(
            segment_definitions.insert().values(
                workspace_id=ws,
                segment_id=segment_id,
                name=name or segment_id,
                description=description,
                expression=text,
                version=1,
                created_at=now,
                updated_at=now,
            )
        )
    return get_segment(db, ws, segment_id)


def update_segment(
    db: Database,
    workspace: Workspace,
    segment_id: str,
    *,
    expression: str | None = None,
    name: str | None = None,
    description: str | None = None,
) -> Segment:
    """Change a segment; its version goes up by one. Members change at the next refresh."""
    ws = workspace.workspace_id
    current = get_segment(db, ws, segment_id)
    values: dict[str, Any] = {"version": current.version + 1, "updated_at": utcnow()}
    if expression is not None:
        values["expression"] = _validated(db, ws, segment_id, expression)
    if name is not None:
        values["name"] = name
    if description is not None:
        values["description"] = description
    d = segment_definitions
    with db.engine.begin() as conn:
        conn.execute(
            d.update().where(d.c.workspace_id == ws, d.c.segment_id == segment_id).values(**values)
        )
    return get_segment(db, ws, segment_id)


def delete_segment(db: Database, workspace: Workspace, segment_id: str) -> None:
    """Delete a segment and its current members (its history stays, for the record)."""
    ws = workspace.workspace_id
    get_segment(db, ws, segment_id)
    users = [
        s.segment_id
        for s in list_segments(db, ws)
        if s.segment_id != segment_id
        and any(
            isinstance(n, Reference) and n.kind == "segment" and n.name == segment_id
            for n in walk(parse(s.expression))
        )
    ]
    if users:
        raise Conflict(
            f"Segment {segment_id!r} is used by {', '.join(users)}.",
            hint="Change or delete those segments first.",
        )
    with db.engine.begin() as conn:
        for table in (segment_definitions, segment_members, segment_snapshots):
            conn.execute(
                table.delete().where(table.c.workspace_id == ws, table.c.segment_id == segment_id)
            )


__all__ = [
    "Count",
    "Segment",
    "count",
    "create_segment",
    "delete_segment",
    "get_segment",
    "list_segments",
    "membership_table",
    "update_segment",
]
