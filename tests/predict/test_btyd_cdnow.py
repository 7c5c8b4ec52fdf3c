"""The fitters against published results on the CDNOW sample (tests/data/cdnow/README.md).

Calibration: weeks 1-39 (1997-01-01..1997-09-30), time in weeks, each customer observed from her
own first purchase, several purchases on one day = one transaction (the ``cdnow`` fixture).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from siyu.predict import (
    BetaGeoFitter,
    GammaGammaFitter,
    ParetoNBDFitter,
    customer_lifetime_value,
    rfm_summary,
)

from .conftest import CALIBRATION_END


@pytest.fixture(scope="module")
def bgnbd(cdnow: pd.DataFrame) -> BetaGeoFitter:
    return BetaGeoFitter().fit(cdnow["frequency"], cdnow["recency"], cdnow["T"])


@pytest.fixture(scope="module")
def pareto(cdnow: pd.DataFrame) -> ParetoNBDFitter:
    return ParetoNBDFitter().fit(cdnow["frequency"], cdnow["recency"], cdnow["T"])


@pytest.fixture(scope="module")
def repeat_buyers(cdnow: pd.DataFrame) -> pd.DataFrame:
    return cdnow[cdnow["frequency"] > 0]


@pytest.fixture(scope="module")
def spend(repeat_buyers: pd.DataFrame) -> GammaGammaFitter:
    return GammaGammaFitter().fit(repeat_buyers["frequency"], repeat_buyers["monetary_value"])


def test_calibration_summary_matches_the_papers(cdnow: pd.DataFrame) -> None:
    # 2,357 customers, 946 with a repeat purchase, 2,457 repeat transactions in weeks 1-39.
    assert len(cdnow) == 2357
    assert int((cdnow["frequency"] > 0).sum()) == 946
    assert cdnow["frequency"].sum() == 2457
    # Hardie's BG/NBD spreadsheet lists customer 0001 as x = 2, t_x = 30.43, T = 38.86.
    first = cdnow.loc[1]
    assert (first["frequency"], round(first["recency"], 2), round(first["T"], 2)) == (
        2.0,
        30.43,
        38.86,
    )


def test_bgnbd_reproduces_fader_hardie_lee_2005(bgnbd: BetaGeoFitter) -> None:
    params = {k: round(v, 3) for k, v in bgnbd.params_.items()}
    assert params == {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    assert round(bgnbd.log_likelihood_, 1) == -9582.4
    assert bgnbd.n_customers_ == 2357


def test_pareto_nbd_reproduces_published_estimates(pareto: ParetoNBDFitter) -> None:
    params = {k: round(v, 3) for k, v in pareto.params_.items()}
    assert params == {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}
    assert round(pareto.log_likelihood_, 1) == -9595.0


def test_gamma_gamma_reproduces_fader_hardie_lee_2005_jmr(
    repeat_buyers: pd.DataFrame, spend: GammaGammaFitter
) -> None:
    # The published fit uses the 946 customers with repeat purchases in weeks 1-39 and, per
    # customer, the mean value of those calibration-period repeat transactions (same-day
    # purchases merged, first purchase excluded): its mean is the published $35.08. Averaging the
    # repeat transactions over all 78 weeks instead gives $35.77 and p, q, gamma = 4.39, 4.37,
    # 27.5; including the first purchase gives $35.28 and 14.3, 3.95, 7.29 (checked when this
    # test was written), so the calibration-period definition is the one the paper used.
    assert len(repeat_buyers) == 946
    assert round(float(repeat_buyers["monetary_value"].mean()), 2) == 35.08
    params = {k: round(v, 2) for k, v in spend.params_.items()}
    assert params == {"p": 6.25, "q": 3.74, "gamma": 15.44}


def test_gamma_gamma_spend_over_78_weeks_does_not_reproduce(
    cdnow_transactions: pd.DataFrame, repeat_buyers: pd.DataFrame
) -> None:
    full = rfm_summary(cdnow_transactions, calibration_end="1998-06-30").loc[repeat_buyers.index]
    assert round(float(full["monetary_value"].mean()), 2) != 35.08
    fitted = GammaGammaFitter().fit(full["frequency"], full["monetary_value"]).params_
    assert round(fitted["p"], 2) != 6.25


def test_standard_errors_are_those_of_the_observed_information(
    cdnow: pd.DataFrame, bgnbd: BetaGeoFitter
) -> None:
    # Reference: invert an independent finite-difference Hessian of the total log-likelihood in
    # the natural parameters (the fitter differentiates an analytic gradient in log-parameters).
    names = list(bgnbd.param_names)
    theta = np.array([bgnbd.params_[k] for k in names])
    columns = (cdnow["frequency"], cdnow["recency"], cdnow["T"])

    def total(values: np.ndarray) -> float:
        model = BetaGeoFitter.from_params(dict(zip(names, values, strict=True)))
        return float(model.individual_log_likelihood(*columns).sum())

    h = 1e-3 * theta
    hessian = np.empty((4, 4))
    for i in range(4):
        for j in range(4):
            ei, ej = np.eye(4)[i] * h[i], np.eye(4)[j] * h[j]
            hessian[i, j] = (
                total(theta + ei + ej)
                - total(theta + ei - ej)
                - total(theta - ei + ej)
                + total(theta - ei - ej)
            ) / (4 * h[i] * h[j])
    reference = np.sqrt(np.diag(np.linalg.inv(-hessian)))
    got = np.array([bgnbd.standard_errors_[k] for k in names])
    np.testing.assert_allclose(got, reference, rtol=1e-3)
    # lifetimes' quickstart prints the same CDNOW standard errors to two decimals.
    assert [round(v, 2) for v in got] == [0.01, 0.38, 0.19, 0.71]


def test_summary_and_repr(bgnbd: BetaGeoFitter) -> None:
    table = bgnbd.summary
    assert list(table.columns) == ["coef", "se", "lower 95%", "upper 95%"]
    assert list(table.index) == ["r", "alpha", "a", "b"]
    assert (table["lower 95%"] < table["coef"]).all()
    assert (table["coef"] < table["upper 95%"]).all()
    assert repr(bgnbd) == "<BetaGeoFitter r=0.243 alpha=4.414 a=0.793 b=2.426 ll=-9582.43 n=2357>"


def test_bgnbd_expectations_match_hardie_spreadsheet(bgnbd: BetaGeoFitter) -> None:
    # E[X(t)] and E[Y(39) | x=2, t_x=30.43, T=38.86] from Hardie's BG/NBD Excel sheet (the values
    # lifetimes' tests use). The sheet's parameters are Excel Solver's, a hair off the optimum:
    # at t = 78 weeks it gives 1.8576 where the exact optimum gives 1.85796 (0.02% apart).
    times = np.array([0.1429, 1.0, 3.00, 31.8571, 32.00, 78.00])
    expected = np.array([0.0078, 0.0532, 0.1506, 1.0405, 1.0437, 1.8576])
    np.testing.assert_allclose(bgnbd.expected_purchases(times), expected, atol=4e-4)
    np.testing.assert_allclose(bgnbd.expected_purchases(times[:5]), expected[:5], atol=6e-5)
    conditional = bgnbd.conditional_expected_purchases(39, 2, 30.43, 38.86)
    assert abs(float(conditional[0]) - 1.226) < 5e-4


def test_pareto_nbd_matches_r_btyd_walkthrough(pareto: ParetoNBDFitter) -> None:
    # BTYD walkthrough (R): P(alive | x=26, t_x=30.86, T=31) = 0.9979 with its own estimates,
    # and E[Y(52) | same customer] = 25.46.
    published = ParetoNBDFitter.from_params(
        {"r": 0.5534, "alpha": 10.5802, "s": 0.6061, "beta": 11.6562}
    )
    assert abs(float(published.conditional_probability_alive(26, 30.86, 31)[0]) - 0.9979) < 5e-4
    assert abs(float(pareto.conditional_expected_purchases(52, 26, 30.86, 31)[0]) - 25.46) < 0.01


def test_gamma_gamma_expected_spend_matches_hardie_spreadsheet(
    cdnow: pd.DataFrame, spend: GammaGammaFitter
) -> None:
    # E[M | x, m_x] for customers 0001..0010 from Hardie's Gamma-Gamma note spreadsheet, which
    # uses the unrounded estimates (the rounded 6.25, 3.74, 15.44 give 35.22, not 35.17, for
    # customers without repeat purchases).
    head = cdnow.loc[1:10]
    expected = [24.65, 18.91, 35.17, 35.17, 35.17, 71.46, 18.91, 35.17, 27.28, 35.17]
    got = spend.conditional_expected_average_profit(head["frequency"], head["monetary_value"])
    np.testing.assert_allclose(got, expected, atol=0.01)
    p, q, gamma = spend.params_.values()
    assert spend.population_mean_spend() == pytest.approx(p * gamma / (q - 1))
    assert got[2] == pytest.approx(spend.population_mean_spend())


@pytest.mark.parametrize("model_name", ["bgnbd", "pareto"])
def test_holdout_purchases_are_forecast(
    cdnow: pd.DataFrame, model_name: str, request: pytest.FixtureRequest
) -> None:
    """Conditional forecasts of weeks 40-78 against what the customers actually bought.

    Actual: 1,882 transaction days (1,959 rows). Forecast with the published parameters:
    BG/NBD 1,653, Pareto/NBD 1,666: both ~12% low in total on this sample, so a "~1%" total
    error could not be reproduced with this holdout definition (the unconditional cohort
    forecasts are 1,667 and 1,745). What the test locks: the totals stay where they are, and per
    calibration frequency the mean forecast rises with x as the actual mean does.
    """
    model = request.getfixturevalue(model_name)
    forecast = model.conditional_expected_purchases(
        39.0, cdnow["frequency"], cdnow["recency"], cdnow["T"]
    )
    actual = cdnow["frequency_holdout"].to_numpy()
    assert actual.sum() == 1882
    assert 0.85 < forecast.sum() / actual.sum() < 0.92
    by_x = pd.DataFrame({"x": np.minimum(cdnow["frequency"], 7), "f": forecast, "a": actual})
    means = by_x.groupby("x").mean()
    assert means["f"].is_monotonic_increasing
    assert means["a"].is_monotonic_increasing
    assert np.corrcoef(means["f"], means["a"])[0, 1] > 0.98


def test_clv_on_cdnow(cdnow: pd.DataFrame, bgnbd: BetaGeoFitter, spend: GammaGammaFitter) -> None:
    clv = customer_lifetime_value(
        bgnbd,
        spend,
        cdnow["frequency"],
        cdnow["recency"],
        cdnow["T"],
        cdnow["monetary_value"],
        months=12,
        discount_rate=0.01,
    )
    same = spend.customer_lifetime_value(
        bgnbd, cdnow["frequency"], cdnow["recency"], cdnow["T"], cdnow["monetary_value"]
    )
    np.testing.assert_array_equal(clv, same)
    assert clv.shape == (2357,)
    assert (clv >= 0).all()
    # No discounting: CLV = E[spend] * E[purchases in the next 12 months] exactly.
    undiscounted = customer_lifetime_value(
        bgnbd,
        spend,
        cdnow["frequency"],
        cdnow["recency"],
        cdnow["T"],
        cdnow["monetary_value"],
        discount_rate=0.0,
    )
    year = bgnbd.conditional_expected_purchases(
        12 * 365.25 / 12 / 7, cdnow["frequency"], cdnow["recency"], cdnow["T"]
    )
    value = spend.conditional_expected_average_profit(cdnow["frequency"], cdnow["monetary_value"])
    np.testing.assert_allclose(undiscounted, value * year, rtol=1e-12)
    assert (clv < undiscounted).all() or np.allclose(clv[undiscounted == 0], 0)


def test_summary_uses_calibration_end_inclusive(cdnow_transactions: pd.DataFrame) -> None:
    on_end = cdnow_transactions[cdnow_transactions["date"] == CALIBRATION_END]
    summary = rfm_summary(cdnow_transactions, calibration_end=CALIBRATION_END)
    for customer in on_end["customer_id"].unique():
        row = summary.loc[customer]
        assert row["recency"] == row["T"] or row["frequency"] == 0
