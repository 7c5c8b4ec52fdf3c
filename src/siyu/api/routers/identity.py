"""One-ID endpoints: explain a customer, duplicate suggestions and the operator's decisions."""

from __future__ import annotations

import dataclasses
from time import perf_counter
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from siyu.api.deps import ReadWorkspace, RuntimeDep, WriteWorkspace
from siyu.identity.explain import explain
from siyu.identity.suggest import STORED_FLOOR, compute, decide, refresh, stored
from siyu.runtime import Runtime

router = APIRouter(prefix="/api/identity", tags=["identity"])


class DecisionIn(BaseModel):
    customer_a: str = Field(min_length=1, max_length=40)
    customer_b: str = Field(min_length=1, max_length=40)
    note: str | None = Field(None, max_length=2000)


@router.get("/suggestions")
def list_suggestions(
    ws: ReadWorkspace,
    rt: RuntimeDep,
    min_probability: float = Query(0.8, ge=0, le=1),
    limit: int = Query(50, ge=1, le=1000),
) -> list[dict[str, Any]]:
    """Likely duplicates sharing no identifier, most probable first, with the comparisons:
    those of the last refresh (``computed_at``), computed and stored first when the workspace
    has none; below the stored floor (0.5) computed for the request."""
    if min_probability < STORED_FLOOR:
        with rt.db.engine.connect() as conn:
            live = compute(conn, ws.workspace_id, min_probability=min_probability, limit=limit)
        return [dataclasses.asdict(s) for s in live]
    with rt.db.engine.connect() as conn:
        found = stored(conn, ws.workspace_id, min_probability=min_probability, limit=limit)
    if found is None:
        with rt.db.write_lock, rt.db.engine.begin() as conn:
            refresh(conn, ws.workspace_id)
        with rt.db.engine.connect() as conn:
            found = stored(conn, ws.workspace_id, min_probability=min_probability, limit=limit)
    return [dataclasses.asdict(s) for s in found or []]


@router.post("/suggestions/refresh")
def refresh_suggestions(ws: WriteWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    """Recompute the workspace's suggestions (blocking, comparisons, the model's fit) and store
    them in place of the last refresh's."""
    started = perf_counter()
    with rt.db.write_lock, rt.db.engine.begin() as conn:
        count = refresh(conn, ws.workspace_id)
    return {"suggestions": count, "seconds": round(perf_counter() - started, 3)}


@router.post("/suggestions/confirm")
def confirm(body: DecisionIn, ws: WriteWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    """Link the two customers (a manual link kept on every rebuild) and re-resolve."""
    return _decide(body, ws.workspace_id, rt, "confirm")


@router.post("/suggestions/reject")
def reject(body: DecisionIn, ws: WriteWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    """Record that the two customers are different people: never suggested again."""
    return _decide(body, ws.workspace_id, rt, "reject")


@router.get("/customers/{customer}/explain")
def explain_customer(customer: str, ws: ReadWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    """A customer's identifiers, the evidence linking them, refused links and merge history."""
    with rt.db.engine.connect() as conn:
        found = explain(conn, ws.workspace_id, customer)
    out = dataclasses.asdict(found)
    for section in ("identifiers", "links", "conflicts", "audit"):
        out[section] = [
            {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in row.items()}
            for row in out[section]
        ]
    return out


def _decide(body: DecisionIn, workspace_id: str, rt: Runtime, verdict: str) -> dict[str, Any]:
    """Record an operator's verdict on a suggestion in one write transaction."""
    with rt.db.write_lock, rt.db.engine.begin() as conn:
        return decide(
            conn,
            workspace_id,
            body.customer_a,
            body.customer_b,
            verdict,
            note=body.note,
            windows=rt.settings.identity_limit_windows,
        )
