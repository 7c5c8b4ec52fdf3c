"""Refreshing saved segments: current members, who entered and left, one snapshot row per run.

Every saved segment is evaluated in one query (one boolean column each), the (segment,
customer) pairs come back as Arrow and are staged; the database then works out entries and
exits against the stored membership, set-based, in one transaction. ``segment_history`` holds
one row per entry or exit (``change`` = ``entered`` | ``left``): journeys trigger on it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from siyu.access import Workspace
from siyu.segments.saved import list_segments, membership_table
from siyu.segments.tables import segment_members, segment_snapshots
from siyu.store import Database
from siyu.store.bulk import append, stage, unstage


@dataclass(frozen=True)
class RefreshReport:
    run_id: str
    as_of: datetime
    segments: int
    members: dict[str, int] = field(default_factory=dict)
    entered: dict[str, int] = field(default_factory=dict)
    left: dict[str, int] = field(default_factory=dict)


def refresh_segments(
    db: Database, workspace: Workspace, *, as_of: datetime | None = None
) -> RefreshReport:
    """Evaluate every saved segment now; store members, entries, exits and a snapshot each."""
    as_of = as_of or datetime.now(UTC).replace(tzinfo=None)
    ws = workspace.workspace_id
    run_id = "seg_" + secrets.token_hex(8)
    segments = list_segments(db, ws)
    if not segments:
        return RefreshReport(run_id, as_of, 0)
    wide = membership_table(
        db, ws, {s.segment_id: s.expression for s in segments}, as_of
    ).to_pyarrow()
    ids = wide["customer_id"]
    parts = []
    for s in segments:
        members = ids.filter(wide[s.segment_id])
        parts.append(
            pa.table(
                {
                    "segment_id": pa.array([s.segment_id] * len(members), pa.string()),
                    "customer_id": members,
                }
            )
        )
    pairs = pa.concat_tables(parts)
    n = pairs.num_rows
    current = pairs.append_column("since", pa.array([as_of] * n, pa.timestamp("us"))).add_column(
        0, "workspace_id", pa.array([ws] * n, pa.string())
    )
    with db.write_lock, db.engine.begin() as conn:
        entered, left = _apply(conn, current, ws, run_id, as_of)
        members = _counts(pairs["segment_id"])
        snapshot = pa.table(
            {
                "workspace_id": pa.array([ws] * len(segments), pa.string()),
                "run_id": pa.array([run_id] * len(segments), pa.string()),
                "segment_id": pa.array([s.segment_id for s in segments], pa.string()),
                "version": pa.array([s.version for s in segments], pa.int32()),
                "as_of": pa.array([as_of] * len(segments), pa.timestamp("us")),
                "members": pa.array([members.get(s.segment_id, 0) for s in segments], pa.int64()),
                "entered": pa.array([entered.get(s.segment_id, 0) for s in segments], pa.int64()),
                "left": pa.array([left.get(s.segment_id, 0) for s in segments], pa.int64()),
            }
        )
        append(conn, segment_snapshots, snapshot)
    return RefreshReport(run_id, as_of, len(segments), members, entered, left)


def _counts(column: pa.ChunkedArray) -> dict[str, int]:
    return {str(v["values"]): int(v["counts"]) for v in pc.value_counts(column).to_pylist()}


def _apply(
    conn: sa.Connection, current: pa.Table, ws: str, run_id: str, as_of: datetime
) -> tuple[dict[str, int], dict[str, int]]:
    """Record entries and exits, then make the stored membership equal ``current``."""
    name = stage(conn, segment_members, current)
    params = {"ws": ws, "run_id": run_id, "at": as_of}
    new_pairs = (
        f"FROM {name} n WHERE NOT EXISTS (SELECT 1 FROM segment_members o WHERE "
        "o.workspace_id = :ws AND o.segment_id = n.segment_id AND o.customer_id = n.customer_id)"
    )
    # Only segments evaluated in this run: members of a segment deleted meanwhile are not "left".
    gone_pairs = (
        "FROM segment_members o WHERE o.workspace_id = :ws "
        "AND o.segment_id IN (SELECT segment_id FROM segment_definitions WHERE workspace_id = :ws) "
        f"AND NOT EXISTS (SELECT 1 FROM {name} n WHERE n.segment_id = o.segment_id "
        "AND n.customer_id = o.customer_id)"
    )
    history = (
        "INSERT INTO segment_history "
        "(workspace_id, run_id, segment_id, customer_id, change, changed_at) "
        "SELECT CAST(:ws AS VARCHAR(40)), CAST(:run_id AS VARCHAR(40)), "
    )
    at = "CAST(:at AS TIMESTAMP) "
    try:
        conn.execute(
            sa.text(f"{history} n.segment_id, n.customer_id, 'entered', {at}{new_pairs}"), params
        )
        conn.execute(
            sa.text(f"{history} o.segment_id, o.customer_id, 'left', {at}{gone_pairs}"), params
        )
        conn.execute(
            sa.text(
                "DELETE FROM segment_members WHERE workspace_id = :ws AND NOT EXISTS (SELECT 1 "
                f"FROM {name} n WHERE n.segment_id = segment_members.segment_id "
                "AND n.customer_id = segment_members.customer_id)"
            ),
            params,
        )
        conn.execute(
            sa.text(
                "INSERT INTO segment_members (workspace_id, segment_id, customer_id, since) "
                "SELECT n.workspace_id, n.segment_id, n.customer_id, n.since " + new_pairs
            ),
            params,
        )
        rows = conn.execute(
            sa.text(
                "SELECT segment_id, change, COUNT(*) FROM segment_history "
                "WHERE workspace_id = :ws AND run_id = :run_id GROUP BY segment_id, change"
            ),
            params,
        ).all()
    finally:
        unstage(conn, name)
    entered = {str(r[0]): int(r[2]) for r in rows if r[1] == "entered"}
    left = {str(r[0]): int(r[2]) for r in rows if r[1] == "left"}
    return entered, left


def latest_snapshots(db: Database, workspace_id: str) -> dict[str, dict[str, object]]:
    """Per segment, its last refresh: run, version evaluated, as_of, members, entered, left."""
    s = segment_snapshots
    last = (
        sa.select(s.c.segment_id, sa.func.max(s.c.as_of).label("as_of"))
        .where(s.c.workspace_id == workspace_id)
        .group_by(s.c.segment_id)
        .subquery()
    )
    query = (
        sa.select(s)
        .join(last, (last.c.segment_id == s.c.segment_id) & (last.c.as_of == s.c.as_of))
        .where(s.c.workspace_id == workspace_id)
    )
    with db.engine.connect() as conn:
        rows = conn.execute(query).all()
    return {
        r.segment_id: {
            "run_id": r.run_id,
            "version": r.version,
            "as_of": r.as_of.isoformat(),
            "members": r.members,
            "entered": r.entered,
            "left": r.left,
        }
        for r in rows
    }


__all__ = ["RefreshReport", "latest_snapshots", "refresh_segments"]
