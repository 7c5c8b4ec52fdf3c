"""Numerical accuracy of the special functions, gradients and predictions, against quadrature."""

from __future__ import annotations

from decimal import Decimal, localcontext

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate
from scipy.special import betaln

from siyu.predict import BetaGeoFitter, GammaGammaFitter, ParetoNBDFitter
from siyu.predict.btyd import bgnbd as bg_module
from siyu.predict.btyd import gammagamma as gg_module
from siyu.predict.btyd import paretonbd as pnbd_module
from siyu.predict.btyd.data import rfm_rows
from siyu.predict.btyd.tail import _log_tail_quadrature, log1mexp, log_tail


def log_tail_by_quadrature(
    r: float, alpha: float, s: float, beta: float, x: float, t: float
) -> float:
    """log of the integral of (alpha+tau)^-(r+x) (beta+tau)^-(s+1) over (t, inf), directly."""
    shift = -(r + x) * np.log(alpha + t) - (s + 1) * np.log(beta + t)

    def f(tau: float) -> float:
        return float(np.exp(-(r + x) * np.log(alpha + tau) - (s + 1) * np.log(beta + tau) - shift))

    value = integrate.quad(f, t, np.inf, epsabs=0, epsrel=1e-13, limit=500)[0]
    return float(np.log(value) + shift)


@pytest.mark.parametrize("x", [0.0, 1.0, 5.0, 30.0, 100.0])
def test_log_tail_matches_quadrature(x: float) -> None:
    rng = np.random.default_rng(int(x) + 1)
    for _ in range(60):
        r, s = np.exp(rng.uniform(-3, 2, 2))
        alpha, beta = np.exp(rng.uniform(-2, 5, 2))
        t = float(rng.choice([0.0, 0.1, 1.0, 10.0, 39.0, 300.0]))
        got = float(log_tail(r, alpha, s, beta, np.array([x]), np.array([t]))[0])
        want = log_tail_by_quadrature(r, alpha, s, beta, x, t)
        assert got == pytest.approx(want, rel=1e-10, abs=1e-10), (r, alpha, s, beta, x, t)


@pytest.mark.parametrize(
    ("r", "alpha", "s", "beta", "x", "t"),
    [
        # scipy's hyp2f1 returns nan here (z within 0.002 of 1, x in the hundreds).
        (0.13, 113.04, 0.15, 0.16, 200.0, 0.0),
        (0.56, 315.83, 3.55, 0.06, 400.0, 0.1),
        (0.68, 52.57, 1.5, 0.14, 400.0, 0.0),
        (6.86, 61.66, 0.18, 0.11, 1000.0, 0.0),
    ],
)
def test_log_tail_falls_back_where_hyp2f1_fails(
    r: float, alpha: float, s: float, beta: float, x: float, t: float
) -> None:
    got = float(log_tail(r, alpha, s, beta, np.array([x]), np.array([t]))[0])
    want = log_tail_by_quadrature(r, alpha, s, beta, x, t)
    assert np.isfinite(got)
    assert got == pytest.approx(want, rel=1e-9)


def test_quadrature_fallback_agrees_with_the_fast_path() -> None:
    rng = np.random.default_rng(3)
    for _ in range(40):
        r, s = np.exp(rng.uniform(-2, 1, 2))
        alpha, beta = np.exp(rng.uniform(-1, 4, 2))
        x, t = float(rng.integers(0, 40)), float(rng.uniform(0, 50))
        fast = float(log_tail(r, alpha, s, beta, np.array([x]), np.array([t]))[0])
        assert _log_tail_quadrature(r, alpha, s, beta, x, t) == pytest.approx(fast, rel=1e-10)


def test_log1mexp() -> None:
    d = np.array([0.0, -1e-300, -1e-10, -0.5, -np.log(2), -1.0, -50.0, -800.0])
    got = log1mexp(d)
    assert got[0] == -np.inf
    assert got[1] == pytest.approx(np.log(1e-300))
    # Reference in 60-digit decimal arithmetic.
    with localcontext() as ctx:
        ctx.prec = 60
        want = [float((1 - Decimal(float(v)).exp()).ln()) for v in d[2:]]
    np.testing.assert_allclose(got[2:], want, rtol=1e-15)


