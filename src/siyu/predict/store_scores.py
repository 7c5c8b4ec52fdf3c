"""Writing one family of scores (CLV, churn) to ``customer_scores`` without touching the other.

Each run replaces its own columns for the whole workspace: the family's columns are cleared first
(a customer no longer scored keeps no stale number), then the new values are upserted from one
staged Arrow table, then rows with no family left are removed. Set-based, one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import sqlalchemy as sa

from siyu.predict.tables import customer_scores
from siyu.store.bulk import upsert

CLV_COLUMNS: tuple[str, ...] = (
    "model_version",
    "as_of",
    "scored_at",
    "p_alive",
    "expected_orders_12m",
    "expected_order_value",
    "clv_12m",
    "expected_next_order_at",
)
CHURN_COLUMNS: tuple[str, ...] = (
    "churn_risk",
    "churn_reasons",
    "churn_method",
    "churn_model_version",
    "churn_as_of",
    "churn_scored_at",
)
#: One column per family that is set whenever the family has scored the customer.
FAMILY_MARKERS: tuple[str, ...] = ("clv_12m", "churn_risk")


def write_family(
    conn: sa.Connection, workspace_id: str, columns: Sequence[str], data: pa.Table
) -> None:
    """Replace ``columns`` for the whole workspace with ``data`` (plus customer_id)."""
    c = customer_scores.c
    conn.execute(
        sa.update(customer_scores)
        .where(c.workspace_id == workspace_id)
        .values(dict.fromkeys(columns))
    )
    n = data.num_rows
    data = data.add_column(0, "workspace_id", pa.array([workspace_id] * n, pa.string()))
    upsert(
        conn,
        customer_scores,
        data.select(["workspace_id", "customer_id", *columns]),
        key=("workspace_id", "customer_id"),
        updates={col: f'excluded."{col}"' for col in columns},
    )
    conn.execute(
        sa.delete(customer_scores).where(
            c.workspace_id == workspace_id, *(c[m].is_(None) for m in FAMILY_MARKERS)
        )
    )
