"""journeys

Revision ID: 0008
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = ("journeys",)
depends_on: str | Sequence[str] | None = None

JSONDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "journeys",
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("journey_id", sa.String(length=80), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("trigger_cursor", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "journey_id", name=op.f("pk_journeys")),
    )
    op.create_table(
        "journey_versions",
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("journey_id", sa.String(length=80), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", JSONDoc, nullable=False),
        sa.Column("checksum", sa.String(length=64), nullable=False),
        sa.Column("published_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint(
            "workspace_id", "journey_id", "version", name=op.f("pk_journey_versions")
        ),
    )
    op.create_table(
        "journey_enrollments",
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("enrollment_id", sa.String(length=64), nullable=False),
        sa.Column("journey_id", sa.String(length=80), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("entry_key", sa.String(length=240), nullable=False),
        sa.Column("active_key", sa.String(length=40), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("variant", sa.String(length=40), nullable=True),
        sa.Column("triggered_at", sa.DateTime(), nullable=False),
        sa.Column("entered_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("goal_at", sa.DateTime(), nullable=True),
        sa.Column("exit_reason", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint(
            "workspace_id", "enrollment_id", name=op.f("pk_journey_enrollments")
        ),
        sa.UniqueConstraint(
            "workspace_id",
            "journey_id",
            "active_key",
            name=op.f("uq_journey_enrollments_workspace_id_journey_id_active_key"),
        ),
        sa.UniqueConstraint(
            "workspace_id",
            "journey_id",
            "customer_id",
            "entry_key",
            name=op.f("uq_journey_enrollments_workspace_id_journey_id_customer_id_entry_key"),
        ),
    )
    op.create_table(
        "journey_step_runs",
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("enrollment_id", sa.String(length=64), nullable=False),
        sa.Column("step_id", sa.String(length=80), nullable=False),
        sa.Column("journey_id", sa.String(length=80), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("worker", sa.String(length=80), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("reason_code", sa.String(length=80), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("message_id", sa.String(length=200), nullable=True),
        sa.Column("branch", sa.String(length=80), nullable=True),
        sa.Column("result", JSONDoc, nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint(
            "workspace_id", "enrollment_id", "step_id", name=op.f("pk_journey_step_runs")
        ),
    )
    op.create_index(
        "ix_journey_step_runs_due", "journey_step_runs", ["state", "due_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_journey_step_runs_due", table_name="journey_step_runs")
    op.drop_table("journey_step_runs")
    op.drop_table("journey_enrollments")
    op.drop_table("journey_versions")
    op.drop_table("journeys")
