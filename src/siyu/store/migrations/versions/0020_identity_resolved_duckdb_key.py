"""identity: no primary key on ``identity_resolved`` on DuckDB

A full rebuild records every event of the look-back window before its watermark as resolved, so
that the next background pass skips them; after a bulk load (an import, the demo, the identity
benchmark's evidence) the window can hold every event of the workspace. Appending them went
through the table's primary key (an ART index): measured on the 1M-customer evidence, 7.16M rows
cost 7.9 s with the key and 1.0 s without. DuckDB uses an index only for a constant equality or
an ``IN`` list, never for the anti-join a pass reads the table with, so the key was only
maintained.

Uniqueness holds without it: a rebuild deletes the workspace's rows before it records, a pass
records only events the anti-join found unrecorded, and both hold the write lock. On DuckDB the
table is rebuilt without the key (DuckDB cannot drop a primary key); PostgreSQL keeps it.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "identity_resolved"
KEY = ["workspace_id", "message_id"]


def _columns() -> list[sa.Column[object]]:
    return [
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
    ]


def _rebuild(keyed: bool) -> None:
    """Re-create the table (with its primary key if ``keyed``), keeping its rows: one per key
    when the key comes back, so a duplicate written without it cannot fail the downgrade."""
    temporary = f"{TABLE}__0020"
    extra = [sa.PrimaryKeyConstraint(*KEY, name=f"pk_{TABLE}")] if keyed else []
    op.create_table(temporary, *_columns(), *extra)
    names = ", ".join(c.name for c in _columns())
    once = (
        f" QUALIFY row_number() OVER (PARTITION BY {', '.join(KEY)} ORDER BY rowid) = 1"
        if keyed
        else ""
    )
    op.execute(f"INSERT INTO {temporary} ({names}) SELECT {names} FROM {TABLE}{once}")
    op.drop_table(TABLE)
    op.rename_table(temporary, TABLE)


def upgrade() -> None:
    if op.get_bind().dialect.name == "duckdb":
        _rebuild(keyed=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "duckdb":
        _rebuild(keyed=True)