def bgnbd_conditional_by_quadrature(
    params: tuple[float, float, float, float], x: float, t_x: float, t_end: float, t: float
) -> float:
    """Eq. 10 from its definition: P(alive) E[(1/p)(1 - ((a+T)/(a+T+pt))^(r+x))], p ~ Beta."""
    r, alpha, a, b = params

    def f(p: float) -> float:
        density = np.exp((a - 1) * np.log(p) + (b + x - 1) * np.log1p(-p) - betaln(a, b + x))
        return float(density * -np.expm1(-(r + x) * np.log1p(p * t / (alpha + t_end))) / p)

    alive = float(
        integrate.quad(f, 0, 1, epsabs=0, epsrel=1e-11, limit=400, points=[1e-6, 1e-3])[0]
    )
    model = BetaGeoFitter.from_params(dict(zip(("r", "alpha", "a", "b"), params, strict=True)))
    return alive * float(model.conditional_probability_alive(x, t_x, t_end)[0])


@pytest.mark.parametrize(
    ("x", "t_x", "t_end", "t"),
    [
        (0, 0, 38.86, 39),
        (2, 30.43, 38.86, 39),
        (10, 5, 30, 2),
        (50, 70, 78, 52),
        (200, 100, 104, 10),
    ],
)
@pytest.mark.parametrize("params", [(0.243, 4.414, 0.793, 2.426), (1.5, 20.0, 2.5, 0.4)])
def test_bgnbd_conditional_expectation_matches_quadrature(
    params: tuple[float, float, float, float], x: float, t_x: float, t_end: float, t: float
) -> None:
    model = BetaGeoFitter.from_params(dict(zip(("r", "alpha", "a", "b"), params, strict=True)))
    got = float(model.conditional_expected_purchases(t, x, t_x, t_end)[0])
    assert got == pytest.approx(bgnbd_conditional_by_quadrature(params, x, t_x, t_end, t), rel=1e-7)


def test_bgnbd_expectation_is_continuous_at_a_equal_1() -> None:
    values = []
    for a in (1.0 - 1e-4, 1.0, 1.0 + 1e-4):
        model = BetaGeoFitter.from_params({"r": 0.5, "alpha": 5.0, "a": a, "b": 2.0})
        values.append(float(model.conditional_expected_purchases(26.0, 3, 20.0, 30.0)[0]))
    assert values[1] == pytest.approx((values[0] + values[2]) / 2, rel=1e-6)


def test_pareto_expectations() -> None:
    r, alpha, s, beta = 0.553, 10.578, 0.606, 11.669
    model = ParetoNBDFitter.from_params({"r": r, "alpha": alpha, "s": s, "beta": beta})
    t = np.array([1.0, 10.0, 52.0])
    closed = r * beta / (alpha * (s - 1)) * (1 - (beta / (beta + t)) ** (s - 1))
    np.testing.assert_allclose(model.expected_purchases(t), closed, rtol=1e-13)
    # Continuity at s = 1, where the closed form is 0/0.
    near = [
        ParetoNBDFitter.from_params(
            {"r": r, "alpha": alpha, "s": v, "beta": beta}
        ).conditional_expected_purchases(20.0, 4, 10.0, 30.0)[0]
        for v in (1 - 1e-6, 1.0, 1 + 1e-6)
    ]
    assert near[1] == pytest.approx((near[0] + near[2]) / 2, rel=1e-6)
    # lifetimes' underflow regression: a one-purchase change moves the forecast a little.
    legacy = ParetoNBDFitter.from_params({"r": 0.55, "alpha": 10.58, "s": 0.61, "beta": 11.67})
    left, right = legacy.conditional_expected_purchases(10, [132, 133], [200, 200], [200, 200])
    assert 0 < right - left < 0.05
    # lifetimes' overflow regression: extreme rates still give probabilities.
    extreme = ParetoNBDFitter.from_params(
        {"r": 10.465, "alpha": 7.98565181e-03, "s": 3.0516, "beta": 2.820}
    )
    p_alive = extreme.conditional_probability_alive([400.0, 500, 500], [5.0, 1, 4], [6.0, 37, 37])
    assert np.all(np.isfinite(p_alive))
    assert np.all((p_alive >= 0) & (p_alive <= 1))


