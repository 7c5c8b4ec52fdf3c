"""Schema migrations (Alembic), run on DuckDB and PostgreSQL alike."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.ddl.impl import DefaultImpl
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from siyu.store.database import Database

MIGRATIONS = Path(__file__).parent / "migrations"


class DuckDBImpl(DefaultImpl):
    """Alembic's DDL implementation for DuckDB (PostgreSQL-like DDL, transactional)."""

    __dialect__ = "duckdb"
    transactional_ddl = True


def alembic_config(conn: sa.Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if conn is not None:
        cfg.attributes["connection"] = conn
    return cfg


def _label(heads: tuple[str, ...] | list[str]) -> str | None:
    """Revisions as one label: slices may add migration branches, so there may be several heads."""
    return "+".join(sorted(heads)) or None


def head_revision() -> str:
    """The newest revision(s) the code knows ('a+b' when slices have parallel branches)."""
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    label = _label(heads)
    assert label is not None
    return label


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return _label(MigrationContext.configure(conn).get_current_heads())


def upgrade(db: Database) -> tuple[str | None, str]:
    """Bring the schema to the newest revisions; return (revision before, revision after).

    Upgrades to "heads", so migration branches added by different slices (each revising the
    same parent) all apply; a later merge revision can join them.
    """
    before = current_revision(db)
    with db.engine.begin() as conn:
        command.upgrade(alembic_config(conn), "heads")
    return before, head_revision()
