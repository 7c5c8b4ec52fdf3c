"""identity: a version per workspace's stored graph, for processes that hold it in memory

``siyu serve`` holds each workspace's identity graph tables in memory for its incremental runs
(``siyu.identity.held``). Every run that writes the graph stores a new random version here in
its transaction, so a held copy knows when another process, a full rebuild or a rolled-back
transaction made it stale.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "identity_graph_versions",
        sa.Column("workspace_id", sa.String(40), nullable=False),
        sa.Column("version", sa.String(40), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", name=op.f("pk_identity_graph_versions")),
    )


def downgrade() -> None:
    op.drop_table("identity_graph_versions")