def test_individual_log_likelihoods_sum_to_the_fit(cdnow: pd.DataFrame) -> None:
    columns = (cdnow["frequency"], cdnow["recency"], cdnow["T"])
    for model_type in (BetaGeoFitter, ParetoNBDFitter):
        model = model_type().fit(*columns)
        per_customer = model.individual_log_likelihood(*columns)
        assert per_customer.shape == (2357,)
        assert per_customer.sum() == pytest.approx(model.log_likelihood_, abs=1e-8)


def numeric_gradient(f, z: np.ndarray, h: float = 1e-6) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.array([(f(z + h * e)[0] - f(z - h * e)[0]) / (2 * h) for e in np.eye(z.size)])


def test_analytic_gradients_match_finite_differences(cdnow: pd.DataFrame) -> None:
    rows = rfm_rows(cdnow["frequency"], cdnow["recency"], cdnow["T"])
    z = np.log(np.array([0.4, 6.0, 1.3, 3.0]))

    def bg(v: np.ndarray) -> tuple[float, np.ndarray]:
        return bg_module._neg_log_likelihood(rows, v)

    np.testing.assert_allclose(bg(z)[1], numeric_gradient(bg, z), rtol=1e-6)

    pairs = pnbd_module._Pairs.of(rows)

    def pareto(v: np.ndarray) -> tuple[float, np.ndarray]:
        return pnbd_module._neg_log_likelihood(rows, pairs, v)

    for point in (z, np.log(np.array([0.5, 10.0, 0.6, 12.0])), np.log([2.0, 3.0, 1.5, 1.0])):
        np.testing.assert_allclose(pareto(point)[1], numeric_gradient(pareto, point), rtol=1e-6)

    repeat = cdnow[cdnow["frequency"] > 0]
    spend = gg_module._SpendRows(
        repeat["frequency"].to_numpy(), repeat["monetary_value"].to_numpy(), np.ones(len(repeat))
    )
    zg = np.log(np.array([4.0, 3.0, 20.0]))
    np.testing.assert_allclose(
        spend.neg_log_likelihood(zg)[1], numeric_gradient(spend.neg_log_likelihood, zg), rtol=1e-6
    )


def test_gamma_gamma_density_integrates_to_one() -> None:
    # The full density of eq. 3 (with its Jacobian terms), so log_likelihood_ is a real log-density.
    p, q, gamma, x = 6.25, 3.74, 15.44, 3.0
    z = np.log(np.array([p, q, gamma]))

    def density(m: float) -> float:
        rows = gg_module._SpendRows(np.array([x]), np.array([m]), np.ones(1))
        return float(np.exp(-rows.neg_log_likelihood(z)[0]))

    total = integrate.quad(density, 0, np.inf, epsabs=0, epsrel=1e-10, limit=200)[0]
    assert total == pytest.approx(1.0, rel=1e-8)


rates = st.floats(min_value=0.05, max_value=20.0)
scales = st.floats(min_value=0.1, max_value=200.0)


@st.composite
def customers(draw: st.DrawFn) -> tuple[float, float, float]:
    t_end = draw(st.floats(min_value=0.0, max_value=500.0))
    x = draw(st.integers(min_value=0, max_value=600))
    t_x = 0.0 if x == 0 else draw(st.floats(min_value=0.0, max_value=t_end))
    return float(x), t_x, t_end


