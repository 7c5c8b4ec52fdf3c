"""Prediction scores in the tag language: CLV decile, p_alive, churn band, days to next order."""

from __future__ import annotations

from datetime import timedelta

import pyarrow as pa
import sqlalchemy as sa

from siyu.predict.store_scores import CHURN_COLUMNS, CLV_COLUMNS, write_family
from siyu.runtime import Runtime
from siyu.segments.tagging import run_tags
from tests.segments.test_tiers_rfm import AS_OF, buy

PREDICTION_TAGS = {
    "clv_top_10pct",
    "clv_top_30pct",
    "clv_bottom_half",
    "likely_active",
    "likely_lapsed",
    "churn_risk_very_high",
    "churn_risk_high",
    "churn_risk_medium",
    "churn_risk_low",
    "valuable_at_risk",
    "next_order_due_14d",
    "next_order_overdue",
}


def _customer_ids(rt: Runtime) -> dict[str, str]:
    with rt.db.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT user_id, customer_id FROM customers")).all()
    return {r[0]: r[1] for r in rows}


def _tags_of(rt: Runtime) -> dict[str, set[str]]:
    """user_id -> its prediction tags."""
    with rt.db.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT c.user_id, t.tag_id FROM customer_tags t JOIN customers c "
                "ON c.customer_id = t.customer_id"
            )
        ).all()
    found: dict[str, set[str]] = {}
    for user, tag in rows:
        if tag in PREDICTION_TAGS:
            found.setdefault(user, set()).add(tag)
    return found


def test_scored_customers_get_prediction_tags(rt: Runtime) -> None:
    users = [f"u{i:02d}" for i in range(10)]
    rt.pipeline().ingest([buy(u, 10 + i, 50) for i, u in enumerate(users)])
    ids = _customer_ids(rt)
    ws = rt.workspace()
    # u00 is worth the most (CLV 1000) and u09 the least (100); u00 is alive, u09 lapsed.
    clv = [float(1000 - 100 * i) for i in range(10)]
    n = len(users)
    scores = pa.table(
        {
            "customer_id": [ids[u] for u in users],
            "model_version": ["bgnbd-test"] * n,
            "as_of": pa.array([AS_OF] * n, pa.timestamp("us")),
            "scored_at": pa.array([AS_OF] * n, pa.timestamp("us")),
            "p_alive": [0.95 - 0.1 * i for i in range(10)],
            "expected_orders_12m": [2.0] * n,
            "expected_order_value": [50.0] * n,
            "clv_12m": clv,
            # u00 due in 7 days, u01 overdue by 3 days, the rest in 60 days
            "expected_next_order_at": pa.array(
                [AS_OF + timedelta(days=7), AS_OF - timedelta(days=3)]
                + [AS_OF + timedelta(days=60)] * (n - 2),
                pa.timestamp("us"),
            ),
        }
    )
    churn = pa.table(
        {
            "customer_id": [ids[u] for u in users[:4]],
            "churn_risk": pa.array([90, 65, 40, 10], pa.int32()),
            "churn_reasons": [None] * 4,
            "churn_method": ["rules"] * 4,
            "churn_model_version": ["rules-1"] * 4,
            "churn_as_of": pa.array([AS_OF] * 4, pa.timestamp("us")),
            "churn_scored_at": pa.array([AS_OF] * 4, pa.timestamp("us")),
        }
    )
    with rt.db.engine.begin() as conn:
        write_family(conn, ws.workspace_id, CLV_COLUMNS, scores)
        write_family(conn, ws.workspace_id, CHURN_COLUMNS, churn)
    run_tags(rt.db, ws, as_of=AS_OF)
    tags = _tags_of(rt)
    assert tags["u00"] == {
        "clv_top_10pct",
        "clv_top_30pct",
        "likely_active",
        "churn_risk_very_high",
        "valuable_at_risk",
        "next_order_due_14d",
    }
    assert tags["u01"] == {
        "clv_top_30pct",
        "likely_active",
        "churn_risk_high",
        "valuable_at_risk",
        "next_order_overdue",
    }
    assert tags["u02"] == {"clv_top_30pct", "churn_risk_medium"}
    assert tags["u03"] == {"churn_risk_low"}
    # deciles 1-5 are the lower half; p_alive below 0.3 from u07 on
    assert {u for u, t in tags.items() if "clv_bottom_half" in t} == set(users[5:])
    assert {u for u, t in tags.items() if "likely_lapsed" in t} == {"u07", "u08", "u09"}


def test_without_scores_no_prediction_tags(rt: Runtime) -> None:
    rt.pipeline().ingest([buy("a", 10, 50), buy("b", 20, 70)])
    report = run_tags(rt.db, rt.workspace(), as_of=AS_OF)
    assert report.memberships > 0
    assert _tags_of(rt) == {}
