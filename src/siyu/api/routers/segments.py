"""Segments endpoints: tags, a customer's tiers and tags, and saved segments.

Saved segments: list, create, show, update, delete, a live count that validates and counts in
one call (for an editor), refresh, and a streaming CSV/Parquet export of the members.
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from siyu.api.deps import ReadWorkspace, RuntimeDep, WriteWorkspace
from siyu.segments.attributes import tag_schema
from siyu.segments.export import export_segment
from siyu.segments.lang import normalise, validate
from siyu.segments.membership import latest_snapshots, refresh_segments
from siyu.segments.saved import (
    count,
    create_segment,
    delete_segment,
    get_segment,
    list_segments,
    update_segment,
)
from siyu.segments.tables import customer_segments, customer_tags
from siyu.segments.tagging import add_tag, all_tags, explain_tag

router = APIRouter(prefix="/api", tags=["segments"])


class RuleIn(BaseModel):
    rule: str = Field(min_length=1, max_length=10_000)


class TagIn(RuleIn):
    tag_id: str = Field(pattern=r"^[a-z0-9_]{1,80}$")
    name_en: str = Field(min_length=1, max_length=200)
    name_zh: str | None = Field(None, max_length=200)
    description: str = Field("", max_length=2000)


@router.get("/tags")
def list_tags(ws: ReadWorkspace, rt: RuntimeDep) -> list[dict[str, str]]:
    """Every tag (built-in and the workspace's own) with names, description and rule."""
    return [
        {
            "tag_id": t.tag_id,
            "family": t.family,
            "name_en": t.name_en,
            "name_zh": t.name_zh,
            "description": t.description,
            "rule": t.rule,
        }
        for t in all_tags(rt.db, ws.workspace_id)
    ]


@router.post("/tags/validate")
def validate_rule(body: RuleIn, ws: ReadWorkspace) -> dict[str, Any]:
    """Check a rule while it is being written: 200 with its canonical text, or 400 with position."""
    validate(body.rule, tag_schema())
    return {"valid": True, "rule": normalise(body.rule)}


@router.post("/tags", status_code=201)
def create_tag(body: TagIn, ws: WriteWorkspace, rt: RuntimeDep) -> dict[str, str]:
    tag = add_tag(
        rt.db,
        ws,
        body.tag_id,
        body.rule,
        name_en=body.name_en,
        name_zh=body.name_zh,
        description=body.description,
    )
    return {"tag_id": tag.tag_id, "rule": tag.rule}


@router.get("/customers/{customer_id}/segments")
def customer_segments_of(customer_id: str, ws: ReadWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    """The customer's current tiers (per model), RFM and tags with the date each was gained."""
    s, t = customer_segments, customer_tags
    with rt.db.engine.connect() as conn:
        tiers = conn.execute(
            sa.select(s).where(s.c.workspace_id == ws.workspace_id, s.c.customer_id == customer_id)
        ).all()
        tags = conn.execute(
            sa.select(t.c.tag_id, t.c.since)
            .where(t.c.workspace_id == ws.workspace_id, t.c.customer_id == customer_id)
            .order_by(t.c.tag_id)
        ).all()
    return {
        "customer_id": customer_id,
        "tiers": [
            {
                k: (v.isoformat() if hasattr(v, "isoformat") else v)
                for k, v in row._mapping.items()
                if k not in ("workspace_id", "customer_id")
            }
            for row in tiers
        ],
        "tags": [{"tag_id": tag, "since": since.isoformat()} for tag, since in tags],
    }


@router.get("/customers/{customer_id}/tags/{tag_id}/explain")
def explain(customer_id: str, tag_id: str, ws: ReadWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    """Why the customer has or lacks the tag, now."""
    return explain_tag(rt.db, ws, customer_id, tag_id).to_dict()


class ExpressionIn(BaseModel):
    expression: str = Field(min_length=1, max_length=10_000)
    as_of: datetime | None = None


class SegmentIn(BaseModel):
    segment_id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,79}$")
    expression: str = Field(min_length=1, max_length=10_000)
    name: str | None = Field(None, max_length=200)
    description: str = Field("", max_length=2000)


class SegmentPatch(BaseModel):
    expression: str | None = Field(None, min_length=1, max_length=10_000)
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)


def _with_snapshot(item: dict[str, Any], snapshot: dict[str, Any] | None) -> dict[str, Any]:
    return {**item, "last_refresh": snapshot}


@router.get("/segments")
def list_saved(ws: ReadWorkspace, rt: RuntimeDep) -> list[dict[str, Any]]:
    """Saved segments with their last refresh (members, entered, left) or null."""
    snapshots = latest_snapshots(rt.db, ws.workspace_id)
    return [
        _with_snapshot(s.to_dict(), snapshots.get(s.segment_id))
        for s in list_segments(rt.db, ws.workspace_id)
    ]


@router.post("/segments/count")
def count_expression(body: ExpressionIn, ws: ReadWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    """Validate and count in one call: 200 with the count, or 400 with the error's position."""
    result = count(rt.db, ws.workspace_id, body.expression, as_of=body.as_of)
    return {
        "valid": True,
        "expression": result.expression,
        "members": result.members,
        "customers": result.customers,
        "as_of": result.as_of.isoformat(),
    }


@router.post("/segments/refresh")
def refresh(ws: WriteWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    """Evaluate every saved segment now; store members and who entered and left."""
    report = refresh_segments(rt.db, ws)
    return {
        "run_id": report.run_id,
        "as_of": report.as_of.isoformat(),
        "members": report.members,
        "entered": report.entered,
        "left": report.left,
    }


@router.post("/segments", status_code=201)
def create_saved(body: SegmentIn, ws: WriteWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    seg = create_segment(
        rt.db, ws, body.segment_id, body.expression, name=body.name, description=body.description
    )
    return seg.to_dict()


@router.get("/segments/{segment_id}")
def show_saved(segment_id: str, ws: ReadWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    seg = get_segment(rt.db, ws.workspace_id, segment_id)
    return _with_snapshot(seg.to_dict(), latest_snapshots(rt.db, ws.workspace_id).get(segment_id))


@router.patch("/segments/{segment_id}")
def update_saved(
    segment_id: str, body: SegmentPatch, ws: WriteWorkspace, rt: RuntimeDep
) -> dict[str, Any]:
    """Change expression, name or description; the version goes up by one."""
    seg = update_segment(
        rt.db,
        ws,
        segment_id,
        expression=body.expression,
        name=body.name,
        description=body.description,
    )
    return seg.to_dict()


@router.delete("/segments/{segment_id}", status_code=204)
def delete_saved(segment_id: str, ws: WriteWorkspace, rt: RuntimeDep) -> Response:
    delete_segment(rt.db, ws, segment_id)
    return Response(status_code=204)


@router.get("/segments/{segment_id}/export")
def export_saved(
    segment_id: str,
    ws: ReadWorkspace,
    rt: RuntimeDep,
    format: Literal["csv", "parquet"] = "csv",
) -> FileResponse:
    """The members with contact details as a CSV or Parquet download (written in batches)."""
    folder = Path(tempfile.mkdtemp(prefix="siyu-export-"))
    path = folder / f"{segment_id}.{format}"
    try:
        report = export_segment(rt.db, ws.workspace_id, segment_id, path, fmt=format)
    except Exception:
        _remove(folder)
        raise
    media = "text/csv" if format == "csv" else "application/vnd.apache.parquet"
    return FileResponse(
        report.path,
        media_type=media,
        filename=path.name,
        headers={"X-Siyu-Rows": str(report.rows)},
        background=BackgroundTask(_remove, folder),
    )


def _remove(folder: Path) -> None:
    for child in folder.iterdir():
        child.unlink()
    folder.rmdir()
