"""Alembic environment: siyu always passes its own open connection (see siyu.store.migrate)."""

from __future__ import annotations

from alembic import context

from siyu.store.catalog import load_all_tables

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=load_all_tables(),
    compare_type=True,
    render_as_batch=False,
)
with context.begin_transaction():
    context.run_migrations()
