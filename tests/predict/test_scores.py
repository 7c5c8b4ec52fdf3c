"""CLV scores from the store, and the refusal below the minimums (both engines)."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest
import sqlalchemy as sa

from siyu.predict.scores import Minimums, NotEnoughData, score_customers
from siyu.runtime import Runtime
from tests.predict.test_store_summary import _messages


def test_scores_are_stored_for_every_buyer(rt: Runtime, cdnow_transactions: pd.DataFrame) -> None:
    calibration = cdnow_transactions[cdnow_transactions["date"] <= "1997-09-30"]
    rt.pipeline().ingest(_messages(calibration))
    ws = rt.workspace()
    report = score_customers(rt.db, ws, as_of=datetime(1997, 9, 30, 23, 59))
    assert report.customers == 2357
    # The published fit, in days instead of weeks: alpha is 7 times larger.
    assert round(report.purchase_params["r"], 3) == 0.243
    assert round(report.purchase_params["alpha"] / 7, 3) == 4.414
    with rt.db.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT min(p_alive), max(p_alive), sum(clv_12m), count(*) FROM customer_scores"
            )
        ).one()
    low, high, total, n = rows
    assert 0.0 <= low <= high <= 1.0
    assert n == 2357
    assert total == pytest.approx(report.total_clv_12m)


def test_below_minimums_says_which(rt: Runtime, cdnow_transactions: pd.DataFrame) -> None:
    few = cdnow_transactions[cdnow_transactions["customer_id"] <= 100]
    rt.pipeline().ingest(_messages(few))
    with pytest.raises(NotEnoughData, match="buyers, the model needs at least 500"):
        score_customers(rt.db, rt.workspace(), as_of=datetime(1998, 7, 1))
    report = score_customers(
        rt.db,
        rt.workspace(),
        as_of=datetime(1998, 7, 1),
        minimums=Minimums(buyers=50, repeat_buyers=10),
    )
    assert report.customers == 100
