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
import pyarrow.compute as pc
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


def tags_expr(
    t: WorkspaceTables,
    tags: Sequence[TagDef],
    as_of: datetime,
    *,
    features: ir.Table | None = None,
    current: ir.Table | None = None,
) -> ir.Table:
    """``customer_id`` + one boolean column per tag, for every customer: one query.

    ``features`` and ``current`` as in :func:`tag_attributes` (computed in the same run).
    """
    definitions = inline_references({tag.tag_id: tag.rule for tag in tags}, schema=tag_schema())
    return compile_tags(
        definitions,
        customers=tag_attributes(t, as_of, features=features, current=current),
        events=t.events,
        as_of=as_of,
        schema=tag_schema(),
    )


#: (tag, customer) pairs compared and written per transaction. A first run at 1M customers
#: adds about 30M pairs (and as many history rows); in one transaction DuckDB held them all in
#: memory and went over a 3 GB cap.
CHUNK_PAIRS = 2_000_000


def run_tags(db: Database, workspace: Workspace, *, as_of: datetime | None = None) -> TagRunReport:
    """Evaluate every tag now; store current members and what was added or removed.

    The tags are computed in one query; their members are then written a group of tags at a
    time (about :data:`CHUNK_PAIRS` pairs), each group in its own transaction: its additions
    and removals go to ``tag_history`` and ``customer_tags`` is made equal to the new
    membership, set-based inside the database. Members of tags that no longer exist are
    removed last. A run that stops half-way leaves whole tags updated or not; the next run
    completes the rest.
    """
    as_of = as_of or datetime.now(UTC).replace(tzinfo=None)
    ws = workspace.workspace_id
    tags = all_tags(db, ws)
    wide = tags_expr(tables(db, ws), tags, as_of).to_pyarrow()
    counts = {tag.tag_id: int(pc.sum(wide[tag.tag_id]).as_py() or 0) for tag in tags}
    run_id = "tags_" + secrets.token_hex(8)
    added = removed = 0
    for chunk in _chunks([tag.tag_id for tag in tags], counts, CHUNK_PAIRS):
        pairs = _pairs(wide, chunk)
        with db.write_lock, db.engine.begin() as conn:
            a, r = _apply(conn, pairs, chunk, ws, run_id, as_of)
        added, removed = added + a, removed + r
    with db.write_lock, db.engine.begin() as conn:
        removed += _remove_undefined(conn, list(counts), ws, run_id, as_of)
    return TagRunReport(run_id, as_of, len(tags), sum(counts.values()), added, removed, counts)


def _chunks(tag_ids: list[str], counts: dict[str, int], limit: int) -> list[list[str]]:
    """Consecutive groups of tags with at most ``limit`` members together (or one big tag)."""
    chunks: list[list[str]] = []
    size = 0
    for tag_id in tag_ids:
        if chunks and size + counts[tag_id] <= limit:
            chunks[-1].append(tag_id)
            size += counts[tag_id]
        else:
            chunks.append([tag_id])
            size = counts[tag_id]
    return chunks


def _pairs(wide: pa.Table, tag_ids: list[str]) -> pa.Table:
    """(tag_id, customer_id) for every member of the given tags, built column-wise in Arrow."""
    ids = wide["customer_id"]
    parts = []
    for tag_id in tag_ids:
        members = ids.filter(wide[tag_id])
        parts.append(
            pa.table(
                {
                    "tag_id": pa.repeat(pa.scalar(tag_id, pa.string()), len(members)),
                    "customer_id": members.cast(pa.string()),
                }
            )
        )
    return pa.concat_tables(parts)


def _apply(
    conn: sa.Connection, pairs: pa.Table, tag_ids: list[str], ws: str, run_id: str, at: datetime
) -> tuple[int, int]:
    """Record additions and removals of ``tag_ids``, then store exactly ``pairs`` for them.

    Set-based: tags a customer keeps keep their ``since``; only changed pairs are written.
    Every statement reads only the given tags' stored rows (a bound list, never text).
    """
    name = stage(conn, customer_tags, pairs)
    params = {"ws": ws, "run_id": run_id, "at": at, "tags": tag_ids}
    mine = "o.workspace_id = :ws AND o.tag_id IN :tags"
    stored = (
        f"EXISTS (SELECT 1 FROM customer_tags o WHERE {mine} "
        "AND o.tag_id = n.tag_id AND o.customer_id = n.customer_id)"
    )
    kept = (
        f"EXISTS (SELECT 1 FROM {name} n "
        "WHERE n.tag_id = o.tag_id AND n.customer_id = o.customer_id)"
    )
    try:
        added = _execute(
            conn,
            f"{_HISTORY} n.tag_id, n.customer_id, 'added', {_AT} FROM {name} n WHERE NOT {stored}",
            params,
        )
        removed = _execute(
            conn,
            f"{_HISTORY} o.tag_id, o.customer_id, 'removed', {_AT} "
            f"FROM customer_tags o WHERE {mine} AND NOT {kept}",
            params,
        )
        _execute(
            conn,
            "DELETE FROM customer_tags WHERE workspace_id = :ws AND tag_id IN :tags AND NOT EXISTS "
            f"(SELECT 1 FROM {name} n WHERE n.tag_id = customer_tags.tag_id "
            "AND n.customer_id = customer_tags.customer_id)",
            params,
        )
        _execute(
            conn,
            "INSERT INTO customer_tags (workspace_id, tag_id, customer_id, since) "
            f"SELECT CAST(:ws AS VARCHAR(40)), n.tag_id, n.customer_id, {_AT} FROM {name} n "
            f"WHERE NOT {stored}",
            params,
        )
    finally:
        unstage(conn, name)
    return added, removed


def _remove_undefined(
    conn: sa.Connection, tag_ids: list[str], ws: str, run_id: str, at: datetime
) -> int:
    """Members of tags that are no longer defined leave them (recorded as removals).

    The stored tag ids are listed first (one pass over a dictionary-compressed column): a
    ``NOT IN`` over hundreds of ids took seconds per million stored rows, for no row at all.
    """
    stored = conn.execute(
        sa.select(customer_tags.c.tag_id).where(customer_tags.c.workspace_id == ws).distinct()
    ).scalars()
    undefined = sorted(set(stored) - set(tag_ids))
    if not undefined:
        return 0
    params = {"ws": ws, "run_id": run_id, "at": at, "tags": undefined}
    gone = "workspace_id = :ws AND tag_id IN :tags"
    removed = _execute(
        conn,
        f"{_HISTORY} tag_id, customer_id, 'removed', {_AT} FROM customer_tags WHERE {gone}",
        params,
    )
    _execute(conn, f"DELETE FROM customer_tags WHERE {gone}", params)
    return removed


_HISTORY = (
    "INSERT INTO tag_history (workspace_id, run_id, tag_id, customer_id, change, changed_at) "
    "SELECT CAST(:ws AS VARCHAR(40)), CAST(:run_id AS VARCHAR(40)),"
)
_AT = "CAST(:at AS TIMESTAMP)"


def _execute(conn: sa.Connection, sql: str, params: dict[str, object]) -> int:
    """Run one of the statements above (``:tags`` is an expanding list); rows affected."""
    statement = sa.text(sql).bindparams(sa.bindparam("tags", expanding=True))
    return int(conn.execute(statement, params).rowcount or 0)


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
