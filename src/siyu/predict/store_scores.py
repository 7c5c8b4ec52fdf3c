"""Writing one family of scores (CLV, churn) to ``customer_scores`` without touching the other.

Each run replaces its own columns for the whole workspace: a customer no longer scored keeps no
stale number, the others get the new values, new customers get a row, and rows with no family
left are removed. Set-based, one transaction, from one staged Arrow table.

Why not ``INSERT ... ON CONFLICT DO UPDATE``: on DuckDB its per-row conflict check through the
primary-key index cost 0.7 s CPU per 100,000 scores (about 7 s for a million customers), while an
``UPDATE ... FROM`` join (in stored row order, see below) plus an anti-joined ``INSERT`` of the
customers not stored yet did the same in 0.07 s (measured 2026-12-06). Deleting the workspace's
rows and inserting them again is worse still on DuckDB (the commit re-checks every deleted key:
3.7 s per 100,000). PostgreSQL runs the same statements, with a plain ``UPDATE ... FROM``; the
write lock and the primary key keep a key from being stored twice.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import sqlalchemy as sa

from siyu.predict.tables import customer_scores
from siyu.store.bulk import stage, unstage

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


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def write_family(
    conn: sa.Connection, workspace_id: str, columns: Sequence[str], data: pa.Table
) -> None:
    """Replace ``columns`` for the whole workspace with ``data`` (customer_id plus ``columns``).

    ``data`` must not repeat a customer.
    """
    c = customer_scores.c
    table = _q(customer_scores.name)
    data = data.select(["customer_id", *columns])
    marker = next((m for m in FAMILY_MARKERS if m in columns), None)
    name = stage(conn, customer_scores, data)
    ws = {"ws": workspace_id}
    try:
        sets = ", ".join(f"{_q(col)} = s.{_q(col)}" for col in columns)
        if conn.dialect.name == "duckdb":
            # DuckDB updates row by row in the order the join delivers them; in the staged
            # order (the summary's hash order) that is a random walk over the table: 0.8 s CPU
            # per 100,000 rows. In row-id order, 0.04 s (measured 2026-12-06).
            source = (
                f"(SELECT s.*, t.rowid AS stored_row FROM {name} s JOIN {table} t"
                " ON t.workspace_id = :ws AND t.customer_id = s.customer_id"
                " ORDER BY stored_row) s"
            )
            match = f"{table}.rowid = s.stored_row"
        else:
            source = f"{name} s"
            match = f"{table}.workspace_id = :ws AND {table}.customer_id = s.customer_id"
        updated = conn.execute(
            sa.text(f"UPDATE {table} SET {sets} FROM {source} WHERE {match}"), ws
        ).rowcount
        # The anti-joins below cost 0.15 s each at a million stored scores: skipped when the
        # counts show there is nothing for them to do (a re-run over the same customers).
        if updated != data.num_rows:
            listed = ", ".join(_q(col) for col in columns)
            conn.execute(
                sa.text(
                    f"INSERT INTO {table} (workspace_id, customer_id, {listed})"
                    f" SELECT CAST(:ws AS VARCHAR), s.customer_id, "
                    + ", ".join(f"s.{_q(col)}" for col in columns)
                    + f" FROM {name} s WHERE NOT EXISTS (SELECT 1 FROM {table} t"
                    " WHERE t.workspace_id = :ws AND t.customer_id = s.customer_id)"
                ),
                ws,
            )
        stale = True
        if marker is not None:
            # Every row with the family's marker set now is either one of data's (with its
            # marker set) or a customer this run did not score.
            marked = conn.execute(
                sa.select(sa.func.count())
                .select_from(customer_scores)
                .where(c.workspace_id == workspace_id, c[marker].is_not(None))
            ).scalar_one()
            stale = marked != data.num_rows - data[marker].null_count
        if stale:
            # Customers this run does not score lose the family's old numbers.
            conn.execute(
                sa.text(
                    f"UPDATE {table} SET "
                    + ", ".join(f"{_q(col)} = NULL" for col in columns)
                    + f" WHERE workspace_id = :ws AND NOT EXISTS (SELECT 1 FROM {name} s"
                    f" WHERE s.customer_id = {table}.customer_id)"
                ),
                ws,
            )
    finally:
        unstage(conn, name)
    conn.execute(
        sa.delete(customer_scores).where(
            c.workspace_id == workspace_id, *(c[m].is_(None) for m in FAMILY_MARKERS)
        )
    )
