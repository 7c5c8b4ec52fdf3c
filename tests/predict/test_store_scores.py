"""write_family: each scoring run replaces its own family of columns and leaves the other alone."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
import sqlalchemy as sa

from siyu.predict.store_scores import CHURN_COLUMNS, CLV_COLUMNS, write_family
from siyu.runtime import Runtime

WHEN = datetime(2026, 1, 1)


def _clv(customers: list[str], value: float) -> pa.Table:
    n = len(customers)
    return pa.table(
        {
            "customer_id": pa.array(customers, pa.string()),
            "model_version": [f"v{value:g}"] * n,
            "as_of": pa.array([WHEN] * n, pa.timestamp("us")),
            "scored_at": pa.array([WHEN] * n, pa.timestamp("us")),
            "p_alive": [0.5] * n,
            "expected_orders_12m": [1.0] * n,
            "expected_order_value": [20.0] * n,
            "clv_12m": [value] * n,
            "expected_next_order_at": pa.array([None] * n, pa.timestamp("us")),
        }
    )


def _churn(customers: list[str], risk: int) -> pa.Table:
    n = len(customers)
    return pa.table(
        {
            "customer_id": pa.array(customers, pa.string()),
            "churn_risk": pa.array([risk] * n, pa.int32()),
            "churn_reasons": pa.array(['[{"code": "overdue"}]'] * n, pa.string()),
            "churn_method": ["rules"] * n,
            "churn_model_version": ["rules-1"] * n,
            "churn_as_of": pa.array([WHEN] * n, pa.timestamp("us")),
            "churn_scored_at": pa.array([WHEN] * n, pa.timestamp("us")),
        }
    )


def _stored(rt: Runtime, ws: str) -> dict[str, tuple[object, ...]]:
    with rt.db.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT customer_id, clv_12m, model_version, churn_risk, churn_method "
                "FROM customer_scores WHERE workspace_id = :ws"
            ),
            {"ws": ws},
        ).all()
    return {r[0]: tuple(r[1:]) for r in rows}


def test_a_run_replaces_its_family_only(rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    with rt.db.engine.begin() as conn:
        write_family(conn, ws, CLV_COLUMNS, _clv(["a", "b"], 10.0))
        write_family(conn, ws, CHURN_COLUMNS, _churn(["b", "c"], 70))
    assert _stored(rt, ws) == {
        "a": (10.0, "v10", None, None),
        "b": (10.0, "v10", 70, "rules"),
        "c": (None, None, 70, "rules"),
    }
    # The next CLV run scores a and d: b loses her CLV (no stale number) but keeps her churn
    # risk, c is untouched, d is new.
    with rt.db.engine.begin() as conn:
        write_family(conn, ws, CLV_COLUMNS, _clv(["a", "d"], 20.0))
    assert _stored(rt, ws) == {
        "a": (20.0, "v20", None, None),
        "b": (None, None, 70, "rules"),
        "c": (None, None, 70, "rules"),
        "d": (20.0, "v20", None, None),
    }
    # The same customers again (nothing to insert, nothing stale): new values.
    with rt.db.engine.begin() as conn:
        write_family(conn, ws, CLV_COLUMNS, _clv(["d", "a"], 25.0))
    assert _stored(rt, ws) == {
        "a": (25.0, "v25", None, None),
        "b": (None, None, 70, "rules"),
        "c": (None, None, 70, "rules"),
        "d": (25.0, "v25", None, None),
    }
    # A churn run that scores only d: b and c have no family left and are removed.
    with rt.db.engine.begin() as conn:
        write_family(conn, ws, CHURN_COLUMNS, _churn(["d"], 30))
    assert _stored(rt, ws) == {
        "a": (25.0, "v25", None, None),
        "d": (25.0, "v25", 30, "rules"),
    }


def test_other_workspaces_are_not_touched(rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    with rt.db.engine.begin() as conn:
        write_family(conn, "ws_other", CLV_COLUMNS, _clv(["a", "x"], 5.0))
        write_family(conn, ws, CLV_COLUMNS, _clv(["a"], 10.0))
        write_family(conn, ws, CLV_COLUMNS, _clv(["b"], 15.0))
    assert _stored(rt, "ws_other") == {"a": (5.0, "v5", None, None), "x": (5.0, "v5", None, None)}
    assert _stored(rt, ws) == {"b": (15.0, "v15", None, None)}
