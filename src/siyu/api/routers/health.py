"""Liveness, readiness and version."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter

from siyu import __version__
from siyu.api.deps import RuntimeDep
from siyu.store import current_revision, head_revision

router = APIRouter(tags=["health"])


@router.get("/health")
def health(rt: RuntimeDep) -> dict[str, Any]:
    """Database reachable and schema current."""
    with rt.db.engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    revision = current_revision(rt.db)
    return {
        "status": "ok",
        "database": rt.db.kind,
        "schema": revision,
        "schema_current": revision == head_revision(),
    }


@router.get("/version")
def version() -> dict[str, str]:
    return {"name": "siyu", "version": __version__}
