"""Journeys endpoints: list, validate, publish, pause/resume, preview, run, failures, metrics,
library. Definitions are the same JSON documents as the YAML files (docs/journeys.md)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from siyu.access.workspaces import utcnow
from siyu.api.deps import AdminWorkspace, ReadWorkspace, RuntimeDep, WriteWorkspace
from siyu.journeys import service
from siyu.journeys.definition import from_data

router = APIRouter(prefix="/api/journeys", tags=["journeys"])


class PreviewIn(BaseModel):
    customer: str = Field(
        min_length=1, max_length=320, description="Customer id, user id or email."
    )


class RunIn(BaseModel):
    now: datetime | None = None


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json(v) for v in value]
    return value


@router.get("")
def list_journeys(ws: ReadWorkspace, rt: RuntimeDep) -> list[dict[str, Any]]:
    """Every journey with status, current version and enrollment counts."""
    return [_json(item) for item in service.overview(rt.db, ws.workspace_id)]


@router.post("/validate")
def validate(body: dict[str, Any], ws: ReadWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    """Check a definition without publishing: 200, or 400 with every problem and its path."""
    definition = from_data(body)
    service.validate(rt.db, ws.workspace_id, definition)
    return {"valid": True, "journey_id": definition.id, "steps": len(definition.steps)}


@router.post("", status_code=201)
def publish(body: dict[str, Any], ws: WriteWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    """Publish a definition as the journey's next version (201; ``created`` false if unchanged)."""
    result = service.publish_definition(rt.db, ws.workspace_id, from_data(body), utcnow())
    return asdict(result)


@router.get("/library")
def library(ws: ReadWorkspace) -> list[dict[str, str]]:
    """The ready journeys shipped with siyu, with their YAML."""
    from siyu.journeys.library import library as items

    return [
        {"journey_id": i.journey_id, "name": i.name, "description": i.description, "yaml": i.text}
        for i in items()
    ]


@router.post("/library/{journey_id}/enable", status_code=201)
def enable(journey_id: str, ws: WriteWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    """Publish a library journey, adding the templates it needs that the workspace lacks."""
    from siyu.journeys.library import enable as do_enable

    result, added = do_enable(rt.db, ws.workspace_id, journey_id, utcnow())
    return {**asdict(result), "templates_added": added}


@router.get("/failures")
def failures(
    ws: ReadWorkspace, rt: RuntimeDep, journey: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Dead-lettered step runs with their reasons."""
    found = service.failures(rt.db, ws.workspace_id, journey, max(1, min(limit, 1000)))
    return [_json(asdict(f)) for f in found]


@router.post("/failures/retry")
def retry_failures(
    ws: WriteWorkspace, rt: RuntimeDep, journey: str | None = None
) -> dict[str, int]:
    """Put dead step runs back in the queue."""
    return {"requeued": service.retry(rt.db, ws.workspace_id, utcnow(), journey)}


@router.post("/run")
def run(body: RunIn, ws: AdminWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    """One worker pass now (triggers, exits, due steps), for cron-style deployments."""
    report = service.run_once(rt, ws, body.now or utcnow())
    return asdict(report)


@router.get("/{journey_id}")
def get_journey(journey_id: str, ws: ReadWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    """The journey's status and its current version's definition."""
    items = {i["journey_id"]: i for i in service.overview(rt.db, ws.workspace_id)}
    definition = service.definition_of(rt.db, ws.workspace_id, journey_id)
    return {
        **_json(items[journey_id]),
        "definition": definition.model_dump(mode="json", by_alias=True, exclude_defaults=True),
    }


@router.post("/{journey_id}/pause")
def pause(journey_id: str, ws: WriteWorkspace, rt: RuntimeDep) -> dict[str, str]:
    service.set_status(rt.db, ws.workspace_id, journey_id, "paused", utcnow())
    return {"journey_id": journey_id, "status": "paused"}


@router.post("/{journey_id}/resume")
def resume(journey_id: str, ws: WriteWorkspace, rt: RuntimeDep) -> dict[str, str]:
    service.set_status(rt.db, ws.workspace_id, journey_id, "active", utcnow())
    return {"journey_id": journey_id, "status": "active"}


@router.post("/{journey_id}/preview")
def preview(
    journey_id: str, body: PreviewIn, ws: ReadWorkspace, rt: RuntimeDep
) -> list[dict[str, Any]]:
    """The path the customer would take if they entered now, with rendered messages."""
    steps = service.preview(rt.db, ws, journey_id, body.customer, utcnow())
    return [_json(asdict(s)) for s in steps]


@router.get("/{journey_id}/metrics")
def metrics(journey_id: str, ws: ReadWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    """Funnel, per-step outcomes, messages, conversions, A/B tests and holdout lift."""
    data: dict[str, Any] = _json(service.metrics(rt.db, ws.workspace_id, journey_id).as_dict())
    return data
