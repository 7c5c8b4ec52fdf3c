"""The segments schedule of ``siyu serve``: recompute when the last run is old enough.

A scheduled run does the whole chain in order, at one ``as_of``: RFM and tiers, then tags (some
read the tier), then saved segments (they read tags and tiers), so that ``segment_history``
records entries and exits against fresh inputs.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from siyu.access import Workspace
from siyu.runtime import Runtime
from siyu.segments.membership import refresh_segments
from siyu.segments.run import RunReport, run_segments
from siyu.segments.tables import segment_runs
from siyu.segments.tagging import run_tags

log = logging.getLogger("siyu.segments")
CHECK_EVERY_SECONDS = 3600


def run_if_due(rt: Runtime, workspace: Workspace, now: datetime | None = None) -> RunReport | None:
    """Run segments when no run finished in the last ``segments_every_days``; else None."""
    every = rt.settings.segments_every_days
    if every <= 0:
        return None
    now = now or datetime.now(UTC).replace(tzinfo=None)
    with rt.db.engine.connect() as conn:
        last = conn.execute(
            sa.select(sa.func.max(segment_runs.c.as_of)).where(
                segment_runs.c.workspace_id == workspace.workspace_id
            )
        ).scalar_one()
    if last is not None and now - last < timedelta(days=every):
        return None
    report = run_segments(rt.db, workspace, as_of=now)
    run_tags(rt.db, workspace, as_of=now)
    refresh_segments(rt.db, workspace, as_of=now)
    return report


async def schedule_forever(rt: Runtime) -> None:
    """Check every hour; a failed run is logged and retried at the next check."""
    while True:
        try:
            report = await asyncio.to_thread(run_if_due, rt, rt.workspace())
            if report is not None:
                log.info("segments run %s: %s customers", report.run_id, report.customers)
        except Exception:  # keep the server up; the log says what failed
            log.exception("scheduled segments run failed")
        await asyncio.sleep(CHECK_EVERY_SECONDS)