@settings(max_examples=150, deadline=None)
@given(r=rates, alpha=scales, a=rates, b=rates, customer=customers())
def test_bgnbd_predictions_are_probabilities_and_monotone(
    r: float, alpha: float, a: float, b: float, customer: tuple[float, float, float]
) -> None:
    model = BetaGeoFitter.from_params({"r": r, "alpha": alpha, "a": a, "b": b})
    x, t_x, t_end = customer
    p = float(model.conditional_probability_alive(x, t_x, t_end)[0])
    assert 0.0 <= p <= 1.0
    if x == 0:
        assert p == 1.0
    horizons = np.array([[1.0], [10.0], [100.0]])
    expected = model.conditional_expected_purchases(horizons, x, t_x, t_end)[:, 0]
    assert np.all(np.isfinite(expected))
    assert np.all(np.diff(expected) >= -1e-9 * expected[-1])
    assert expected[0] >= 0
    assert np.isfinite(model.individual_log_likelihood(x, t_x, t_end)[0])


@settings(max_examples=150, deadline=None)
@given(r=rates, alpha=scales, s=rates, beta=scales, customer=customers())
def test_pareto_predictions_are_probabilities_and_monotone(
    r: float, alpha: float, s: float, beta: float, customer: tuple[float, float, float]
) -> None:
    model = ParetoNBDFitter.from_params({"r": r, "alpha": alpha, "s": s, "beta": beta})
    x, t_x, t_end = customer
    p = float(model.conditional_probability_alive(x, t_x, t_end)[0])
    assert 0.0 <= p <= 1.0
    horizons = np.array([[1.0], [10.0], [100.0]])
    expected = model.conditional_expected_purchases(horizons, x, t_x, t_end)[:, 0]
    assert np.all(np.isfinite(expected))
    assert np.all(np.diff(expected) >= -1e-9 * expected[-1])
    ll = model.individual_log_likelihood(x, t_x, t_end)[0]
    assert np.isfinite(ll)
    assert ll <= 0 or x > 0  # with no purchases the likelihood is a probability


@settings(max_examples=100, deadline=None)
@given(
    p=rates,
    q=st.floats(min_value=1.05, max_value=20.0),
    gamma=scales,
    x=st.integers(min_value=0, max_value=500),
    m=st.floats(min_value=0.01, max_value=1e4),
)
def test_expected_spend_lies_between_population_mean_and_observed_mean(
    p: float, q: float, gamma: float, x: int, m: float
) -> None:
    model = GammaGammaFitter.from_params({"p": p, "q": q, "gamma": gamma})
    value = float(model.conditional_expected_average_profit(x, m)[0])
    population = model.population_mean_spend()
    if x == 0:
        assert value == pytest.approx(population)
    else:
        low, high = sorted((population, m))
        assert low * (1 - 1e-12) <= value <= high * (1 + 1e-12)


@pytest.mark.parametrize("a", [0.793, 1.0])
def test_time_to_expected_purchases_brackets_the_target(a: float) -> None:
    """The horizon found is where the expectation crosses the target, to the bisection's step;
    NaN when it is not reached within max_t (a customer who has probably lapsed)."""
    model = BetaGeoFitter.from_params({"r": 0.243, "alpha": 4.414, "a": a, "b": 2.426})
    x = np.array([0.0, 2.0, 10.0, 1.0])
    t_x = np.array([0.0, 30.0, 38.0, 1.0])
    t_end = np.array([10.0, 39.0, 39.0, 39.0])
    max_t, steps = 400.0, 14
    found = model.time_to_expected_purchases(1.0, x, t_x, t_end, max_t=max_t, steps=steps)
    reached = np.isfinite(found)
    assert reached[:3].all()
    assert not reached[3]  # one purchase at week 1, none in 38 weeks
    step = max_t / 2**steps
    at = model.conditional_expected_purchases(
        found[reached], x[reached], t_x[reached], t_end[reached]
    )
    before = model.conditional_expected_purchases(
        found[reached] - step, x[reached], t_x[reached], t_end[reached]
    )
    assert np.all(at >= 1.0 - 1e-6)
    assert np.all(before < 1.0 + 1e-6)
    never = model.conditional_expected_purchases(max_t, x[3], t_x[3], t_end[3])
    assert never[0] < 1.0
