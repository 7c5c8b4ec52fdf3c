"""Holdout validation: expected vs actual repeat purchases on CDNOW, from the file and the store.

The actual means per calibration frequency are the ones printed in the BTYD literature for the
CDNOW 1/10 sample (weeks 1-39 calibration, 40-78 holdout); the expected ones come from the
published BG/NBD fit and must track them.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from siyu.errors import InvalidInput
from siyu.predict.evaluate import HoldoutEvaluation, evaluate_store, evaluate_transactions
from siyu.predict.scores import Minimums, NotEnoughData
from siyu.runtime import Runtime
from tests.predict.test_store_summary import _messages

CAL, HOLD = date(1997, 9, 30), date(1998, 6, 30)
PUBLISHED_ACTUAL_MEANS = [0.2367, 0.6970, 1.3925, 1.5600, 2.5323, 2.9474, 3.8621, 6.3594]


def _check_cdnow(result: HoldoutEvaluation, unit_scale: float) -> None:
    assert result.customers == 2357
    assert round(result.params["r"], 3) == 0.243
    assert round(result.params["alpha"] / unit_scale, 3) == 4.414
    table = result.by_frequency
    assert table["customers"].sum() == 2357
    np.testing.assert_allclose(table["actual_mean"], PUBLISHED_ACTUAL_MEANS, atol=5e-5)
    expected = table["expected_mean"].to_numpy()
    assert np.all(np.diff(expected) > 0)  # more past purchases, more expected
    assert expected[0] == pytest.approx(0.225, abs=0.005)
    assert expected[-1] == pytest.approx(6.16, abs=0.05)
    assert result.actual_total == 1882
    # BG/NBD under-forecasts this holdout by about 12% in aggregate (as in the literature).
    assert -0.15 < result.aggregate_error < -0.08
    track = result.tracking
    assert len(track) == 39  # weekly periods
    assert track["actual_cumulative"].iloc[-1] == result.actual_total
    assert track["expected_cumulative"].iloc[-1] == pytest.approx(result.expected_total)
    assert np.all(np.diff(track["expected_cumulative"]) > 0)
    assert 0.55 < result.correlation < 0.7


def test_cdnow_holdout_from_the_transaction_log(cdnow_transactions: pd.DataFrame) -> None:
    result = evaluate_transactions(cdnow_transactions, calibration_end=CAL, holdout_end=HOLD)
    _check_cdnow(result, 1.0)
    as_json = result.to_dict()
    assert as_json["tracking"][0]["period"] == 1
    assert len(as_json["by_frequency"]) == 8


def test_cdnow_holdout_from_the_store(rt: Runtime, cdnow_transactions: pd.DataFrame) -> None:
    rt.pipeline().ingest(_messages(cdnow_transactions))
    result = evaluate_store(rt.db, rt.workspace(), calibration_end=CAL, holdout_end=HOLD)
    _check_cdnow(result, 7.0)  # fitted in days: alpha is 7 times the weekly one
    direct = evaluate_transactions(
        cdnow_transactions, calibration_end=CAL, holdout_end=HOLD, time_unit="D"
    )
    np.testing.assert_allclose(result.tracking["actual"], direct.tracking["actual"])
    assert result.expected_total == pytest.approx(direct.expected_total, rel=1e-6)


def test_store_evaluation_refuses_too_little_data(
    rt: Runtime, cdnow_transactions: pd.DataFrame
) -> None:
    few = cdnow_transactions[cdnow_transactions["customer_id"] <= 100]
    rt.pipeline().ingest(_messages(few))
    with pytest.raises(NotEnoughData, match="holdout evaluation: 100 buyers"):
        evaluate_store(rt.db, rt.workspace(), calibration_end=CAL, holdout_end=HOLD)
    with pytest.raises(InvalidInput, match="must come after"):
        evaluate_store(
            rt.db, rt.workspace(), calibration_end=HOLD, holdout_end=CAL, minimums=Minimums(1, 1, 1)
        )


def test_holdout_on_the_demo_brand(demo_rt: Runtime) -> None:
    """The demo brand (what `siyu predict evaluate` prints after `siyu demo`): the default split
    keeps the last 180 days as holdout; the model tracks the holdout purchases."""
    result = evaluate_store(demo_rt.db, demo_rt.workspace())
    assert result.holdout_end == date(2025, 6, 29)  # the latest order
    assert (result.holdout_end - result.calibration_end).days == 180
    assert result.customers > 500
    assert len(result.tracking) == 26  # weekly periods, the last one partial
    assert result.tracking["actual_cumulative"].iloc[-1] == result.actual_total
    table = result.by_frequency
    assert table["customers"].sum() == result.customers
    # More past purchases, more expected and more actual holdout purchases.
    assert np.all(np.diff(table["expected_mean"].to_numpy()[:6]) > 0)
    assert table["actual_mean"].iloc[-1] > 3 * table["actual_mean"].iloc[0]
    assert result.correlation > 0.4
    # The demo brand is not drawn from BG/NBD (seasonal peaks, campaigns): the model
    # over-forecasts its quiet first half of the year, which the evaluation shows.
    assert 0 < result.aggregate_error < 0.6
