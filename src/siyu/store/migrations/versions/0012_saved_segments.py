"""saved segments: definitions, members, history, snapshots

Revision ID: 0012
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = ("saved_segments",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "segment_definitions",
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("segment_id", sa.String(length=80), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("expression", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "segment_id", name=op.f("pk_segment_definitions")),
    )
    op.create_table(
        "segment_members",
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("segment_id", sa.String(length=80), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("since", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint(
            "workspace_id", "segment_id", "customer_id", name=op.f("pk_segment_members")
        ),
    )
    op.create_table(
        "segment_history",
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("segment_id", sa.String(length=80), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("change", sa.String(length=8), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint(
            "workspace_id", "run_id", "segment_id", "customer_id", name=op.f("pk_segment_history")
        ),
    )
    op.create_table(
        "segment_snapshots",
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("segment_id", sa.String(length=80), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("as_of", sa.DateTime(), nullable=False),
        sa.Column("members", sa.BigInteger(), nullable=False),
        sa.Column("entered", sa.BigInteger(), nullable=False),
        sa.Column("left", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "workspace_id", "run_id", "segment_id", name=op.f("pk_segment_snapshots")
        ),
    )


def downgrade() -> None:
    op.drop_table("segment_snapshots")
    op.drop_table("segment_history")
    op.drop_table("segment_members")
    op.drop_table("segment_definitions")
