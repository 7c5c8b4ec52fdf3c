"""Recommendation lists and scores follow One-ID merges (both engines)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from siyu.identity.follow import follow_merges, staged_moves
from siyu.predict.plugin import follow_recommendations
from siyu.predict.tables import customer_recommendations, customer_scores
from siyu.registry import load_builtins, registry
from siyu.runtime import Runtime


def _lists(rt: Runtime, ws: str) -> dict[str, list[str]]:
    c = customer_recommendations.c
    with rt.db.engine.connect() as conn:
        rows = conn.execute(
            sa.select(c.customer_id, c.product_id)
            .where(c.workspace_id == ws)
            .order_by(c.customer_id, c.rank)
        ).all()
    out: dict[str, list[str]] = {}
    for customer, product in rows:
        out.setdefault(customer, []).append(product)
    return out


def test_merges_keep_whole_lists(rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    lists = {"a": ["p1", "p2"], "b": ["p3", "p4"], "c": ["p5", "p6"], "t": ["p7", "p8"]}
    rows = [
        {
            "workspace_id": ws,
            "customer_id": customer,
            "rank": rank,
            "product_id": product,
            "score": 1.0,
            "reason": "popular",
            "because_of": None,
            "model_version": "test",
            "as_of": datetime(2025, 1, 1),
        }
        for customer, products in lists.items()
        for rank, product in enumerate(products, start=1)
    ]
    with rt.db.engine.begin() as conn:
        conn.execute(sa.insert(customer_recommendations), rows)
        # b and a merge into s (no list of its own): a's list (smallest id) moves over.
        # c merges into t, which keeps its own list.
        with staged_moves(conn, [("b", "s"), ("a", "s"), ("c", "t")]) as moves:
            changed = follow_recommendations(conn, ws, moves)
    assert changed == 2 + 2 + 2  # b's and c's lists dropped, a's moved
    assert _lists(rt, ws) == {"s": ["p1", "p2"], "t": ["p7", "p8"]}
    load_builtins()
    assert registry.merge_followers.get("predict:recommendations") is follow_recommendations


def test_scores_follow_merges(rt: Runtime) -> None:
    """customer_scores is re-keyed by One-ID's table follower: the survivor keeps its own scores,
    a survivor without any gets the absorbed customer's."""
    load_builtins()
    ws = rt.workspace().workspace_id
    rows = [
        {"workspace_id": ws, "customer_id": customer, "clv_12m": clv, "churn_risk": risk}
        for customer, clv, risk in (("a", 10.0, 20), ("t", 99.0, 5), ("c", 50.0, 90))
    ]
    with rt.db.engine.begin() as conn:
        conn.execute(sa.insert(customer_scores), rows)
        follow_merges(conn, ws, [("a", "s"), ("c", "t")])
    c = customer_scores.c
    with rt.db.engine.connect() as conn:
        found = conn.execute(
            sa.select(c.customer_id, c.clv_12m, c.churn_risk)
            .where(c.workspace_id == ws)
            .order_by(c.customer_id)
        ).all()
    assert [tuple(r) for r in found] == [("s", 10.0, 20), ("t", 99.0, 5)]
