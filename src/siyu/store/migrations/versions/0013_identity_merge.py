"""identity: background watermark, follower row archive, suggestion decisions

Revision ID: 0013
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = ("identity_merge",)
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "identity_state",
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("resolved_until", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", name=op.f("pk_identity_state")),
    )
    op.create_table(
        "identity_row_archive",
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("table_name", sa.String(length=80), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("row_key", sa.String(length=600), nullable=False),
        sa.Column("merged_into", sa.String(length=40), nullable=False),
        sa.Column("collided", sa.Boolean(), nullable=False),
        sa.Column("record", _json(), nullable=False),
        sa.Column("archived_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint(
            "workspace_id",
            "table_name",
            "customer_id",
            "row_key",
            name=op.f("pk_identity_row_archive"),
        ),
    )
    op.create_table(
        "identity_decisions",
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("kind_a", sa.String(length=40), nullable=False),
        sa.Column("value_a", sa.String(length=320), nullable=False),
        sa.Column("kind_b", sa.String(length=40), nullable=False),
        sa.Column("value_b", sa.String(length=320), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("evidence", _json(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint(
            "workspace_id",
            "kind_a",
            "value_a",
            "kind_b",
            "value_b",
            name=op.f("pk_identity_decisions"),
        ),
    )


def downgrade() -> None:
    op.drop_table("identity_decisions")
    op.drop_table("identity_row_archive")
    op.drop_table("identity_state")
