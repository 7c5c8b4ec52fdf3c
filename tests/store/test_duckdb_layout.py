"""What the DuckDB schema must keep that the name-only schema comparison cannot see: column order
(bulk inserts from Arrow match columns by position), migration 0017's key-less graph tables and
0020's key-less ``identity_resolved``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import command

from siyu.store import Database, upgrade
from siyu.store.catalog import load_all_tables
from siyu.store.migrate import alembic_config

GRAPH_TABLES = ("identities", "identity_links", "identity_anchors")


def _keyed(conn: sa.Connection, tables: tuple[str, ...]) -> set[str]:
    """Those of ``tables`` that have a primary key."""
    names = ", ".join(f"'{t}'" for t in tables)
    found = conn.execute(
        sa.text(
            "SELECT table_name FROM duckdb_constraints() "
            f"WHERE constraint_type = 'PRIMARY KEY' AND table_name IN ({names})"
        )
    )
    return set(found.scalars().all())


def _keys_and_indexes(conn: sa.Connection) -> tuple[set[str], set[str]]:
    names = ", ".join(f"'{t}'" for t in GRAPH_TABLES)
    indexes = (
        conn.execute(
            sa.text(f"SELECT index_name FROM duckdb_indexes() WHERE table_name IN ({names})")
        )
        .scalars()
        .all()
    )
    return _keyed(conn, GRAPH_TABLES), set(indexes)


def test_duckdb_columns_are_in_the_schema_definitions_order(tmp_path: Path) -> None:
    with Database.open(f"duckdb:///{tmp_path}/o.duckdb") as db:
        upgrade(db)
        with db.engine.connect() as conn:
            found: dict[str, list[str]] = {}
            for table, column in conn.execute(
                sa.text(
                    "SELECT table_name, column_name FROM information_schema.columns "
                    "WHERE table_name <> 'alembic_version' "
                    "ORDER BY table_name, ordinal_position"
                )
            ):
                found.setdefault(table, []).append(column)
    for table in load_all_tables().tables.values():
        assert found[table.name] == [c.name for c in table.columns], table.name


def test_0017_drops_the_graph_keys_and_its_downgrade_survives_a_duplicate(
    tmp_path: Path,
) -> None:
    with Database.open(f"duckdb:///{tmp_path}/k.duckdb") as db:
        upgrade(db)
        with db.engine.begin() as conn:
            assert _keys_and_indexes(conn) == (set(), set())
            now = datetime(2026, 1, 1)
            for seen in (now, now.replace(day=2)):  # the same key twice: no key refuses it
                conn.execute(
                    sa.text(
                        "INSERT INTO identities (workspace_id, kind, value, first_seen_at, "
                        "last_seen_at) VALUES ('w', 'email', 'a@b.co', :t, :t)"
                    ),
                    {"t": seen},
                )
        with db.engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0016")
        with db.engine.connect() as conn:
            keys, indexes = _keys_and_indexes(conn)
            rows = conn.execute(sa.text("SELECT last_seen_at FROM identities")).scalars().all()
        assert keys == set(GRAPH_TABLES)
        assert len(indexes) == 3
        assert rows == [now]  # one row per key: the first stored


def test_0020_drops_the_resolved_key_and_its_downgrade_survives_a_duplicate(
    tmp_path: Path,
) -> None:
    with Database.open(f"duckdb:///{tmp_path}/r.duckdb") as db:
        upgrade(db)
        with db.engine.begin() as conn:
            assert _keyed(conn, ("identity_resolved",)) == set()
            for seen in (datetime(2026, 1, 1), datetime(2026, 1, 2)):  # no key refuses it
                conn.execute(
                    sa.text(
                        "INSERT INTO identity_resolved (workspace_id, message_id, received_at) "
                        "VALUES ('w', 'm-1', :t)"
                    ),
                    {"t": seen},
                )
        with db.engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0019")
        with db.engine.connect() as conn:
            keyed = _keyed(conn, ("identity_resolved",))
            rows = conn.execute(sa.text("SELECT received_at FROM identity_resolved")).all()
        assert keyed == {"identity_resolved"}
        assert [r[0] for r in rows] == [datetime(2026, 1, 1)]  # one row per key: the first
