"""Predict endpoints: a customer's scores (CLV, churn risk with reasons) and recommendations,
similar products, and the merchant's complement rules."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from siyu.api.deps import ReadWorkspace, RuntimeDep, WriteWorkspace
from siyu.errors import NotFound
from siyu.predict.churn import describe
from siyu.predict.reco import (
    add_rule,
    list_rules,
    remove_rule,
    similar_products,
    stored_recommendations,
)
from siyu.predict.tables import customer_scores
from siyu.profiles import find_customer

router = APIRouter(prefix="/api", tags=["predict"])


class RuleIn(BaseModel):
    when_bought: str = Field(min_length=1, max_length=200)
    recommend: str = Field(min_length=1, max_length=200)
    weight: float = Field(1.0, gt=0, le=10)


def customer_score(conn: sa.Connection, workspace_id: str, customer_id: str) -> dict[str, Any]:
    """The stored scores of one customer, churn reasons as data and as English text."""
    row = conn.execute(
        sa.select(customer_scores).where(
            customer_scores.c.workspace_id == workspace_id,
            customer_scores.c.customer_id == customer_id,
        )
    ).first()
    if row is None:
        raise NotFound(
            f"Customer {customer_id} has no scores yet.",
            hint="Run siyu predict clv and siyu predict churn (scores exist for buyers).",
        )
    out = dict(row._mapping)
    out.pop("workspace_id")
    reasons = out.get("churn_reasons")
    if isinstance(reasons, str):
        reasons = json.loads(reasons)
    out["churn_reasons"] = reasons
    out["churn_reasons_text"] = describe(reasons) if reasons else []
    return out


@router.get("/customers/{customer}/scores")
def get_scores(customer: str, ws: ReadWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    """p_alive, expected orders, 12-month CLV, expected next order date, churn risk 0-100 with
    its reasons, and the model version and date of each family."""
    with rt.db.engine.connect() as conn:
        customer_id = find_customer(conn, ws.workspace_id, customer)
        return customer_score(conn, ws.workspace_id, customer_id)


@router.get("/customers/{customer}/recommendations")
def get_recommendations(
    customer: str, ws: ReadWorkspace, rt: RuntimeDep, top: int = Query(10, ge=1, le=100)
) -> dict[str, Any]:
    """The customer's stored top-N products with reason and the product that led to each."""
    with rt.db.engine.connect() as conn:
        customer_id = find_customer(conn, ws.workspace_id, customer)
        items = stored_recommendations(conn, ws.workspace_id, customer_id, top)
    if not items:
        raise NotFound(
            f"No recommendations stored for customer {customer_id}.",
            hint="Run siyu reco run to compute every customer's top products.",
        )
    return {"customer_id": customer_id, "recommendations": items}


@router.get("/products/{product}/similar")
def get_similar(
    product: str, ws: ReadWorkspace, rt: RuntimeDep, top: int = Query(10, ge=1, le=100)
) -> dict[str, Any]:
    """Products most similar to a product id or SKU (co-purchase, co-view, complement rules)."""
    return {"product": product, "similar": similar_products(rt.db, ws, product, top=top)}


@router.get("/reco/rules")
def get_rules(ws: ReadWorkspace, rt: RuntimeDep) -> list[dict[str, Any]]:
    """The workspace's complement rules."""
    with rt.db.engine.connect() as conn:
        return list_rules(conn, ws.workspace_id)


@router.post("/reco/rules", status_code=201)
def post_rule(body: RuleIn, ws: WriteWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    """Add a complement rule: buyers of ``when_bought`` get ``recommend`` (id, SKU or category)."""
    with rt.db.engine.begin() as conn:
        rule_id = add_rule(conn, ws.workspace_id, body.when_bought, body.recommend, body.weight)
    return {"rule_id": rule_id, **body.model_dump()}


@router.delete("/reco/rules/{rule_id}", status_code=204)
def delete_rule(rule_id: str, ws: WriteWorkspace, rt: RuntimeDep) -> Response:
    with rt.db.engine.begin() as conn:
        remove_rule(conn, ws.workspace_id, rule_id)
    return Response(status_code=204)
