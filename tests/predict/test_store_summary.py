"""The calibration summary from the order store equals the NumPy one, on both engines.

The CDNOW sample goes in through the ingestion pipeline as Order Completed events; the Ibis
summary computed by the database must equal rfm_summary on the raw file, and BG/NBD fitted on it
must give the published estimates.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from siyu.compute import tables
from siyu.errors import InvalidInput
from siyu.predict import BetaGeoFitter
from siyu.predict.store_summary import calibration_summary
from siyu.runtime import Runtime


def _messages(transactions: pd.DataFrame) -> list[dict[str, object]]:
    return [
        {
            "type": "track",
            "event": "Order Completed",
            "userId": f"cdnow-{cid}",
            "messageId": f"cdnow-{i}",
            "timestamp": f"{day:%Y-%m-%d}T12:00:00Z",
            "properties": {"order_id": f"cdnow-{i}", "total": float(amount), "currency": "USD"},
        }
        for i, (cid, day, amount) in enumerate(
            zip(
                transactions["customer_id"],
                transactions["date"],
                transactions["amount"],
                strict=True,
            )
        )
    ]


def test_store_summary_equals_numpy_and_fits_cdnow(
    rt: Runtime, cdnow_transactions: pd.DataFrame, cdnow: pd.DataFrame
) -> None:
    report = rt.pipeline().ingest(_messages(cdnow_transactions))
    assert report.stored == len(cdnow_transactions)
    t = tables(rt.db, rt.workspace().workspace_id)
    got = calibration_summary(
        t,
        calibration_end=date(1997, 9, 30),
        holdout_end=date(1998, 6, 30),
        time_unit="W",
    ).execute()
    with rt.db.engine.connect() as conn:
        ids = dict(conn.execute(sa.text("SELECT customer_id, user_id FROM customers")).all())
    got.index = [int(ids[c].removeprefix("cdnow-")) for c in got["customer_id"]]
    got = got.sort_index()
    expected = cdnow.sort_index()
    assert list(got.index) == list(expected.index)
    for column in ("frequency", "recency", "T", "frequency_holdout", "duration_holdout"):
        np.testing.assert_allclose(got[column].astype(float), expected[column], atol=1e-9)
    np.testing.assert_allclose(got["monetary_value"], expected["monetary_value"], atol=1e-6)
    model = BetaGeoFitter().fit(got["frequency"], got["recency"], got["T"])
    assert {k: round(v, 3) for k, v in model.params_.items()} == {
        "r": 0.243,
        "alpha": 4.414,
        "a": 0.793,
        "b": 2.426,
    }


def test_bad_periods_are_refused(rt: Runtime) -> None:
    t = tables(rt.db, rt.workspace().workspace_id)
    with pytest.raises(InvalidInput, match="holdout_end"):
        calibration_summary(t, calibration_end=date(2025, 1, 1), holdout_end=date(2024, 1, 1))
    with pytest.raises(InvalidInput, match="time_unit"):
        calibration_summary(t, calibration_end=date(2025, 1, 1), time_unit="M")  # type: ignore[arg-type]
