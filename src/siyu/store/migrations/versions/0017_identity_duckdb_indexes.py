"""identity: no indexes on the identity graph's large tables on DuckDB

DuckDB uses an index only for a constant equality or an ``IN`` list of constants, never for a
join, and One-ID reads ``identities``, ``identity_links`` and ``identity_anchors`` by joins (a
batch's components, the anchors and links on them) or by a whole-workspace scan; it deletes by
``rowid``. Their primary keys and the three secondary indexes (``identities`` by customer and by
component, ``identity_anchors`` by customer) were only maintained: every append of a full run and
of an incremental batch went through them, and their ART nodes had to fit DuckDB's memory when
the full run committed (at 1M customers it no longer committed within a 2 GB ``memory_limit``).
Measured on the 300k demo (shared machine, load 3-7): appending its 843,433 links cost 2.4-2.5 s
of CPU with the primary key and 1.0-1.1 s without; re-appending its 980,306 identities within
one transaction 55-58 s with the secondary indexes and 24 s without.

On DuckDB the three tables are rebuilt without them (DuckDB cannot drop a primary key): a copy
of their rows, once. Uniqueness is the graph build's (one row per node, per node pair, per
sender); nothing upserts into these tables. The look-ups by one key left (``explain``, a split,
a profile by identifier) scan the table's columns instead. PostgreSQL keeps every index: it
uses them for those look-ups and the incremental path's deletes by key.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _identities() -> list[sa.Column[object]]:
    return [
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("value", sa.String(length=320), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=True),
        sa.Column("component_id", sa.String(length=40), nullable=True),
        sa.Column("source_id", sa.String(length=40), nullable=True),
        sa.Column("account_source_id", sa.String(length=40), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
    ]


def _links() -> list[sa.Column[object]]:
    return [
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("kind_a", sa.String(length=40), nullable=False),
        sa.Column("value_a", sa.String(length=320), nullable=False),
        sa.Column("kind_b", sa.String(length=40), nullable=False),
        sa.Column("value_b", sa.String(length=320), nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("rule", sa.String(length=40), nullable=False),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    ]


def _anchors() -> list[sa.Column[object]]:
    return [
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("anchor_id", sa.String(length=500), nullable=False),
        sa.Column("source_id", sa.String(length=40), nullable=True),
        sa.Column("user_id", sa.String(length=200), nullable=True),
        sa.Column("anonymous_id", sa.String(length=200), nullable=True),
        sa.Column("kind", sa.String(length=40), nullable=True),
        sa.Column("value", sa.String(length=320), nullable=True),
        sa.Column("provisional_id", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
    ]


TABLES: tuple[tuple[str, Callable[[], list[sa.Column[object]]], list[str]], ...] = (
    ("identities", _identities, ["workspace_id", "kind", "value"]),
    ("identity_links", _links, ["workspace_id", "kind_a", "value_a", "kind_b", "value_b"]),
    ("identity_anchors", _anchors, ["workspace_id", "anchor_id"]),
)

SECONDARY = (
    ("ix_identities_workspace_id_customer_id", "identities", ["workspace_id", "customer_id"]),
    ("ix_identities_workspace_id_component_id", "identities", ["workspace_id", "component_id"]),
    (
        "ix_identity_anchors_workspace_id_customer_id",
        "identity_anchors",
        ["workspace_id", "customer_id"],
    ),
)


def _rebuild(name: str, columns: list[sa.Column[object]], key: list[str] | None) -> None:
    """Re-create a table with the same columns (and ``key`` as its primary key, if given),
    keeping its rows."""
    temporary = f"{name}__0017"
    extra: list[sa.PrimaryKeyConstraint] = (
        [sa.PrimaryKeyConstraint(*key, name=f"pk_{name}")] if key else []
    )
    op.create_table(temporary, *columns, *extra)
    names = ", ".join(c.name for c in columns)
    # Back to a primary key (downgrade): one row per key, the first stored, so a duplicate
    # written while the table had no key cannot fail the downgrade.
    once = (
        f" QUALIFY row_number() OVER (PARTITION BY {', '.join(key)} ORDER BY rowid) = 1"
        if key
        else ""
    )
    op.execute(f"INSERT INTO {temporary} ({names}) SELECT {names} FROM {name}{once}")
    for index, table, _ in SECONDARY:
        if table == name and key is None:
            op.drop_index(index, table_name=table)
    op.drop_table(name)
    op.rename_table(temporary, name)


def upgrade() -> None:
    if op.get_bind().dialect.name != "duckdb":
        return
    for name, columns, _ in TABLES:
        _rebuild(name, columns(), None)


def downgrade() -> None:
    if op.get_bind().dialect.name != "duckdb":
        return
    for name, columns, key in TABLES:
        _rebuild(name, columns(), key)
    for index, table, columns_of in SECONDARY:
        op.create_index(index, table, columns_of)
