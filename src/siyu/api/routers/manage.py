"""Management endpoints: keys, status, quarantine, and event ingestion for a workspace."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, Field

from siyu.access import create_key, list_keys, parse_scopes, revoke_key
from siyu.api.deps import (
    AdminWorkspace,
    BatchLimit,
    ReadWorkspace,
    RuntimeDep,
    WriteWorkspace,
)
from siyu.collect.quarantine import get_quarantined, list_quarantine

router = APIRouter(prefix="/api", tags=["manage"])


class KeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[str] = Field(min_length=1)


class BatchIn(BaseModel):
    batch: list[dict[str, Any]] = Field(max_length=10_000)


@router.get("/keys")
def get_keys(ws: AdminWorkspace, rt: RuntimeDep) -> list[dict[str, Any]]:
    return [
        {
            "key_id": k.key_id,
            "name": k.name,
            "prefix": k.prefix,
            "scopes": sorted(k.scopes),
            "created_at": k.created_at.isoformat(),
            "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
        }
        for k in list_keys(rt.db.engine, ws.workspace_id)
    ]


@router.post("/keys", status_code=201)
def post_key(body: KeyIn, ws: AdminWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    scopes = parse_scopes(body.scopes)
    with rt.db.engine.begin() as conn:
        key, secret = create_key(conn, ws.workspace_id, body.name, scopes)
    return {"key_id": key.key_id, "prefix": key.prefix, "scopes": sorted(scopes), "key": secret}


@router.delete("/keys/{key_id}")
def delete_key(key_id: str, ws: AdminWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    key = revoke_key(rt.db.engine, ws.workspace_id, key_id)
    return {"key_id": key.key_id, "revoked": True}


@router.get("/status")
def get_status(ws: ReadWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    return rt.status(ws)


@router.get("/quarantine")
def get_quarantine(
    ws: ReadWorkspace, rt: RuntimeDep, reason: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    rows = list_quarantine(
        rt.db.engine, ws.workspace_id, reason_code=reason, limit=max(1, min(limit, 1000))
    )
    return [{**r, "received_at": r["received_at"].isoformat()} for r in rows]


@router.get("/quarantine/{quarantine_id}")
def get_quarantine_one(quarantine_id: str, ws: ReadWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    row = get_quarantined(rt.db.engine, ws.workspace_id, quarantine_id)
    return {
        k: (v.isoformat() if hasattr(v, "isoformat") else v)
        for k, v in row.items()
        if k != "workspace_id"
    }


@router.post("/events", dependencies=[BatchLimit])
def post_events(
    body: Annotated[BatchIn, Body()], ws: WriteWorkspace, rt: RuntimeDep
) -> dict[str, Any]:
    """Ingest a batch of Segment-spec messages into the key's workspace."""
    report = rt.pipeline(ws).ingest(body.batch, origin="api:/api/events")
    return {"success": True, **report.as_dict(), "quarantine_ids": report.quarantine_ids}
