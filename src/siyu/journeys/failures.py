"""Dead letters: step runs that failed permanently or ran out of attempts, and their retry.

A dead step run ends its enrollment as ``failed`` and keeps the reason. ``retry`` puts it back:
the run is due again with fresh attempts and the enrollment active again, unless the customer
has meanwhile entered the journey anew (then that newer enrollment wins and the old one stays
failed). A retried send keeps its idempotency key, so a message that did go out is not repeated.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from siyu.journeys.tables import journey_enrollments as en
from siyu.journeys.tables import journey_step_runs as runs


@dataclass(frozen=True)
class Failure:
    journey_id: str
    version: int
    enrollment_id: str
    customer_id: str
    step_id: str
    attempts: int
    reason_code: str | None
    reason: str | None
    failed_at: datetime | None


def list_failures(
    conn: sa.Connection, ws: str, journey_id: str | None = None, limit: int = 100
) -> list[Failure]:
    query = (
        sa.select(
            runs.c.journey_id,
            runs.c.version,
            runs.c.enrollment_id,
            runs.c.customer_id,
            runs.c.step_id,
            runs.c.attempts,
            runs.c.reason_code,
            runs.c.reason,
            runs.c.finished_at,
        )
        .where(runs.c.workspace_id == ws, runs.c.state == "dead")
        .order_by(runs.c.finished_at.desc(), runs.c.enrollment_id)
        .limit(limit)
    )
    if journey_id is not None:
        query = query.where(runs.c.journey_id == journey_id)
    return [Failure(*row) for row in conn.execute(query).all()]


def retry_failures(
    conn: sa.Connection, ws: str, now: datetime, journey_id: str | None = None
) -> int:
    """Make dead step runs due again; return how many were re-queued."""
    other = en.alias("other")
    failed = sa.and_(
        en.c.workspace_id == ws,
        en.c.state == "failed",
        sa.exists().where(
            runs.c.workspace_id == ws,
            runs.c.enrollment_id == en.c.enrollment_id,
            runs.c.state == "dead",
        ),
        ~sa.exists().where(
            other.c.workspace_id == ws,
            other.c.journey_id == en.c.journey_id,
            other.c.active_key == en.c.customer_id,
        ),
    )
    if journey_id is not None:
        failed = sa.and_(failed, en.c.journey_id == journey_id)
    conn.execute(
        en.update()
        .where(failed)
        .values(state="active", active_key=en.c.customer_id, finished_at=None, exit_reason=None)
    )
    scope = [
        runs.c.workspace_id == ws,
        runs.c.state == "dead",
        sa.exists().where(
            en.c.workspace_id == ws,
            en.c.enrollment_id == runs.c.enrollment_id,
            en.c.state == "active",
        ),
    ]
    if journey_id is not None:
        scope.append(runs.c.journey_id == journey_id)
    return int(
        conn.execute(
            runs.update()
            .where(*scope)
            .values(state="due", due_at=now, attempts=0, finished_at=None, outcome=None)
        ).rowcount
        or 0
    )
