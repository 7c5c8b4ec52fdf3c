"""collect: webhook secrets and import checkpoints

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = ("collect",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "source_secrets",
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("source_id", sa.String(length=40), nullable=False),
        sa.Column("webhook_secret", sa.String(length=200), nullable=True),
        sa.Column("verify_token", sa.String(length=200), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("source_id", name=op.f("pk_source_secrets")),
    )
    op.create_table(
        "import_checkpoints",
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("importer", sa.String(length=60), nullable=False),
        sa.Column("file_hash", sa.String(length=64), nullable=False),
        sa.Column("file_name", sa.String(length=500), nullable=False),
        sa.Column("rows_done", sa.BigInteger(), nullable=False),
        sa.Column("finished", sa.Boolean(), nullable=False),
        sa.Column("stored", sa.BigInteger(), nullable=False),
        sa.Column("duplicates", sa.BigInteger(), nullable=False),
        sa.Column("quarantined", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint(
            "workspace_id", "importer", "file_hash", name=op.f("pk_import_checkpoints")
        ),
    )


def downgrade() -> None:
    op.drop_table("import_checkpoints")
    op.drop_table("source_secrets")
