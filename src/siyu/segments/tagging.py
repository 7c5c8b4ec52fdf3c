"""Tagging runs: evaluate every tag for every customer in one query, store membership and changes.

The catalogue (built-in plus the workspace's own tags) compiles to one Ibis expression with one
boolean column per tag over the attribute table (one scan of the events for all windowed
counts). The wide result becomes (tag, customer) pairs in Arrow; the database then works out
additions and removals against the stored membership, set-based.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import ibis.expr.types as ir
import pyarrow as pa
import sqlalchemy as sa

from siyu.access import Workspace, utcnow
from siyu.compute import WorkspaceTables, tables
from siyu.errors import Conflict, NotFound
from siyu.segments.attributes import tag_attributes, tag_schema
from siyu.segments.catalogue import TagDef, builtin_tags
from siyu.segments.lang import Explanation, compile_tags, explain, inline_references, validate
from siyu.segments.tables import customer_tags, tag_definitions
from siyu.store import Database
from siyu.store.bulk import stage, unstage


@dataclass(frozen=True)
class TagRunReport:
    run_id: str
    as_of: datetime
    tags: int
    memberships: int
    added: int
    removed: int
    counts: dict[str, int]


def all_tags(db: Database, workspace_id: str) -> list[TagDef]:
    """Built-in tags and the workspace's own, in that order."""
    d = tag_definitions
    with db.engine.connect() as conn:
        rows = conn.execute(
            sa.select(d.c.tag_id, d.c.name_en, d.c.name_zh, d.c.description, d.c.rule)
            .where(d.c.workspace_id == workspace_id)
            .order_by(d.c.tag_id)
        ).all()
    own = [TagDef(r[0], "custom", r[1], r[2], r[3], r[4]) for r in rows]
    return builtin_tags() + own


def find_tag(db: Database, workspace_id: str, tag_id: str) -> TagDef:
    for tag in all_tags(db, workspace_id):
        if tag.tag_id == tag_id:
            return tag
    raise NotFound(f"No tag {tag_id!r}.", hint="List tags with 'siyu tags list'.")


def add_tag(
    db: Database,
    workspace: Workspace,
    tag_id: str,
    rule: str,
    *,
    name_en: str,
    name_zh: str | None = None,
    description: str = "",
) -> TagDef:
    """Validate and store a workspace tag (errors point at the rule's position)."""
    validate(rule, tag_schema())
    if any(t.tag_id == tag_id for t in all_tags(db, workspace.workspace_id)):
        raise Conflict(f"Tag {tag_id!r} exists already.", hint="Choose another id.")
    tag = TagDef(tag_id, "custom", name_en, name_zh or name_en, description, rule)
    with db.engine.begin() as conn:
        conn.execute(
            tag_definitions.insert().values(
                workspace_id=workspace.workspace_id,
                tag_id=tag_id,
                name_en=tag.name_en,
                name_zh=tag.name_zh,
                description=description,
                rule=rule,
                created_at=utcnow(),
            )
        )
    return tag


def tags_expr(t: WorkspaceTables, tags: Sequence[TagDef], as_of: datetime) -> ir.Table:
    """``customer_id`` + one boolean column per tag, for every customer: one query."""
    definitions = inline_references({tag.tag_id: tag.rule for tag in tags}, schema=tag_schema())
    return compile_tags(
        definitions,
        customers=tag_attributes(t, as_of),
        events=t.events,
        as_of=as_of,
        schema=tag_schema(),
    )


