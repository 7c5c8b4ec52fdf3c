"""Recommendations for a workspace: fit, store the top-N per customer, look up, rules.

``customer_recommendations`` holds the latest top-N of every known customer (rank 1 first),
rewritten by each run in one transaction; journeys read it for post-purchase cross-sell.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import sqlalchemy as sa

from siyu.access import Workspace
from siyu.compute import tables
from siyu.errors import InvalidInput, NotFound
from siyu.predict.reco.data import load_reco_data
from siyu.predict.reco.evaluate import RecoEvaluation, evaluate_recommendations
from siyu.predict.reco.model import REASONS, ItemModel, Params, Rule
from siyu.predict.tables import customer_recommendations, reco_rules
from siyu.store import Database
from siyu.store.bulk import append


@dataclass(frozen=True)
class RecoReport:
    model_version: str
    as_of: datetime
    customers: int
    products: int
    rows: int
    replenishable: int


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def add_rule(
    conn: sa.Connection, workspace_id: str, when_bought: str, recommend: str, weight: float = 1.0
) -> str:
    """A complement rule: customers who bought ``when_bought`` (product id, SKU or category)
    are recommended ``recommend`` (product id, SKU or category)."""
    if not when_bought.strip() or not recommend.strip():
        raise InvalidInput(
            "A complement rule needs both what was bought and what to recommend.",
            hint='For example: siyu reco rule add "yoga mat" apparel',
        )
    if not 0 < weight <= 10:
        raise InvalidInput(f"weight must be in (0, 10], got {weight}.", field="weight")
    rule_id = "rr_" + secrets.token_hex(8)
    conn.execute(
        sa.insert(reco_rules).values(
            workspace_id=workspace_id,
            rule_id=rule_id,
            when_bought=when_bought.strip(),
            recommend=recommend.strip(),
            weight=weight,
            created_at=_now(),
        )
    )
    return rule_id


def list_rules(conn: sa.Connection, workspace_id: str) -> list[dict[str, Any]]:
    r = reco_rules.c
    found = conn.execute(
        sa.select(r.rule_id, r.when_bought, r.recommend, r.weight, r.created_at)
        .where(r.workspace_id == workspace_id)
        .order_by(r.created_at, r.rule_id)
    ).all()
    return [dict(row._mapping) for row in found]


def remove_rule(conn: sa.Connection, workspace_id: str, rule_id: str) -> None:
    r = reco_rules.c
    done = conn.execute(
        sa.delete(reco_rules).where(r.workspace_id == workspace_id, r.rule_id == rule_id)
    )
    if done.rowcount == 0:
        raise NotFound(f"No complement rule {rule_id!r}.", hint="List them: siyu reco rule list")


def _rules(db: Database, workspace_id: str) -> list[Rule]:
    with db.engine.connect() as conn:
        return [
            Rule(x["when_bought"], x["recommend"], float(x["weight"]))
            for x in list_rules(conn, workspace_id)
        ]


def fit_model(
    db: Database, workspace: Workspace, as_of: datetime | None = None, params: Params | None = None
) -> ItemModel:
    as_of = as_of or _now()
    data = load_reco_data(tables(db, workspace.workspace_id), as_of)
    if len(data.products) == 0:
        raise NotFound(
            "The workspace has no products to recommend.",
            hint="Import orders or product events first.",
        )
    return ItemModel(data, params or Params(), _rules(db, workspace.workspace_id))


def recommend_all(
    db: Database,
    workspace: Workspace,
    *,
    as_of: datetime | None = None,
    top: int = 10,
    params: Params | None = None,
) -> RecoReport:
    """Fit on everything by ``as_of`` and store the top-``top`` of every known customer."""
    if not 1 <= top <= 100:
        raise InvalidInput(f"top must be between 1 and 100, got {top}.", field="top")
    as_of = as_of or _now()
    model = fit_model(db, workspace, as_of, params)
    d = model.data
    recs = model.recommend(top=top)
    n, k = recs.product.shape
    version = f"item2item@{as_of:%Y-%m-%d}"
    because = recs.because_of.ravel()
    data = pa.table(
        {
            "workspace_id": pa.array([workspace.workspace_id] * (n * k), pa.string()),
            "customer_id": pa.array(np.repeat(d.customers, k), pa.string()),
            "rank": pa.array(np.tile(np.arange(1, k + 1), n), pa.int32()),
            "product_id": pa.array(d.products[recs.product.ravel()], pa.string()),
            "score": pa.array(recs.score.ravel(), pa.float64()),
            "reason": pa.array(np.asarray(REASONS)[recs.reason.ravel()], pa.string()),
            "because_of": pa.array(
                d.products[np.maximum(because, 0)], pa.string(), mask=because < 0
            ),
            "model_version": pa.array([version] * (n * k), pa.string()),
            "as_of": pa.array([as_of] * (n * k), pa.timestamp("us")),
        }
    )
    with db.write_lock, db.engine.begin() as conn:
        conn.execute(
            sa.delete(customer_recommendations).where(
                customer_recommendations.c.workspace_id == workspace.workspace_id
            )
        )
        append(conn, customer_recommendations, data)
    return RecoReport(version, as_of, n, len(d.products), n * k, int(model.replenishable.sum()))


def stored_recommendations(
    conn: sa.Connection, workspace_id: str, customer_id: str, top: int = 10
) -> list[dict[str, Any]]:
    """The stored top-N of a customer, with product names (empty if none stored)."""
    from siyu.store.schema import products as p

    cr = customer_recommendations.c
    found = conn.execute(
        sa.select(
            cr.rank,
            cr.product_id,
            p.c.sku,
            p.c.name,
            p.c.category,
            cr.score,
            cr.reason,
            cr.because_of,
            cr.model_version,
            cr.as_of,
        )
        .select_from(
            customer_recommendations.outerjoin(
                p,
                sa.and_(p.c.workspace_id == cr.workspace_id, p.c.product_id == cr.product_id),
            )
        )
        .where(cr.workspace_id == workspace_id, cr.customer_id == customer_id, cr.rank <= top)
        .order_by(cr.rank)
    ).all()
    return [dict(row._mapping) for row in found]


def similar_products(
    db: Database, workspace: Workspace, product: str, *, top: int = 10
) -> list[dict[str, Any]]:
    """Products most similar to ``product`` (product id or SKU), best first."""
    model = fit_model(db, workspace)
    d = model.data
    hits = np.flatnonzero((d.products == product) | (d.skus == product))
    if hits.size == 0:
        raise NotFound(
            f"No product {product!r} in this workspace.",
            hint="Pass a product id or SKU as stored (siyu status lists the counts).",
        )
    index, value = model.similar(int(hits[0]), top)
    return [
        {
            "product_id": str(d.products[i]),
            "sku": str(d.skus[i]) or None,
            "category": str(d.categories[i]) or None,
            "similarity": float(v),
        }
        for i, v in zip(index.tolist(), value.tolist(), strict=True)
    ]


def evaluate(
    db: Database,
    workspace: Workspace,
    *,
    as_of: datetime | None = None,
    test_days: int = 60,
    k: int = 10,
    params: Params | None = None,
) -> RecoEvaluation:
    return evaluate_recommendations(
        tables(db, workspace.workspace_id),
        as_of or _now(),
        test_days=test_days,
        k=k,
        params=params,
        rules=_rules(db, workspace.workspace_id),
    )
