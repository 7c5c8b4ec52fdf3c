"""Segments endpoints: the tag catalogue, rule validation, tags and tier of a customer."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter
from pydantic import BaseModel, Field

from siyu.api.deps import ReadWorkspace, RuntimeDep, WriteWorkspace
from siyu.segments.attributes import tag_schema
from siyu.segments.lang import normalise, validate
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
