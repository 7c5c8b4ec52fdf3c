"""The journeys facade used by the CLI, the API and ``siyu serve``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from siyu.access import Workspace
from siyu.config import Settings
from siyu.errors import InvalidInput
from siyu.journeys import failures as dead
from siyu.journeys.checks import publish_problems
from siyu.journeys.definition import Definition
from siyu.journeys.metrics import JourneyMetrics, journey_metrics
from siyu.journeys.preview import PreviewStep, preview_path
from siyu.journeys.tables import journey_enrollments as en
from siyu.journeys.versions import (
    PublishResult,
    get_journey,
    list_journeys,
    load_version,
    publish,
)
from siyu.journeys.versions import (
    set_status as _set_status,
)
from siyu.journeys.worker import RunReport, WorkerOptions, run_pending
from siyu.runtime import Runtime
from siyu.store.database import Database


def options(settings: Settings) -> WorkerOptions:
    return WorkerOptions(
        batch_size=settings.journeys_batch_size,
        lease=timedelta(seconds=settings.journeys_lease_seconds),
        max_attempts=settings.journeys_max_attempts,
    )


def run_once(
    rt: Runtime, ws: Workspace, now: datetime, on_batch: Callable[[int], None] | None = None
) -> RunReport:
    """One worker pass over the workspace with the configured options."""
    return run_pending(
        rt.db,
        ws.workspace_id,
        ws.default_region,
        now=now,
        options=options(rt.settings),
        on_batch=on_batch,
    )


def validate(db: Database, ws: str, definition: Definition) -> None:
    problems = publish_problems(db, ws, definition)
    if problems:
        raise InvalidInput(
            f"Journey '{definition.id}' is not valid here: " + "; ".join(problems),
            hint="Fix the named steps (create the missing templates, correct the reward specs).",
            details={"problems": problems},
        )


def publish_definition(
    db: Database, ws: str, definition: Definition, now: datetime
) -> PublishResult:
    return publish(db, ws, definition, now=now)


def set_status(db: Database, ws: str, journey_id: str, status: str, now: datetime) -> None:
    _set_status(db, ws, journey_id, status, now=now)


def overview(db: Database, ws: str) -> list[dict[str, Any]]:
    """Each journey with its enrollment counts (one GROUP BY)."""
    with db.engine.connect() as conn:
        counts = conn.execute(
            sa.select(en.c.journey_id, en.c.state, sa.func.count())
            .where(en.c.workspace_id == ws)
            .group_by(en.c.journey_id, en.c.state)
        ).all()
    by_journey: dict[str, dict[str, int]] = {}
    for journey_id, state, n in counts:
        by_journey.setdefault(journey_id, {})[state] = int(n)
    out = []
    for info in list_journeys(db, ws):
        c = by_journey.get(info.journey_id, {})
        out.append(
            {
                "journey_id": info.journey_id,
                "name": info.name,
                "status": info.status,
                "version": info.version,
                "updated_at": info.updated_at,
                "entered": sum(c.values()),
                "active": c.get("active", 0),
                "goal": c.get("goal", 0),
            }
        )
    return out


def definition_of(db: Database, ws: str, journey_id: str, version: int | None = None) -> Definition:
    info = get_journey(db, ws, journey_id)
    with db.engine.connect() as conn:
        return load_version(conn, ws, journey_id, version or info.version)


def preview(
    db: Database,
    ws: Workspace,
    journey_id: str,
    customer: str,
    now: datetime,
    definition: Definition | None = None,
) -> list[PreviewStep]:
    d = definition or definition_of(db, ws.workspace_id, journey_id)
    return preview_path(db, ws.workspace_id, ws.default_region, d, customer, now)


def failures(db: Database, ws: str, journey_id: str | None, limit: int) -> list[dead.Failure]:
    with db.engine.connect() as conn:
        return dead.list_failures(conn, ws, journey_id, limit)


def retry(db: Database, ws: str, now: datetime, journey_id: str | None = None) -> int:
    with db.engine.begin() as conn:
        return dead.retry_failures(conn, ws, now, journey_id)


def metrics(db: Database, ws: str, journey_id: str) -> JourneyMetrics:
    return journey_metrics(db, ws, journey_id)
