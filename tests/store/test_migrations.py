"""Migrations create exactly the schema defined in siyu.store.schema, on both engines."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from siyu.errors import ConfigError, DatabaseUnavailable
from siyu.store import Database, DatabaseURL, current_revision, head_revision, upgrade
from siyu.store.catalog import load_all_tables


def test_upgrade_creates_every_table_and_is_idempotent(database_url: str) -> None:
    with Database.open(database_url) as db:
        assert current_revision(db) is None
        assert upgrade(db) == (None, head_revision())
        assert upgrade(db) == (head_revision(), head_revision())
        names = set(sa.inspect(db.engine).get_table_names())
    assert set(load_all_tables().tables) <= names


def test_every_table_has_workspace_id() -> None:
    for table in load_all_tables().tables.values():
        assert "workspace_id" in table.c, table.name


@pytest.mark.postgres
def test_migrations_match_the_schema_definition(pg_schema_url: str) -> None:
    with Database.open(pg_schema_url) as db:
        upgrade(db)
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, load_all_tables()) == []


def test_duckdb_columns_match_the_schema_definition(tmp_path: object) -> None:
    with Database.open(f"duckdb:///{tmp_path}/m.duckdb") as db:
        upgrade(db)
        with db.engine.connect() as conn:
            found = {
                (t, c)
                for t, c in conn.execute(
                    sa.text(
                        "SELECT table_name, column_name FROM information_schema.columns "
                        "WHERE table_name <> 'alembic_version'"
                    )
                )
            }
    expected = {(t.name, c.name) for t in load_all_tables().tables.values() for c in t.columns}
    assert found == expected


def test_bad_urls_give_clear_errors() -> None:
    with pytest.raises(ConfigError, match="Unsupported database URL"):
        DatabaseURL.parse("mysql://localhost/x")
    with pytest.raises(DatabaseUnavailable, match="Cannot connect to PostgreSQL"):
        Database.open("postgresql://postgres@127.0.0.1:1/nothing")


@pytest.mark.postgres
def test_upserted_tables_leave_room_for_in_place_updates(pg_schema_url: str) -> None:
    """Migration 0015: customers and products pages keep 30% free for HOT updates."""
    with Database.open(pg_schema_url) as db:
        upgrade(db)
        with db.engine.connect() as conn:
            options = dict(
                conn.execute(
                    sa.text(
                        "SELECT c.relname, array_to_string(c.reloptions, ',') FROM pg_class c "
                        "WHERE c.relname IN ('customers', 'products', 'events') "
                        "AND c.relnamespace = to_regnamespace(current_schema())"
                    )
                ).all()
            )
    assert options == {
        "customers": "fillfactor=70",
        "products": "fillfactor=70",
        "events": None,
    }
