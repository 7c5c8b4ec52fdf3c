"""The fission worker of ``siyu serve``: :func:`siyu.fission.service.process` every
``fission_every_seconds`` on the default workspace.

Group buys whose time ran out are settled (members are owed refunds) and referrals whose return
window closed are rewarded without a cron job. On DuckDB the server owns the file, so this is
the way to run it; on PostgreSQL ``siyu fission process`` may run next to it (idempotent).
"""

from __future__ import annotations

import asyncio
import logging

from siyu.fission.common import utcnow
from siyu.fission.service import process
from siyu.runtime import Runtime

log = logging.getLogger("siyu.fission")


def _pass(rt: Runtime) -> None:
    report = process(rt.db, rt.workspace().workspace_id, now=utcnow(), settings=rt.settings)
    if report["events"]:
        log.info("fission: %s", report)


async def process_forever(rt: Runtime) -> None:
    """Run a pass, sleep, repeat; a failed pass is logged and the next one tries again."""
    while True:
        try:
            await asyncio.to_thread(_pass, rt)
        except Exception:  # keep the server up; the log says what failed
            log.exception("fission worker pass failed")
        await asyncio.sleep(rt.settings.fission_every_seconds)
