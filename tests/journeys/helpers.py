"""Helpers of the journeys tests: events through the real pipeline, journeys, one worker pass."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from siyu.journeys.definition import parse
from siyu.journeys.versions import PublishResult, publish
from siyu.journeys.worker import RunReport, WorkerOptions, run_pending
from siyu.runtime import Runtime

T0 = datetime(2026, 3, 2, 9, 0, 0)  # a Monday, 09:00 UTC


def iso(moment: datetime) -> str:
    return moment.isoformat() + "Z"


def track(user: str, event: str, at: datetime, **properties: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": user,
        "event": event,
        "timestamp": iso(at),
        "messageId": f"{user}-{event}-{at.isoformat()}-{sorted(properties.items())}",
        "properties": properties,
    }


def identify(user: str, at: datetime, **traits: Any) -> dict[str, Any]:
    return {
        "type": "identify",
        "userId": user,
        "timestamp": iso(at),
        "messageId": f"{user}-identify-{at.isoformat()}-{sorted(traits.items())}",
        "traits": traits,
    }


def ingest(rt: Runtime, records: list[dict[str, Any]], at: datetime) -> None:
    report = rt.pipeline().ingest(records, received_at=at)
    assert report.quarantined == 0, report


def publish_yaml(rt: Runtime, text: str, at: datetime = T0) -> PublishResult:
    ws = rt.workspace()
    return publish(rt.db, ws.workspace_id, parse(text), now=at)


def run(rt: Runtime, at: datetime, **options: Any) -> RunReport:
    ws = rt.workspace()
    return run_pending(
        rt.db, ws.workspace_id, ws.default_region, now=at, options=WorkerOptions(**options)
    )


def rows(rt: Runtime, sql: str, **params: Any) -> list[Any]:
    with rt.db.engine.connect() as conn:
        return list(conn.execute(sa.text(sql), params).all())


def enrollments(rt: Runtime, journey: str) -> dict[str, tuple[str, str | None]]:
    """user_id -> (state, variant) of the latest enrollment of each customer."""
    found = rows(
        rt,
        "SELECT c.user_id, e.state, e.variant FROM journey_enrollments e JOIN customers c "
        "ON c.customer_id = e.customer_id WHERE e.journey_id = :j ORDER BY e.entered_at",
        j=journey,
    )
    return {r[0]: (r[1], r[2]) for r in found}


def step_runs(rt: Runtime, journey: str) -> dict[tuple[str, str], tuple[str, str | None]]:
    """(user_id, step) -> (state, branch)."""
    found = rows(
        rt,
        "SELECT c.user_id, r.step_id, r.state, r.branch FROM journey_step_runs r "
        "JOIN customers c ON c.customer_id = r.customer_id WHERE r.journey_id = :j",
        j=journey,
    )
    return {(r[0], r[1]): (r[2], r[3]) for r in found}


MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
