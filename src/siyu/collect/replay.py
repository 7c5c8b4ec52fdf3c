"""Replaying quarantined records through the pipeline after their cause was fixed."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from siyu.collect.pipeline import Pipeline
from siyu.collect.quarantine import OPEN, REPLAYED, mark_resolved
from siyu.collect.validate import Record
from siyu.errors import InvalidInput, NotFound
from siyu.store import schema


@dataclass
class ReplayReport:
    replayed: int = 0
    stored: int = 0
    duplicates: int = 0
    still_quarantined: list[str] = field(default_factory=list)


def replay(
    pipeline: Pipeline,
    *,
    ids: list[str] | None = None,
    reason_code: str | None = None,
    payload_override: str | None = None,
) -> ReplayReport:
    """Feed open quarantined records through the pipeline again.

    A record that now passes is stored exactly once (its messageId deduplicates a second replay);
    one that fails again is marked replayed and re-quarantined under a new id with the new reason.
    ``payload_override`` replaces the stored payload of a single record (a corrected version).
    """
    ws = pipeline.workspace.workspace_id
    q = schema.quarantine
    stmt = sa.select(q.c.quarantine_id, q.c.source_id, q.c.position, q.c.payload).where(
        q.c.workspace_id == ws, q.c.status == OPEN
    )
    if ids:
        stmt = stmt.where(q.c.quarantine_id.in_(ids))
    if reason_code:
        stmt = stmt.where(q.c.reason_code == reason_code)
    with pipeline.db.engine.connect() as conn:
        rows = list(conn.execute(stmt.order_by(q.c.received_at, q.c.position)))
    if ids and len(rows) != len(set(ids)):
        found = {r[0] for r in rows}
        missing = ", ".join(sorted(set(ids) - found))
        raise NotFound(
            f"No open quarantined record {missing}.",
            hint="List open records with 'siyu quarantine list'.",
        )
    if payload_override is not None and len(rows) != 1:
        raise InvalidInput(
            "A corrected payload can replace exactly one record.",
            hint="Name one quarantine id together with --payload.",
        )
    report = ReplayReport()
    for qid, source_id, position, payload in rows:
        text = payload_override if payload_override is not None else payload
        result = pipeline.ingest(
            [Record(int(position or 0), text)], source_id=source_id, origin=f"replay:{qid}"
        )
        report.replayed += 1
        report.stored += result.stored
        report.duplicates += result.duplicates
        if result.quarantine_ids:
            report.still_quarantined += result.quarantine_ids
            note = f"replayed; quarantined again as {result.quarantine_ids[0]}"
        else:
            note = "replayed; stored" if result.stored else "replayed; already stored"
        with pipeline.db.engine.begin() as conn:
            mark_resolved(conn, ws, qid, REPLAYED, note)
    return report
