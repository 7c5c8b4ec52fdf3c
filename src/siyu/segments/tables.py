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

customer_tags = sa.Table(
    "customer_tags",
    metadata,
    sa.Column("workspace_id", sa.String(40), nullable=False),
    sa.Column("tag_id", sa.String(80), nullable=False),
    sa.Column("customer_id", sa.String(40), nullable=False),
    sa.Column("since", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "tag_id", "customer_id"),
)
"""Which customers hold which tag now, and since when."""

tag_history = sa.Table(
    "tag_history",
    metadata,
    sa.Column("workspace_id", sa.String(40), nullable=False),
    sa.Column("run_id", sa.String(40), nullable=False),
    sa.Column("tag_id", sa.String(80), nullable=False),
    sa.Column("customer_id", sa.String(40), nullable=False),
    sa.Column("change", sa.String(8), nullable=False),  # added | removed
    sa.Column("changed_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "run_id", "tag_id", "customer_id"),
)

tag_definitions = sa.Table(
    "tag_definitions",
    metadata,
    sa.Column("workspace_id", sa.String(40), nullable=False),
    sa.Column("tag_id", sa.String(80), nullable=False),
    sa.Column("name_en", sa.String(200), nullable=False),
    sa.Column("name_zh", sa.String(200), nullable=False),
    sa.Column("description", sa.Text(), nullable=False),
    sa.Column("rule", sa.Text(), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "tag_id"),
)
"""Tags a workspace added itself (built-in tags live in code: siyu.segments.catalogue)."""
