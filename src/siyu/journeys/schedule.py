"""The journeys worker of ``siyu serve``: one pass every ``journeys_every_seconds``.

On DuckDB this is *the* worker (one process owns the file). On PostgreSQL it is one of possibly
several: other processes may run ``siyu journeys run --loop`` next to it.
"""

from __future__ import annotations

import asyncio
import logging

from siyu.access.workspaces import utcnow
from siyu.journeys.service import run_once
from siyu.runtime import Runtime

log = logging.getLogger("siyu.journeys")


def _pass(rt: Runtime) -> None:
    report = run_once(rt, rt.workspace(), utcnow())
    if report.entered or report.steps or report.exited:
        log.info(
            "journeys: %s entered, %s ended, %s steps %s",
            report.entered,
            report.exited,
            report.steps,
            report.outcomes,
        )


async def work_forever(rt: Runtime) -> None:
    """Run a pass, sleep, repeat; a failed pass is logged and the next one tries again."""
    while True:
        try:
            await asyncio.to_thread(_pass, rt)
        except Exception:  # keep the server up; the log says what failed
            log.exception("journeys worker pass failed")
        await asyncio.sleep(rt.settings.journeys_every_seconds)
