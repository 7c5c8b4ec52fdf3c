"""predict: churn and next-order columns on customer_scores; recommendations and rules

Revision ID: 0011
Revises: 0006
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0011"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = ("predict_churn",)
depends_on: str | Sequence[str] | None = None

JSONDoc = sa.JSON().with_variant(JSONB(), "postgresql")
CLV_COLUMNS: tuple[tuple[str, sa.types.TypeEngine[Any]], ...] = (
    ("model_version", sa.String(length=80)),
    ("as_of", sa.DateTime()),
    ("scored_at", sa.DateTime()),
    ("p_alive", sa.Float()),
    ("expected_orders_12m", sa.Float()),
    ("expected_order_value", sa.Float()),
    ("clv_12m", sa.Float()),
)
NEW_COLUMNS: tuple[tuple[str, sa.types.TypeEngine[Any]], ...] = (
    ("expected_next_order_at", sa.DateTime()),
    ("churn_risk", sa.Integer()),
    ("churn_reasons", JSONDoc),
    ("churn_method", sa.String(length=16)),
    ("churn_model_version", sa.String(length=80)),
    ("churn_as_of", sa.DateTime()),
    ("churn_scored_at", sa.DateTime()),
)


def upgrade() -> None:
    # A churn score can exist without CLV (small shops): the CLV columns become optional.
    for name, type_ in CLV_COLUMNS:
        op.alter_column("customer_scores", name, existing_type=type_, nullable=True)
    for name, type_ in NEW_COLUMNS:
        op.add_column("customer_scores", sa.Column(name, type_, nullable=True))
    op.create_table(
        "customer_recommendations",
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.String(length=200), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("reason", sa.String(length=24), nullable=False),
        sa.Column("because_of", sa.String(length=200), nullable=True),
        sa.Column("model_version", sa.String(length=80), nullable=False),
        sa.Column("as_of", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint(
            "workspace_id", "customer_id", "rank", name=op.f("pk_customer_recommendations")
        ),
    )
    op.create_table(
        "reco_rules",
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("rule_id", sa.String(length=40), nullable=False),
        sa.Column("when_bought", sa.String(length=200), nullable=False),
        sa.Column("recommend", sa.String(length=200), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "rule_id", name=op.f("pk_reco_rules")),
    )


def downgrade() -> None:
    op.drop_table("reco_rules")
    op.drop_table("customer_recommendations")
    for name, _ in reversed(NEW_COLUMNS):
        op.drop_column("customer_scores", name)
    for name, type_ in CLV_COLUMNS:
        op.alter_column("customer_scores", name, existing_type=type_, nullable=False)
