"""ingest: customers remember when their traits were said (``traits_at``)

The customers table's trait columns (email, phone, names, country, the ``traits`` document) were
kept from the last *stored* identify call. Data does not arrive in time order: an import of last
year's Shopify export after a month of live tracking overwrote the newer traits with the old
ones. ``traits_at`` is the time of the newest identify whose traits a row holds; the ingest
upserts compare it, so an older identify only fills values the row does not have yet and a newer
one wins (ties: the later arrival, as before). Existing rows start with no time, so the next
identify with traits is taken as newer, which is what they did before.

Revision ID: 0018
Revises: 0015
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("customers", sa.Column("traits_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    op.drop_column("customers", "traits_at")