def run_tags(db: Database, workspace: Workspace, *, as_of: datetime | None = None) -> TagRunReport:
    """Evaluate every tag now; store current members and what was added or removed."""
    as_of = as_of or datetime.now(UTC).replace(tzinfo=None)
    ws = workspace.workspace_id
    tags = all_tags(db, ws)
    wide = tags_expr(tables(db, ws), tags, as_of).to_pyarrow()
    ids = wide["customer_id"]
    parts = []
    counts: dict[str, int] = {}
    for tag in tags:
        members = ids.filter(wide[tag.tag_id])
        counts[tag.tag_id] = len(members)
        parts.append(
            pa.table(
                {
                    "tag_id": pa.array([tag.tag_id] * len(members), pa.string()),
                    "customer_id": members,
                }
            )
        )
    pairs = pa.concat_tables(parts)
    n = pairs.num_rows
    current = pairs.append_column("since", pa.array([as_of] * n, pa.timestamp("us"))).add_column(
        0, "workspace_id", pa.array([ws] * n, pa.string())
    )
    run_id = "tags_" + secrets.token_hex(8)
    with db.write_lock, db.engine.begin() as conn:
        added, removed = _apply(conn, current, ws, run_id, as_of)
    return TagRunReport(run_id, as_of, len(tags), n, added, removed, counts)


def _apply(
    conn: sa.Connection, current: pa.Table, ws: str, run_id: str, as_of: datetime
) -> tuple[int, int]:
    """Record additions and removals, then make the stored membership equal ``current``.

    Set-based: tags a customer keeps keep their ``since``; only changed pairs are written.
    """
    name = stage(conn, customer_tags, current)
    params = {"ws": ws, "run_id": run_id, "at": as_of}
    new_pairs = (
        f"FROM {name} n WHERE NOT EXISTS (SELECT 1 FROM customer_tags o WHERE "
        "o.workspace_id = :ws AND o.tag_id = n.tag_id AND o.customer_id = n.customer_id)"
    )
    gone_pairs = (
        "FROM customer_tags o WHERE o.workspace_id = :ws AND NOT EXISTS (SELECT 1 FROM "
        f"{name} n WHERE n.tag_id = o.tag_id AND n.customer_id = o.customer_id)"
    )
    history = (
        "INSERT INTO tag_history (workspace_id, run_id, tag_id, customer_id, change, changed_at) "
        "SELECT CAST(:ws AS VARCHAR(40)), CAST(:run_id AS VARCHAR(40)), "
    )
    at = "CAST(:at AS TIMESTAMP) "
    try:
        added = conn.execute(
            sa.text(f"{history} n.tag_id, n.customer_id, 'added', {at}{new_pairs}"),
            params,
        ).rowcount
        removed = conn.execute(
            sa.text(f"{history} o.tag_id, o.customer_id, 'removed', {at}{gone_pairs}"),
            params,
        ).rowcount
        conn.execute(
            sa.text(
                "DELETE FROM customer_tags WHERE workspace_id = :ws AND NOT EXISTS (SELECT 1 "
                f"FROM {name} n WHERE n.tag_id = customer_tags.tag_id "
                "AND n.customer_id = customer_tags.customer_id)"
            ),
            params,
        )
        conn.execute(
            sa.text(
                "INSERT INTO customer_tags (workspace_id, tag_id, customer_id, since) "
                "SELECT n.workspace_id, n.tag_id, n.customer_id, n.since " + new_pairs
            ),
            params,
        )
    finally:
        unstage(conn, name)
    return int(added or 0), int(removed or 0)


def explain_tag(
    db: Database, workspace: Workspace, customer_id: str, tag_id: str, as_of: datetime | None = None
) -> Explanation:
    """Why ``customer_id`` has or lacks ``tag_id`` (each part of the rule with its value)."""
    as_of = as_of or datetime.now(UTC).replace(tzinfo=None)
    tag = find_tag(db, workspace.workspace_id, tag_id)
    t = tables(db, workspace.workspace_id)
    return explain(
        tag.rule,
        customer_id,
        customers=tag_attributes(t, as_of),
        events=t.events,
        as_of=as_of,
        schema=tag_schema(),
    )


__all__ = [
    "TagRunReport",
    "add_tag",
    "all_tags",
    "explain_tag",
    "find_tag",
    "run_tags",
    "tags_expr",
]
