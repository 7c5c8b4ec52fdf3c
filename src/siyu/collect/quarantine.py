"""The quarantine: every record that could not be stored, with its reason, source and position.

Nothing is dropped silently: a quarantined record keeps its original payload so that, after the
cause is fixed (an FX rate, an order imported first, a corrected field), ``replay`` feeds it
through the pipeline again; a replay stores it exactly once.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from siyu.errors import NotFound
from siyu.store import schema
from siyu.store.bulk import append

OPEN = "open"
REPLAYED = "replayed"
DISCARDED = "discarded"


@dataclass(frozen=True)
class Rejection:
    """Why one input record was not stored."""

    position: int
    reason_code: str
    reason: str
    payload: str
    field: str | None = None


def new_quarantine_id() -> str:
    return "q_" + secrets.token_hex(10)


def store_rejections(
    conn: sa.Connection,
    workspace_id: str,
    rejections: list[Rejection],
    *,
    source_id: str | None,
    origin: str,
    received_at: datetime,
) -> list[str]:
    """Write rejections to the quarantine table in one bulk append; return their ids."""
    if not rejections:
        return []
    ids = [new_quarantine_id() for _ in rejections]
    n = len(rejections)
    data = pa.table(
        {
            "workspace_id": pa.array([workspace_id] * n, pa.string()),
            "quarantine_id": pa.array(ids, pa.string()),
            "source_id": pa.array([source_id] * n, pa.string()),
            "origin": pa.array([origin] * n, pa.string()),
            "position": pa.array([r.position for r in rejections], pa.int64()),
            "reason_code": pa.array([r.reason_code for r in rejections], pa.string()),
            "reason": pa.array([r.reason for r in rejections], pa.string()),
            "field": pa.array([r.field for r in rejections], pa.string()),
            "payload": pa.array([r.payload for r in rejections], pa.string()),
            "status": pa.array([OPEN] * n, pa.string()),
            "received_at": pa.array([received_at] * n, pa.timestamp("us")),
        }
    )
    append(conn, schema.quarantine, data)
    return ids


def list_quarantine(
    engine: sa.Engine,
    workspace_id: str,
    *,
    status: str | None = OPEN,
    reason_code: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    q = schema.quarantine
    stmt = sa.select(
        q.c.quarantine_id,
        q.c.origin,
        q.c.position,
        q.c.reason_code,
        q.c.reason,
        q.c.field,
        q.c.status,
        q.c.received_at,
    ).where(q.c.workspace_id == workspace_id)
    if status:
        stmt = stmt.where(q.c.status == status)
    if reason_code:
        stmt = stmt.where(q.c.reason_code == reason_code)
    stmt = stmt.order_by(q.c.received_at, q.c.origin, q.c.position).limit(limit)
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(stmt)]


def count_open(engine: sa.Engine, workspace_id: str) -> dict[str, int]:
    q = schema.quarantine
    stmt = (
        sa.select(q.c.reason_code, sa.func.count())
        .where(q.c.workspace_id == workspace_id, q.c.status == OPEN)
        .group_by(q.c.reason_code)
    )
    with engine.connect() as conn:
        return {str(code): int(n) for code, n in conn.execute(stmt)}


def get_quarantined(engine: sa.Engine, workspace_id: str, quarantine_id: str) -> dict[str, Any]:
    q = schema.quarantine
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(q).where(q.c.workspace_id == workspace_id, q.c.quarantine_id == quarantine_id)
        ).first()
    if row is None:
        raise NotFound(
            f"No quarantined record {quarantine_id!r} in this workspace.",
            hint="List them with 'siyu quarantine list'.",
        )
    return dict(row._mapping)


def mark_resolved(
    conn: sa.Connection, workspace_id: str, quarantine_id: str, status: str, resolution: str
) -> None:
    q = schema.quarantine
    conn.execute(
        q.update()
        .where(q.c.workspace_id == workspace_id, q.c.quarantine_id == quarantine_id)
        .values(status=status, resolution=resolution, resolved_at=sa.func.now())
    )
