"""identity: the distinct identifier tuples of resolved events, per sender

An incremental One-ID run read every event of the senders it touched, a scan of the whole events
table per batch (no index on the sender columns), so a batch of 10,000 events cost 2.3 s of CPU
at 100k customers and 9.8 s at 1M. The tuples table holds what those reads aggregated (one row
per sender and identifier tuple, first/last seen, first message) keyed by a 64-bit hash of the
sender. It is filled here from the stored events, so existing workspaces resolve incrementally
from the start; later a full run rewrites it and incremental runs append to it.

The sender hash is the engine's own (DuckDB ``hash``, PostgreSQL ``hashtextextended``): it is
only ever compared within one database. The (workspace, sender) index exists on PostgreSQL only:
DuckDB does not use an index for a join, and maintaining one would slow every append.

Revision ID: 0016
Revises: 0014
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _text(dialect: str, column: str, *path: str) -> str:
    if dialect == "duckdb":
        return f"json_extract_string({column}, '$.{'.'.join(path)}')"
    head = "".join(f"->'{p}'" for p in path[:-1])
    return f"({column}{head}->>'{path[-1]}')"


def _sender(dialect: str) -> str:
    text = (
        "CASE WHEN e.user_id IS NOT NULL AND e.user_id <> '' THEN "
        "'u|' || coalesce(e.source_id, '') || '|' || e.user_id "
        "ELSE 'a|' || coalesce(e.anonymous_id, '') END"
    )
    if dialect == "duckdb":
        return f"CAST(hash({text}) >> 1 AS BIGINT)"
    return f"hashtextextended({text}, 0)"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "identity_tuples",
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("sender", sa.BigInteger(), nullable=False),
        sa.Column("source_id", sa.String(length=40), nullable=True),
        sa.Column("user_id", sa.String(length=200), nullable=True),
        sa.Column("anonymous_id", sa.String(length=200), nullable=True),
        sa.Column("previous_id", sa.String(length=200), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("country", sa.Text(), nullable=True),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=False),
    )
    if dialect == "postgresql":
        op.create_index("ix_identity_tuples_sender", "identity_tuples", ["workspace_id", "sender"])
    country = (
        f"upper(coalesce({_text(dialect, 'e.traits', 'country')}, "
        f"{_text(dialect, 'e.traits', 'address', 'country')}, "
        f"right({_text(dialect, 'e.context', 'locale')}, 2)))"
    )
    op.execute(
        "INSERT INTO identity_tuples (workspace_id, sender, source_id, user_id, anonymous_id, "
        "previous_id, email, phone, country, first_seen, last_seen, message_id) "
        f"SELECT e.workspace_id, {_sender(dialect)}, e.source_id, e.user_id, e.anonymous_id, "
        "CASE WHEN e.type = 'alias' THEN e.previous_id END, "
        f"{_text(dialect, 'e.traits', 'email')}, {_text(dialect, 'e.traits', 'phone')}, "
        f"{country}, min(e.timestamp), max(e.timestamp), min(e.message_id) "
        "FROM events e GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_identity_tuples_sender", table_name="identity_tuples")
    op.drop_table("identity_tuples")
