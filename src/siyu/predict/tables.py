"""Tables of the predict slice: the latest scores per customer, with model version and date."""

from __future__ import annotations

import sqlalchemy as sa

from siyu.store.schema import metadata

customer_scores = sa.Table(
    "customer_scores",
    metadata,
    sa.Column("workspace_id", sa.String(40), nullable=False),
    sa.Column("customer_id", sa.String(40), nullable=False),
    sa.Column("model_version", sa.String(80), nullable=False),
    sa.Column("as_of", sa.DateTime(), nullable=False),
    sa.Column("scored_at", sa.DateTime(), nullable=False),
    sa.Column("p_alive", sa.Float(), nullable=False),
    sa.Column("expected_orders_12m", sa.Float(), nullable=False),
    sa.Column("expected_order_value", sa.Float(), nullable=False),
    sa.Column("clv_12m", sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "customer_id"),
)
