"""Parameter recovery and calibrated predictions on data drawn from the models themselves.

200,000 customers per model (and 1M once per model for recovery), first purchases spread over
78 weeks, purchases recorded on whole days, time in weeks; one fixed seed per test. Estimates
must lie within sampling error of the truth, judged with the fitted covariance (a joint
chi-square test at the 0.1% level, and every parameter within 4 standard errors).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from siyu.predict import BetaGeoFitter, GammaGammaFitter, ParetoNBDFitter
from siyu.predict.btyd import simulate_bgnbd, simulate_paretonbd, simulate_spend
from siyu.predict.btyd.base import BaseFitter

N = 200_000
DAY = 1.0 / 7.0
BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PARETO = {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}
SPEND = {"p": 6.25, "q": 3.74, "gamma": 15.44}


def cohort(rng: np.random.Generator, n: int = N) -> np.ndarray:
    """T in weeks for customers whose first purchase falls on a random day of 78 weeks."""
    return rng.integers(1, 78 * 7, n, endpoint=True) * DAY


def assert_recovers(model: BaseFitter, truth: dict[str, float]) -> None:
    names = list(model.param_names)
    error = np.array([model.params_[k] - truth[k] for k in names])
    covariance = model.covariance_.loc[names, names].to_numpy()
    z = error / np.sqrt(np.diag(covariance))
    assert np.all(np.abs(z) < 4), dict(zip(names, z.round(2), strict=True))
    chi2 = float(error @ np.linalg.solve(covariance, error))
    assert chi2 < stats.chi2.ppf(0.999, len(names)), chi2


@pytest.fixture(scope="module")
def bgnbd_data() -> pd.DataFrame:
    rng = np.random.default_rng(20050101)
    return simulate_bgnbd(rng, cohort(rng), **BGNBD, holdout=39.0, resolution=DAY)


@pytest.fixture(scope="module")
def pareto_data() -> pd.DataFrame:
    rng = np.random.default_rng(19870101)
    return simulate_paretonbd(rng, cohort(rng), **PARETO, holdout=39.0, resolution=DAY)


@pytest.fixture(scope="module")
def bgnbd_fit(bgnbd_data: pd.DataFrame) -> BetaGeoFitter:
    return BetaGeoFitter().fit(bgnbd_data["frequency"], bgnbd_data["recency"], bgnbd_data["T"])


@pytest.fixture(scope="module")
def pareto_fit(pareto_data: pd.DataFrame) -> ParetoNBDFitter:
    d = pareto_data
    return ParetoNBDFitter().fit(d["frequency"], d["recency"], d["T"])


def test_bgnbd_recovers_parameters(bgnbd_fit: BetaGeoFitter) -> None:
    assert_recovers(bgnbd_fit, BGNBD)
    assert bgnbd_fit.n_customers_ == N
    # Day resolution: far fewer distinct rows than customers.
    assert bgnbd_fit.result.n_rows < N / 2


def test_pareto_nbd_recovers_parameters(pareto_fit: ParetoNBDFitter) -> None:
    assert_recovers(pareto_fit, PARETO)


def test_gamma_gamma_recovers_parameters() -> None:
    rng = np.random.default_rng(2013)
    frequency = rng.geometric(0.35, N).astype(float)
    spend = simulate_spend(rng, frequency, **SPEND)
    model = GammaGammaFitter().fit(frequency, spend)
    assert_recovers(model, SPEND)


def test_recovery_in_continuous_time_and_in_days() -> None:
    """No rounding (the model's own continuous time), and a days time unit (alpha x 7)."""
    rng = np.random.default_rng(7)
    t_end = rng.uniform(1.0, 78.0, 50_000)
    data = simulate_bgnbd(rng, t_end, **BGNBD)
    weeks = BetaGeoFitter().fit(data["frequency"], data["recency"], data["T"])
    assert_recovers(weeks, BGNBD)
    days = BetaGeoFitter().fit(data["frequency"], 7 * data["recency"], 7 * data["T"])
    for name in ("r", "a", "b"):
        assert days.params_[name] == pytest.approx(weeks.params_[name], rel=1e-6)
    assert days.params_["alpha"] == pytest.approx(7 * weeks.params_["alpha"], rel=1e-6)
    # Densities of purchase times pick up one factor 1/7 per repeat purchase.
    shift = data["frequency"].sum() * np.log(7)
    assert days.log_likelihood_ == pytest.approx(weeks.log_likelihood_ - shift, abs=1e-4)


@pytest.mark.parametrize(
    ("data_name", "fit_name"), [("bgnbd_data", "bgnbd_fit"), ("pareto_data", "pareto_fit")]
)
def test_forecasts_are_calibrated(
    data_name: str, fit_name: str, request: pytest.FixtureRequest
) -> None:
    """Mean forecast = mean realised holdout purchases, overall and per calibration frequency;
    mean P(alive) = share actually alive at T, per frequency."""
    data: pd.DataFrame = request.getfixturevalue(data_name)
    model: Any = request.getfixturevalue(fit_name)
    columns = (data["frequency"], data["recency"], data["T"])
    forecast = model.conditional_expected_purchases(39.0, *columns)
    p_alive = model.conditional_probability_alive(*columns)
    frame = pd.DataFrame(
        {
            "group": np.minimum(data["frequency"], 6),
            "forecast": forecast,
            "actual": data["frequency_holdout"],
            "p_alive": p_alive,
            "alive": data["alive"].astype(float),
        }
    )
    total_error = frame["forecast"].sum() / frame["actual"].sum() - 1
    assert abs(total_error) < 0.02
    grouped = frame.groupby("group")
    means = grouped.mean()
    counts = grouped.size()
    # Standard errors of the realised group means.
    se_actual: pd.Series = grouped["actual"].std() / np.sqrt(counts)
    se_alive: pd.Series = grouped["alive"].std() / np.sqrt(counts)
    assert (np.abs(means["forecast"] - means["actual"]) < 4 * se_actual + 0.01).all()
    assert (np.abs(means["p_alive"] - means["alive"]) < 4 * se_alive + 0.01).all()


def test_weights_are_equivalent_to_repeated_rows(bgnbd_data: pd.DataFrame) -> None:
    head = bgnbd_data.iloc[:20_000]
    grouped = head.groupby(["frequency", "recency", "T"]).size().reset_index(name="n")
    for model_type in (BetaGeoFitter, ParetoNBDFitter):
        raw = model_type().fit(head["frequency"], head["recency"], head["T"])
        weighted = model_type().fit(
            grouped["frequency"], grouped["recency"], grouped["T"], weights=grouped["n"]
        )
        assert weighted.log_likelihood_ == pytest.approx(raw.log_likelihood_, abs=1e-6)
        for name, value in raw.params_.items():
            assert weighted.params_[name] == pytest.approx(value, rel=1e-6)


@pytest.mark.parametrize(
    ("model_type", "simulate", "truth"),
    [(BetaGeoFitter, simulate_bgnbd, BGNBD), (ParetoNBDFitter, simulate_paretonbd, PARETO)],
)
def test_recovery_on_one_million_customers(model_type: Any, simulate: Any, truth: Any) -> None:
    """The issue's proof at full size: 1M customers (a few seconds, thanks to compression),
    every estimate within sampling error of the truth by its own standard error."""
    rng = np.random.default_rng(1_000_000)
    data = simulate(rng, cohort(rng, 1_000_000), **truth, resolution=DAY)
    model = model_type().fit(data["frequency"], data["recency"], data["T"])
    assert model.n_customers_ == 1_000_000
    assert_recovers(model, truth)
    # Standard errors shrink like 1/sqrt(n): at 1M every relative error is under 3%.
    assert all(model.standard_errors_[k] / v < 0.03 for k, v in model.params_.items())
