"""Test fixtures: every test gets its own database (a DuckDB file, or a PostgreSQL schema).

PostgreSQL is the server at 127.0.0.1:5432 (database ``test``, trust auth), or
SIYU_TEST_POSTGRES_URL. Without it, PostgreSQL tests skip; with CI=true they fail instead.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from siyu.config import Settings, load_settings
from siyu.runtime import Runtime

PG_URL = os.environ.get("SIYU_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _postgres_available() -> str | None:
    try:
        engine = sa.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any failure means: no server to test against
        return str(exc).splitlines()[0]


@pytest.fixture(scope="session")
def postgres_url() -> str:
    problem = _postgres_available()
    if problem is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL is required on CI but unavailable at {PG_URL}: {problem}")
        pytest.skip(f"PostgreSQL not available at {PG_URL}: {problem}")
    return PG_URL


@pytest.fixture
def pg_schema_url(postgres_url: str) -> Iterator[str]:
    """A fresh PostgreSQL schema for one test, dropped afterwards."""
    name = "t_" + secrets.token_hex(6)
    engine = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {name}"))
    sep = "&" if "?" in postgres_url else "?"
    try:
        yield f"{postgres_url}{sep}options=-csearch_path%3D{name}"
    finally:
        try:
            with engine.begin() as conn:
                # A connection the test leaked inside a transaction would make DROP wait
                # forever; fail loudly instead.
                conn.execute(sa.text("SET LOCAL lock_timeout = '20s'"))
                conn.execute(sa.text(f"DROP SCHEMA {name} CASCADE"))
        except sa.exc.OperationalError as exc:
            pytest.fail(
                f"could not drop test schema {name}: a connection was left inside a "
                f"transaction (leaked by the test or the code under test): {exc.orig}"
            )
        finally:
            engine.dispose()


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database URL on each engine."""
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path}/siyu.duckdb"
    return str(request.getfixturevalue("pg_schema_url"))


@pytest.fixture
def settings(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SIYU_DATABASE_URL", database_url)
    monkeypatch.setenv("SIYU_ENV", "test")
    return load_settings(ingest_chunk_size=500)


@pytest.fixture
def rt(settings: Settings) -> Iterator[Runtime]:
    """An initialised runtime: schema migrated, default workspace created."""
    with Runtime(settings) as runtime:
        runtime.init()
        yield runtime
