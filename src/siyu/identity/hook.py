"""When new events are resolved: in the ingest transaction, or by the server in the background.

- ``identity_resolve = "ingest"``: ``Pipeline`` calls :func:`after_ingest` after a chunk's events,
  orders, customers and consents are written, in the same transaction, so a chunk is stored *and*
  resolved or neither. Costs about as much as the ingest itself (benchmarks/identity.py).
- ``"background"`` (default): ingest stays fast; ``siyu serve`` calls :func:`resolve_pending`
  every ``identity_resolve_seconds``. It resolves the events received since the workspace's
  watermark (``identity_state``) with the same incremental path, in one transaction with the
  watermark update, so a crash re-resolves the batch (resolution is idempotent). The window
  starts :data:`OVERLAP` before the watermark because concurrent PostgreSQL writers can commit
  events stamped slightly earlier than ones already seen; the events of that window already
  resolved are kept in ``identity_resolved`` and skipped, so each event is resolved once.
- ``"manual"``: only ``siyu identity resolve`` (full rebuild), e.g. around bulk back-fills.

Only the components a batch reaches are read and rewritten, so the cost follows the batch, not
the workspace.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pyarrow as pa
import sqlalchemy as sa

from siyu.config import Settings
from siyu.store.bulk import append

if TYPE_CHECKING:
    from siyu.identity.held import HeldGraphs
    from siyu.runtime import Runtime

log = logging.getLogger(__name__)
OVERLAP = timedelta(minutes=5)
MAX_BATCH = 50_000


def after_ingest(
    conn: sa.Connection,
    workspace_id: str,
    message_ids: Sequence[str],
    settings: Settings,
    received_at: datetime | None = None,
) -> None:
    """Resolve the events just stored, when ``identity_resolve`` is 'ingest'.

    ``received_at``: the chunk's receipt time (every event of a chunk has the same), so the
    events are found by it (pruned by zone maps) instead of a scan of every message id.
    """
    if not message_ids or settings.identity_resolve != "ingest":
        return
    from siyu.identity.graph import resolve_new_events

    resolve_new_events(
        conn,
        workspace_id,
        message_ids,
        windows=settings.identity_limit_windows,
        received_from=received_at,
    )


def resolve_pending(
    conn: sa.Connection,
    workspace_id: str,
    windows: Mapping[str, int] | None = None,
    *,
    limit: int = MAX_BATCH,
    held: HeldGraphs | None = None,
) -> int:
    """Resolve events received since the watermark (at most ``limit``); return how many.

    The server's passes keep the default, so each transaction stays short; a batch job with
    nothing waiting on it (the demo) passes a larger one: fewer passes over the reached
    components. ``held``: the process's graphs held in memory (``siyu serve``).

    Reads the look-back window (:data:`OVERLAP` before the watermark) less the events already
    resolved in it, resolves those, records them, moves the watermark to the newest one and
    forgets the recorded events that fell out of the window.
    """
    from siyu.identity.graph import resolve_new_events
    from siyu.identity.tables import identity_resolved, identity_state
    from siyu.store import schema

    s, e, done = identity_state, schema.events, identity_resolved
    mark = conn.execute(
        sa.select(s.c.resolved_until).where(s.c.workspace_id == workspace_id)
    ).scalar()
    query = sa.select(e.c.message_id, e.c.received_at).where(e.c.workspace_id == workspace_id)
    if mark is not None:
        seen = sa.select(done.c.message_id).where(
            done.c.workspace_id == workspace_id, done.c.message_id == e.c.message_id
        )
        query = query.where(e.c.received_at > mark - OVERLAP, ~seen.exists())
    rows = conn.execute(query.order_by(e.c.received_at, e.c.message_id).limit(limit)).all()
    if not rows:
        return 0
    resolve_new_events(
        conn,
        workspace_id,
        [str(r.message_id) for r in rows],
        windows=windows,
        received_from=min(r.received_at for r in rows),
        held=held,
    )
    until = max([r.received_at for r in rows] + ([mark] if mark is not None else []))
    append(
        conn,
        done,
        pa.table(
            {
                "workspace_id": pa.array([workspace_id] * len(rows), pa.string()),
                "message_id": pa.array([str(r.message_id) for r in rows], pa.string()),
                "received_at": pa.array([r.received_at for r in rows], pa.timestamp("us")),
            }
        ),
    )
    move_watermark(conn, workspace_id, until)
    return len(rows)


def newest_received(conn: sa.Connection, workspace_id: str) -> datetime | None:
    """The receipt time of the workspace's newest stored event (None: no event)."""
    from siyu.store import schema

    e = schema.events
    found = conn.execute(
        sa.select(sa.func.max(e.c.received_at)).where(e.c.workspace_id == workspace_id)
    ).scalar()
    return found if isinstance(found, datetime) else None


