"""Fixtures for the predict tests: the CDNOW sample as a transaction log and as summaries."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from siyu.predict import rfm_summary

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
