"""identity: integer keys on the graph tables

An incremental One-ID run looks up the stored components its batch reaches, the anchors on
them, their links and the senders named by aliases. On DuckDB each look-up is a scan of a table
of millions of rows, and comparing (kind, value) string pairs made them the largest part of a
batch at 1M customers: 0.38 s for the components, 0.29 s for the anchors, 0.19 s for the links.
Joined on 64-bit integers the same look-ups take 0.15, 0.07 and 0.10 s.

Adds ``identities.node`` and ``component`` (keys of the node's text and of ``component_id``),
``identity_links.node_a`` and ``node_b``, ``identity_anchors.node`` and ``sender`` (the sender
hash of ``identity_tuples``), and fills them for stored rows. A key is the first 60 bits of an
MD5 (``siyu.identity.keys``), which both engines compute alike; the sender hash is the engine's
own, as migration 0016 wrote it. PostgreSQL indexes the new columns (its look-ups use indexes)
and drops the index on ``component_id``, which nothing looks up any more; DuckDB gets no index,
as migration 0017 explains.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("identities", "node"),
    ("identities", "component"),
    ("identity_links", "node_a"),
    ("identity_links", "node_b"),
    ("identity_anchors", "node"),
    ("identity_anchors", "sender"),
)

OLD_INDEX = (
    "ix_identities_workspace_id_component_id",
    "identities",
    ["workspace_id", "component_id"],
)


def _key(dialect: str, text: str) -> str:
    """The integer key of a text (``siyu.identity.keys.key_sql`` as of this revision)."""
    if dialect == "postgresql":
        return f"('x' || left(md5({text}), 15))::bit(60)::bigint"
    return f"CAST('0x' || left(md5({text}), 15) AS BIGINT)"


def _sender(dialect: str) -> str:
    """The sender hash of an anchor row (as migration 0016 hashed the events' senders)."""
    text = (
        "CASE WHEN user_id IS NOT NULL AND user_id <> '' THEN "
        "'u|' || coalesce(source_id, '') || '|' || user_id "
        "ELSE 'a|' || coalesce(anonymous_id, '') END"
    )
    if dialect == "duckdb":
        return f"CAST(hash({text}) >> 1 AS BIGINT)"
    return f"hashtextextended({text}, 0)"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table, column in COLUMNS:
        op.add_column(table, sa.Column(column, sa.BigInteger(), nullable=True))
    op.execute(
        f"UPDATE identities SET node = {_key(dialect, 'kind || chr(31) || value')}, "
        f"component = {_key(dialect, 'component_id')}"
    )
    op.execute(
        f"UPDATE identity_links SET node_a = {_key(dialect, 'kind_a || chr(31) || value_a')}, "
        f"node_b = {_key(dialect, 'kind_b || chr(31) || value_b')}"
    )
    op.execute(
        f"UPDATE identity_anchors SET node = {_key(dialect, 'kind || chr(31) || value')}, "
        f"sender = {_sender(dialect)}"
    )
    if dialect == "duckdb":
        return
    op.drop_index(OLD_INDEX[0], table_name=OLD_INDEX[1])
    for table, column in COLUMNS:
        op.create_index(f"ix_{table}_workspace_id_{column}", table, ["workspace_id", column])


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect != "duckdb":
        for table, column in COLUMNS:
            op.drop_index(f"ix_{table}_workspace_id_{column}", table_name=table)
        op.create_index(*OLD_INDEX)
    for table, column in reversed(COLUMNS):
        op.drop_column(table, column)
