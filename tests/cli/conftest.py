"""Fixtures of the CLI tests: a clean environment and the CLI pointed at each engine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from siyu.cli import common


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No SIYU_* variable or siyu.toml from the surroundings; a DuckDB file in tmp_path."""
    for name in list(os.environ):
        if name.startswith("SIYU_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SIYU_DATABASE_URL", f"duckdb:///{tmp_path}/cli.duckdb")
    monkeypatch.setenv("SIYU_ENV", "test")
    # Wide rich output, so that ids in tables are neither wrapped nor cut. rich fixes a console's
    # width when it is created if COLUMNS is set then (pytest-xdist sets COLUMNS=80), so set both.
    monkeypatch.setenv("COLUMNS", "250")
    for console in (common.console, common.err_console):
        monkeypatch.setattr(console, "_width", 250)
    return tmp_path


@pytest.fixture
def cli_env(database_url: str, clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The CLI pointed at a fresh database on each engine (DuckDB file, PostgreSQL schema)."""
    monkeypatch.setenv("SIYU_DATABASE_URL", database_url)
    return database_url
