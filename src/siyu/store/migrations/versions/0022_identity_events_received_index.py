"""identity: PostgreSQL finds a batch's events by their receipt time through an index

An incremental One-ID run reads its batch's events and re-points the new ones by their
receipt time (``received_at >= :since``). DuckDB skips older row groups by their zone maps; on
PostgreSQL every such statement was a scan of the whole events table, and since the newest
events are past the table's statistics, the planner took the filter for one row and joined the
batch's senders to each matching event by a nested loop: 27-31 s of a 33-37 s batch at 200k
customers, 38-49 s batches at 1M. An index on (workspace_id, received_at) reads only the
batch's rows; receipt times grow, so the index is appended at its end as events arrive.
DuckDB gets no index (see migration 0017).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_events_workspace_id_received_at"


def upgrade() -> None:
    if op.get_bind().dialect.name == "duckdb":
        return
    op.create_index(INDEX, "events", ["workspace_id", "received_at"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "duckdb":
        return
    op.drop_index(INDEX, table_name="events")