def record_rebuild_window(
    conn: sa.Connection, workspace_id: str, until: datetime, read_at: datetime
) -> datetime:
    """Before a full rebuild reads the events received up to ``until``: record the events of
    its look-back window as resolved, and return the watermark to move to once it is done
    (:func:`move_watermark`). The background passes then start there instead of re-resolving
    the whole history (at the 1M demo, 31M events in batches of MAX_BATCH).

    ``read_at`` is the clock when the rebuild began (before it asked for ``until``). A commit
    is never later than :data:`OVERLAP` after its receipt time (the window's premise), so every
    event received up to ``read_at - OVERLAP`` is visible to the read: the watermark is the
    later of ``until`` and ``read_at``, and only the events inside the window before it
    (received after ``watermark - OVERLAP``) are recorded. A rebuild of history that arrived
    more than OVERLAP ago records none (the 1M benchmark's bulk-loaded evidence: 7.2M rows);
    one right after a bulk load records what arrived in its last minutes.

    Recorded *before* the read, in the rebuild's transaction: an event another writer commits
    meanwhile is then read and not recorded (the next pass resolves it again, which changes
    nothing), never recorded and not read. Recorded after the read, PostgreSQL's read-committed
    statements could see such an event in the window and skip it for good.
    """
    from siyu.identity.tables import identity_resolved
    from siyu.store import schema

    done, e = identity_resolved, schema.events
    mark = max(until, read_at)
    conn.execute(done.delete().where(done.c.workspace_id == workspace_id))
    if until > mark - OVERLAP:
        conn.execute(
            done.insert().from_select(
                ["workspace_id", "message_id", "received_at"],
                sa.select(e.c.workspace_id, e.c.message_id, e.c.received_at).where(
                    e.c.workspace_id == workspace_id,
                    e.c.received_at > mark - OVERLAP,
                    e.c.received_at <= until,
                ),
            )
        )
    return mark


def move_watermark(conn: sa.Connection, workspace_id: str, until: datetime) -> None:
    """Set the watermark to ``until`` (never back) and forget the resolved events that fell
    out of the look-back window."""
    from siyu.identity.tables import identity_resolved, identity_state

    s, done = identity_state, identity_resolved
    mark = conn.execute(
        sa.select(s.c.resolved_until).where(s.c.workspace_id == workspace_id)
    ).scalar()
    if isinstance(mark, datetime) and mark > until:
        until = mark
    now = datetime.now(UTC).replace(tzinfo=None)
    conn.execute(
        done.delete().where(
            done.c.workspace_id == workspace_id, done.c.received_at <= until - OVERLAP
        )
    )
    conn.execute(s.delete().where(s.c.workspace_id == workspace_id))
    conn.execute(s.insert().values(workspace_id=workspace_id, resolved_until=until, updated_at=now))


def resolve_all_pending(rt: Runtime, held: HeldGraphs | None = None) -> int:
    """One background pass over every workspace (``held``: the graphs the process holds)."""
    from siyu.store import schema

    with rt.db.engine.connect() as conn:
        workspaces = [str(w) for (w,) in conn.execute(sa.select(schema.workspaces.c.workspace_id))]
    total = 0
    for workspace_id in workspaces:
        with rt.db.write_lock, rt.db.engine.begin() as conn:
            total += resolve_pending(
                conn, workspace_id, rt.settings.identity_limit_windows, held=held
            )
    return total


async def resolve_forever(rt: Runtime) -> None:
    """``siyu serve``'s background step (identity_resolve = 'background'), with each
    workspace's graph held in memory between passes unless ``identity_hold_graph`` is off."""
    from siyu.identity.held import HeldGraphs

    held = HeldGraphs() if rt.settings.identity_hold_graph else None
    while True:
        try:
            done = await asyncio.to_thread(resolve_all_pending, rt, held)
            if done:
                log.info("One-ID: resolved %d new events", done)
        except Exception:  # keep serving; the next pass retries the same events
            log.exception("One-ID background resolution failed; retrying")
        await asyncio.sleep(rt.settings.identity_resolve_seconds)
