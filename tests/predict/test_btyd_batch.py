"""predict_customers: all predictions in one pass equal the estimators' own methods."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from siyu.errors import InvalidInput
from siyu.predict import rfm_summary
from siyu.predict.btyd import BetaGeoFitter, GammaGammaFitter, customer_lifetime_value
from siyu.predict.btyd.batch import predict_customers
from tests.predict.conftest import CALIBRATION_END


@pytest.fixture(scope="module")
def days(cdnow_transactions: pd.DataFrame) -> pd.DataFrame:
    return rfm_summary(cdnow_transactions, calibration_end=CALIBRATION_END, time_unit="D")


@pytest.mark.parametrize("a_is_one", [False, True], ids=["fitted", "a=1"])
def test_batch_equals_the_methods(days: pd.DataFrame, a_is_one: bool) -> None:
    x, t_x, big_t = (days[c].to_numpy() for c in ("frequency", "recency", "T"))
    m = days["monetary_value"].to_numpy()
    purchases = BetaGeoFitter().fit(x, t_x, big_t)
    if a_is_one:  # the closed form's removable singularity
        purchases = BetaGeoFitter.from_params({**purchases.params_, "a": 1.0})
    spend = GammaGammaFitter().fit(x[x > 0], m[x > 0])
    got = predict_customers(
        purchases,
        spend,
        x,
        t_x,
        big_t,
        m,
        horizon=365.25,
        months=12,
        discount_rate=0.01,
        time_unit="D",
        next_purchase_within=1096.0,
    )
    np.testing.assert_allclose(
        got.p_alive, purchases.conditional_probability_alive(x, t_x, big_t), rtol=1e-13
    )
    np.testing.assert_allclose(
        got.expected_purchases,
        purchases.conditional_expected_purchases(365.25, x, t_x, big_t),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        got.expected_spend, spend.conditional_expected_average_profit(x, m), rtol=1e-13
    )
    np.testing.assert_allclose(
        got.clv,
        customer_lifetime_value(
            purchases, spend, x, t_x, big_t, m, months=12, discount_rate=0.01, time_unit="D"
        ),
        rtol=1e-11,
    )
    expected_time = purchases.time_to_expected_purchases(1.0, x, t_x, big_t, max_t=1096.0)
    np.testing.assert_array_equal(got.time_to_next_purchase, expected_time)
    # Some customers reach one more purchase within 3 years and some (likely lapsed) do not.
    assert 0 < np.isnan(expected_time).sum() < len(x)
    reached = ~np.isnan(expected_time)
    at = purchases.conditional_expected_purchases(
        expected_time[reached], *(v[reached] for v in (x, t_x, big_t))
    )
    before = purchases.conditional_expected_purchases(
        expected_time[reached] - 1096.0 / 2**11, *(v[reached] for v in (x, t_x, big_t))
    )
    assert (at >= 1.0 - 1e-9).all()
    assert (before < 1.0 + 1e-9).all()


def test_batch_checks_its_arguments(days: pd.DataFrame) -> None:
    x, t_x, big_t = (days[c].to_numpy() for c in ("frequency", "recency", "T"))
    purchases = BetaGeoFitter().fit(x, t_x, big_t)
    spend = GammaGammaFitter.from_params({"p": 6.25, "q": 3.74, "gamma": 15.44})
    with pytest.raises(InvalidInput, match="months"):
        predict_customers(
            purchases,
            spend,
            x,
            t_x,
            big_t,
            x * 0,
            horizon=1.0,
            months=0,
            next_purchase_within=10.0,
        )
    with pytest.raises(InvalidInput, match="horizon"):
        predict_customers(
            purchases, spend, x, t_x, big_t, x * 0, horizon=-1.0, next_purchase_within=10.0
        )
