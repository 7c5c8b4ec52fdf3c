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

segment_definitions = sa.Table(
    "segment_definitions",
    metadata,
    sa.Column("workspace_id", sa.String(40), nullable=False),
    sa.Column("segment_id", sa.String(80), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("description", sa.Text(), nullable=False),
    sa.Column("expression", sa.Text(), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "segment_id"),
)
"""Saved segments: an expression over tags, tiers, reachability and attributes (versioned)."""

segment_members = sa.Table(
    "segment_members",
    metadata,
    sa.Column("workspace_id", sa.String(40), nullable=False),
    sa.Column("segment_id", sa.String(80), nullable=False),
    sa.Column("customer_id", sa.String(40), nullable=False),
    sa.Column("since", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "segment_id", "customer_id"),
)
"""Who is in each saved segment as of its last refresh, and since when."""

segment_history = sa.Table(
    "segment_history",
    metadata,
    sa.Column("workspace_id", sa.String(40), nullable=False),
    sa.Column("run_id", sa.String(40), nullable=False),
    sa.Column("segment_id", sa.String(80), nullable=False),
    sa.Column("customer_id", sa.String(40), nullable=False),
    sa.Column("change", sa.String(8), nullable=False),  # entered | left
    sa.Column("changed_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "run_id", "segment_id", "customer_id"),
)
"""Every entry into and exit from a saved segment: journeys trigger on these rows."""

segment_snapshots = sa.Table(
    "segment_snapshots",
    metadata,
    sa.Column("workspace_id", sa.String(40), nullable=False),
    sa.Column("run_id", sa.String(40), nullable=False),
    sa.Column("segment_id", sa.String(80), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("as_of", sa.DateTime(), nullable=False),
    sa.Column("members", sa.BigInteger(), nullable=False),
    sa.Column("entered", sa.BigInteger(), nullable=False),
    sa.Column("left", sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "run_id", "segment_id"),
)
"""One row per segment per refresh: its size and how many entered and left."""
