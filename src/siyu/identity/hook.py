"""When new events are resolved: in the ingest transaction, or by the server in the background.

- ``identity_resolve = "ingest"``: ``Pipeline`` calls :func:`after_ingest` after a chunk's events,
  orders, customers and consents are written, in the same transaction, so a chunk is stored *and*
  resolved or neither. Costs about as much as the ingest itself (benchmarks/identity.py).
- ``"background"`` (default): ingest stays fast; ``siyu serve`` calls :func:`resolve_pending`
  every ``identity_resolve_seconds``. It resolves the events received since the workspace's
  watermark (``identity_state``) with the same incremental path, in one transaction with the
  watermark update, so a crash re-resolves the batch (resolution is idempotent). The window
  starts :data:`OVERLAP` before the watermark because concurrent PostgreSQL writers can commit
  events stamped slightly earlier than ones already seen.
- ``"manual"``: only ``siyu identity resolve`` (full rebuild), e.g. around bulk back-fills.

Only the components a batch reaches are read and rewritten, so the cost follows the batch, not
the workspace.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa

from siyu.config import Settings

if TYPE_CHECKING:
    from siyu.runtime import Runtime

log = logging.getLogger(__name__)
OVERLAP = timedelta(minutes=5)
MAX_BATCH = 50_000


def after_ingest(
    conn: sa.Connection, workspace_id: str, message_ids: Sequence[str], settings: Settings
) -> None:
    """Resolve the events just stored, when ``identity_resolve`` is 'ingest'."""
    if not message_ids or settings.identity_resolve != "ingest":
        return
    from siyu.identity.graph import resolve_new_events

    resolve_new_events(conn, workspace_id, message_ids)


def resolve_pending(conn: sa.Connection, workspace_id: str) -> int:
    """Resolve events received since the watermark (at most MAX_BATCH); return how many."""
    from siyu.identity.graph import resolve_new_events
    from siyu.identity.tables import identity_state
    from siyu.store import schema

    s, e = identity_state, schema.events
    mark = conn.execute(
        sa.select(s.c.resolved_until).where(s.c.workspace_id == workspace_id)
    ).scalar()
    query = sa.select(e.c.message_id, e.c.received_at).where(e.c.workspace_id == workspace_id)
    if mark is not None:
        query = query.where(e.c.received_at > mark - OVERLAP)
    rows = conn.execute(query.order_by(e.c.received_at).limit(MAX_BATCH)).all()
    fresh = [r for r in rows if mark is None or r.received_at > mark]
    if not fresh:
        return 0
    resolve_new_events(conn, workspace_id, [str(r.message_id) for r in rows])
    until = max(r.received_at for r in rows)
    now = datetime.now(UTC).replace(tzinfo=None)
    conn.execute(s.delete().where(s.c.workspace_id == workspace_id))
    conn.execute(s.insert().values(workspace_id=workspace_id, resolved_until=until, updated_at=now))
    return len(fresh)


def resolve_all_pending(rt: Runtime) -> int:
    """One background pass over every workspace."""
    from siyu.store import schema

    with rt.db.engine.connect() as conn:
        workspaces = [str(w) for (w,) in conn.execute(sa.select(schema.workspaces.c.workspace_id))]
    total = 0
    for workspace_id in workspaces:
        with rt.db.write_lock, rt.db.engine.begin() as conn:
            total += resolve_pending(conn, workspace_id)
    return total


async def resolve_forever(rt: Runtime) -> None:
    """``siyu serve``'s background step (identity_resolve = 'background')."""
    while True:
        try:
            done = await asyncio.to_thread(resolve_all_pending, rt)
            if done:
                log.info("One-ID: resolved %d new events", done)
        except Exception:  # keep serving; the next pass retries the same events
            log.exception("One-ID background resolution failed; retrying")
        await asyncio.sleep(rt.settings.identity_resolve_seconds)
