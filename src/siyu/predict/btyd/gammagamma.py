"""Gamma-Gamma model of average spend per transaction.

Fader, Hardie & Lee (2005), "RFM and CLV: Using Iso-Value Curves for Customer Base Analysis",
Journal of Marketing Research 42(4), 415-430, section "Spend"; Fader & Hardie (2013), "The
Gamma-Gamma Model of Monetary Value" (note). Each transaction's
value is Gamma(p, nu); across customers nu ~ Gamma(q, gamma). The mean of x transactions, m_x,
is then Gamma(p x, nu x), and integrating nu out gives its density:

    f(m_x | p, q, gamma, x) = G(px+q) / (G(px) G(q)) gamma^q m_x^(px-1) x^(px)
                              / (gamma + m_x x)^(px+q).

The model assumes spend is independent of the purchase process; check that the correlation of
frequency and monetary_value among repeat buyers is small before combining the two.
"""

from __future__ import annotations

from typing import Literal, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.special import digamma, gammaln

from siyu.predict.btyd.base import BaseFitter, make_result, maximise
from siyu.predict.btyd.clv import PurchaseModel, customer_lifetime_value
from siyu.predict.btyd.data import FloatArray, check_spend, check_weights, compress, dot
from siyu.predict.errors import FitFailed


class _SpendRows:
    """Distinct (x, m_x) rows with counts, and what the likelihood needs that is parameter-free."""

    def __init__(self, x: FloatArray, m: FloatArray, w: FloatArray) -> None:
        self.x, self.m, self.w = x, m, w
        self.mx = m * x
        self.n = float(w.sum())
        # Distinct x by hash (their order does not matter): a sort cost 0.1 s at a million.
        x_index, self.x_values = pd.factorize(x)
        self.x_weights = np.bincount(x_index, weights=w, minlength=self.x_values.size)
        # sum w [(px-1) log m + px log x] = p sum w x log(m x) - sum w log m
        self.sum_x_log_mx = dot(w, (x * np.log(self.mx)))
        self.sum_log_m = dot(w, np.log(m))

    def neg_log_likelihood(self, z: FloatArray) -> tuple[float, FloatArray]:
        """Negative total log-density of the observed averages (the density above) and its gradient.

        The gamma and digamma terms depend on x alone and are evaluated once per distinct x.
        """
        p, q, gamma = (float(v) for v in np.exp(z))
        xv, wx, w, x = self.x_values, self.x_weights, self.w, self.x
        pxv = p * xv
        log_gmx = np.log(gamma + self.mx)
        sum_log_gmx = dot(w, log_gmx)
        sum_x_log_gmx = dot(w * x, log_gmx)
        ll = dot(wx, (gammaln(pxv + q) - gammaln(pxv))) - self.n * (gammaln(q) - q * np.log(gamma))
        ll += p * self.sum_x_log_mx - self.sum_log_m - p * sum_x_log_gmx - q * sum_log_gmx
        psi = digamma(pxv + q)
        d_p = dot(wx, (xv * (psi - digamma(pxv)))) + self.sum_x_log_mx - sum_x_log_gmx
        d_q = dot(wx, psi) + self.n * (np.log(gamma) - digamma(q)) - sum_log_gmx
        d_gamma = self.n * q / gamma - dot(w, ((p * x + q) / (gamma + self.mx)))
        grad = np.array([d_p * p, d_q * q, d_gamma * gamma])
        return -ll, -grad


class GammaGammaFitter(BaseFitter):
    """Gamma-Gamma spend model; parameters p, q, gamma. Fitted on repeat buyers only."""

    param_names = ("p", "q", "gamma")

    def fit(
        self,
        frequency: npt.ArrayLike,
        monetary_value: npt.ArrayLike,
        weights: npt.ArrayLike | None = None,
    ) -> Self:
        """Maximum likelihood on (repeat transactions, their average value) per customer."""
        x, m = check_spend(frequency, monetary_value, allow_zero_frequency=False)
        w = check_weights(weights, x.size)
        keep = w > 0
        (x, m), w, _ = compress([x[keep], m[keep]], w[keep])
        if x.size < 2:
            raise FitFailed("The Gamma-Gamma model needs at least two distinct spend values.")
        # Method-of-moments-like start: p = 1 and gamma / (q-1) near the mean spend, q = 2.
        mean_spend = dot(w, m) / float(w.sum())
        start = np.log(np.array([1.0, 2.0, max(mean_spend, 1e-6)]))
        rows = _SpendRows(x, m, w)
        z, h, ll = maximise(rows.neg_log_likelihood, start, self.param_names, rows.n)
        self._result = make_result(self.param_names, z, h, ll, float(w.sum()), int(x.size))
        return self

    def conditional_expected_average_profit(
        self, frequency: npt.ArrayLike, monetary_value: npt.ArrayLike
    ) -> FloatArray:
        """E[M | p, q, gamma, m_x, x]: a weighted mean of the population mean and m_x.

        (q-1)/(px+q-1) * p gamma/(q-1) + px/(px+q-1) * m_x. For x = 0 it is the population mean
        spend p gamma / (q-1), so new and one-time customers get a value too. Needs q > 1 (the
        population mean is infinite otherwise).
        """
        x, m = check_spend(frequency, monetary_value, allow_zero_frequency=True)
        p, q, gamma = self._values()
        if q <= 1.0:
            raise FitFailed(
                f"q = {q:.3g} <= 1: the fitted spend distribution has no finite mean.",
                hint="The average spend has a very heavy tail; cap outliers or use a median.",
            )
        m_known = np.where(x > 0, m, 0.0)
        out: FloatArray = (gamma + m_known * x) * p / (p * x + q - 1.0)
        return out

    def population_mean_spend(self) -> float:
        """E[M] = p gamma / (q-1): the mean spend per transaction in the population."""
        p, q, gamma = self._values()
        return p * gamma / (q - 1.0) if q > 1.0 else float("inf")

    def customer_lifetime_value(
        self,
        transaction_model: PurchaseModel,
        frequency: npt.ArrayLike,
        recency: npt.ArrayLike,
        T: npt.ArrayLike,  # noqa: N803
        monetary_value: npt.ArrayLike,
        *,
        months: int = 12,
        discount_rate: float = 0.01,
        time_unit: Literal["D", "W"] = "W",
    ) -> FloatArray:
        """Discounted CLV over ``months``; see :func:`siyu.predict.btyd.customer_lifetime_value`."""
        return customer_lifetime_value(
            transaction_model,
            self,
            frequency,
            recency,
            T,
            monetary_value,
            months=months,
            discount_rate=discount_rate,
            time_unit=time_unit,
        )
