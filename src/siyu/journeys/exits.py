"""Goal and exit conditions, applied to all running enrollments of a journey at once.

An enrollment whose customer sends the goal event (after the trigger) ends as ``goal``; one that
sends an exit event ends as ``exited``. Only events received since the journey's cursor are read,
so each pass costs what arrived, not the whole history. Pending step runs of ended enrollments are
cancelled in the same transaction, so nothing further is sent to them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa

from siyu.journeys.definition import Definition, Scalar
from siyu.journeys.tables import journey_enrollments as en
from siyu.journeys.tables import journey_step_runs as runs
from siyu.journeys.triggers import OVERLAP, property_filter
from siyu.store.schema import events


def _matching(
    ws: str, event: str, where: dict[str, Scalar | list[Scalar]], since: datetime
) -> sa.Exists:
    return sa.exists().where(
        events.c.workspace_id == ws,
        events.c.customer_id == en.c.customer_id,
        events.c.type == "track",
        events.c.event == event,
        events.c.timestamp > en.c.triggered_at,
        events.c.received_at > since,
        *property_filter(events.c.properties, where),
    )


def apply_exits(
    conn: sa.Connection,
    ws: str,
    journey_id: str,
    cursor: datetime | None,
    now: datetime,
    definition: Callable[[int], Definition],
) -> int:
    """End running enrollments that reached the goal or an exit event; return how many."""
    since = (cursor or now) - OVERLAP
    versions = (
        conn.execute(
            sa.select(en.c.version)
            .where(en.c.workspace_id == ws, en.c.journey_id == journey_id, en.c.state == "active")
            .distinct()
        )
        .scalars()
        .all()
    )
    ended = 0
    for version in versions:
        d = definition(version)
        scope = [
            en.c.workspace_id == ws,
            en.c.journey_id == journey_id,
            en.c.version == version,
            en.c.state == "active",
        ]
        if d.goal is not None:
            ended += (
                conn.execute(
                    en.update()
                    .where(*scope, _matching(ws, d.goal.event, d.goal.where, since))
                    .values(
                        state="goal",
                        goal_at=now,
                        finished_at=now,
                        active_key=None,
                        exit_reason=f"goal: {d.goal.event}",
                    )
                ).rowcount
                or 0
            )
        for ex in d.exit_on:
            ended += (
                conn.execute(
                    en.update()
                    .where(*scope, _matching(ws, ex.event, ex.where, since))
                    .values(
                        state="exited",
                        finished_at=now,
                        active_key=None,
                        exit_reason=f"exit: {ex.event}",
                    )
                ).rowcount
                or 0
            )
    if ended:
        conn.execute(
            runs.update()
            .where(
                runs.c.workspace_id == ws,
                runs.c.journey_id == journey_id,
                runs.c.state.in_(("due", "waiting")),
                sa.exists().where(
                    en.c.workspace_id == ws,
                    en.c.enrollment_id == runs.c.enrollment_id,
                    en.c.state != "active",
                ),
            )
            .values(state="cancelled", finished_at=now)
        )
    return ended
