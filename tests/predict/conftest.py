"""Fixtures for the predict tests: the CDNOW sample as a transaction log and as summaries."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from siyu.config import load_settings
from siyu.demo.load import load_demo
from siyu.identity.graph import resolve_workspace
from siyu.predict import rfm_summary
from siyu.runtime import Runtime

CDNOW = Path(__file__).resolve().parents[1] / "data" / "cdnow" / "CDNOW_sample.txt"
CALIBRATION_END = "1997-09-30"  # end of week 39
HOLDOUT_END = "1998-06-30"  # end of week 78


@pytest.fixture(scope="session")
def cdnow_transactions() -> pd.DataFrame:
    """One row per purchase: customer_id, date, cds, amount."""
    raw = pd.read_csv(
        CDNOW,
        sep=r"\s+",
        header=None,
        names=["full_id", "customer_id", "date", "cds", "amount"],
        dtype={"full_id": str, "customer_id": int, "date": str, "cds": int, "amount": float},
    )
    raw["date"] = pd.to_datetime(raw["date"], format="%Y%m%d")
    return raw


@pytest.fixture(scope="session")
def cdnow(cdnow_transactions: pd.DataFrame) -> pd.DataFrame:
    """Calibration summary (weeks 1-39, in weeks) with the 39-week holdout columns."""
    return rfm_summary(
        cdnow_transactions,
        calibration_end=CALIBRATION_END,
        holdout_end=HOLDOUT_END,
        time_unit="W",
    )


DEMO_DAY = date(2025, 6, 30)
DEMO_AS_OF = datetime(2025, 6, 30)


@pytest.fixture(
    scope="session", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def demo_rt(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Runtime]:
    """The demo brand (1,500 people, 2 years to 2025-06-30, identities resolved), once per session
    and engine: loading it costs seconds, the models' tests only read it and write scores."""
    schema = None
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path_factory.mktemp('demo')}/demo.duckdb"
    else:
        base = str(request.getfixturevalue("postgres_url"))
        schema = "t_" + secrets.token_hex(6)
        engine = sa.create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1))
        with engine.begin() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
        sep = "&" if "?" in base else "?"
        url = f"{base}{sep}options=-csearch_path%3D{schema}"
    try:
        with Runtime(load_settings(database_url=url, env="test")) as rt:
            rt.init()
            ws = rt.workspace()
            load_demo(rt, ws, customers=1500, seed=3, as_of=DEMO_DAY)
            with rt.db.engine.begin() as conn:
                resolve_workspace(conn, ws.workspace_id)
            yield rt
    finally:
        if schema is not None:
            with engine.begin() as conn:
                conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
            engine.dispose()
