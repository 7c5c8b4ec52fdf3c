"""Tables of the segments slice: current RFM and tier per customer, and tier history."""

from __future__ import annotations

import sqlalchemy as sa

from siyu.store.schema import metadata

customer_segments = sa.Table(
    "customer_segments",
    metadata,
    sa.Column("workspace_id", sa.String(40), nullable=False),
    sa.Column("model", sa.String(40), nullable=False),
    sa.Column("customer_id", sa.String(40), nullable=False),
    sa.Column("tier", sa.String(40), nullable=False),
    sa.Column("high_value", sa.Boolean(), nullable=False),
    sa.Column("recency", sa.Integer()),
    sa.Column("frequency", sa.Integer()),
    sa.Column("monetary", sa.Float()),
    sa.Column("r_score", sa.SmallInteger()),
    sa.Column("f_score", sa.SmallInteger()),
    sa.Column("m_score", sa.SmallInteger()),
    sa.Column("rfm_segment", sa.String(40)),
    sa.Column("as_of", sa.DateTime(), nullable=False),
    sa.Column("run_id", sa.String(40), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "model", "customer_id"),
)

tier_history = sa.Table(
    "tier_history",
    metadata,
    sa.Column("workspace_id", sa.String(40), nullable=False),
    sa.Column("run_id", sa.String(40), nullable=False),
    sa.Column("model", sa.String(40), nullable=False),
    sa.Column("customer_id", sa.String(40), nullable=False),
    sa.Column("from_tier", sa.String(40)),
    sa.Column("to_tier", sa.String(40), nullable=False),
    sa.Column("changed_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "run_id", "model", "customer_id"),
)
"""Every tier transition (customer, from, to, when): the stream journeys react to."""

segment_runs = sa.Table(
    "segment_runs",
    metadata,
    sa.Column("workspace_id", sa.String(40), nullable=False),
    sa.Column("run_id", sa.String(40), nullable=False),
    sa.Column("model", sa.String(40), nullable=False),
    sa.Column("as_of", sa.DateTime(), nullable=False),
    sa.Column("started_at", sa.DateTime(), nullable=False),
    sa.Column("finished_at", sa.DateTime(), nullable=False),
    sa.Column("customers", sa.BigInteger(), nullable=False),
    sa.Column("transitions", sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "run_id"),
)
