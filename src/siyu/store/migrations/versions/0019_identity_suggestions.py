"""identity: duplicate suggestions are computed in a batch and stored (``identity_suggestions``)

Suggestions were computed on every request: blocking, comparisons and the model's fit over every
customer, 6-30 s on the 50K demo and minutes at 1M customers, for a list an operator reads page
by page. They are now computed by a refresh (``siyu identity suggest``, the demo, ``POST
/api/identity/suggestions/refresh``, or the first read) and read from this table, with the time
they were computed; pairs decided or merged since are left out when read.

Revision ID: 0019
Revises: 0017
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0019"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> Any:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "identity_suggestions",
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("customer_a", sa.String(length=40), nullable=False),
        sa.Column("customer_b", sa.String(length=40), nullable=False),
        sa.Column("probability", sa.Double(), nullable=False),
        sa.Column("weight", sa.Double(), nullable=False),
        sa.Column("agreement", _json(), nullable=False),
        sa.Column("blocks", _json(), nullable=False),
        sa.Column("computed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint(
            "workspace_id", "customer_a", "customer_b", name=op.f("pk_identity_suggestions")
        ),
    )


def downgrade() -> None:
    op.drop_table("identity_suggestions")
