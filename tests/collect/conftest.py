"""Fixtures of the Collect tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from siyu.cli import app, common


@pytest.fixture
def cli_db(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The CLI on a fresh, initialised database of each engine; wide console output."""
    for name in list(os.environ):
        if name.startswith("SIYU_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SIYU_DATABASE_URL", database_url)
    monkeypatch.setenv("SIYU_ENV", "test")
    monkeypatch.setenv("COLUMNS", "250")
    for console in (common.console, common.err_console):
        monkeypatch.setattr(console, "_width", 250)
    assert CliRunner().invoke(app, ["init"]).exit_code == 0
    return database_url
