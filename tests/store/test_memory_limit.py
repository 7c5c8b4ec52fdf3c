"""The DuckDB size settings reach DuckDB; a bad value is a configuration error naming it."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from siyu.config import load_settings
from siyu.errors import ConfigError
from siyu.runtime import Runtime
from siyu.store.database import Database


def test_memory_limit_setting_caps_duckdb(tmp_path: Path) -> None:
    settings = load_settings(
        database_url=f"duckdb:///{tmp_path}/m.duckdb", env="test", duckdb_memory_limit="512MB"
    )
    with Runtime(settings) as rt, rt.db.engine.connect() as conn:
        limit = conn.execute(sa.text("SELECT current_setting('memory_limit')")).scalar_one()
    assert limit == "488.2 MiB"  # DuckDB reports 512 MB in MiB


def test_bad_memory_limit_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        Database.open(f"duckdb:///{tmp_path}/m.duckdb", duckdb_memory_limit="lots")
    assert err.value.field == "duckdb_memory_limit"
    assert "'4GB'" in (err.value.hint or "")


def test_checkpoint_threshold_reaches_duckdb_and_bad_value_is_named(tmp_path: Path) -> None:
    settings = load_settings(database_url=f"duckdb:///{tmp_path}/c.duckdb", env="test")
    with Runtime(settings) as rt, rt.db.engine.connect() as conn:
        threshold = conn.execute(sa.text("SELECT current_setting('checkpoint_threshold')"))
        assert threshold.scalar_one() == "244.1 MiB"  # the 256MB default, as DuckDB reports it
    with pytest.raises(ConfigError) as err:
        Database.open(f"duckdb:///{tmp_path}/c2.duckdb", duckdb_checkpoint_threshold="often")
    assert err.value.field == "duckdb_checkpoint_threshold"
