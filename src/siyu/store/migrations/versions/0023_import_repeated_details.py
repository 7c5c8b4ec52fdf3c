"""collect: an import counts a repeat customer's known details apart from its duplicates

A store export repeats a customer's details on each of their orders, and siyu keys a customer's
identify message by the customer and the details, so the second order's details were counted
as a "duplicate": a first import of a Shopify export reported about one message in six as a
duplicate, which reads as if rows had been imported before. The import summary now reports
those identify messages as ``repeated_details``; the checkpoint keeps the count so a resumed
import's totals stay whole. Rows written before this revision count them among duplicates.

Revision ID: 0023
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "import_checkpoints",
        sa.Column("repeated_details", sa.BigInteger(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_column("import_checkpoints", "repeated_details")
