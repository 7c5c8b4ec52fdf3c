"""Pareto/NBD: Poisson purchases and exponential lifetimes, both gamma-mixed.

Schmittlein, Morrison & Colombo (1987), "Counting Your Customers: Who Are They and What Will They
Do Next?", Management Science 33(1); the expressions follow Fader & Hardie (2005), "A Note on
Deriving the Pareto/NBD Model and Related Expressions" (note).
While alive a customer buys at rate lambda ~ Gamma(r, alpha); her lifetime is exponential with
rate mu ~ Gamma(s, beta). Unlike BG/NBD she can die at any time, also before a repeat purchase.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np
import numpy.typing as npt
from scipy.special import digamma, expit, gammaln

from siyu.predict.btyd.base import BaseFitter, make_result, maximise
from siyu.predict.btyd.data import (
    FloatArray,
    IndexArray,
    RFMRows,
    check_horizon,
    compress,
    dot,
    prediction_rows,
    purchase_fit_rows,
)
from siyu.predict.btyd.tail import log1mexp, log_tail

_STEP = 1e-5  # central-difference step in log-parameters, ~ cube root of machine epsilon


@dataclass(frozen=True)
class _Pairs:
    """Distinct (x, t) pairs among (x, t_x) and (x, T): the only places I(t) is needed.

    With day-resolution data there are far fewer of them than customers (every customer without
    repeat purchases has t_x = 0), so hyp2f1, by far the costliest step, runs once per pair.
    """

    x: FloatArray
    t: FloatArray
    at_t_x: IndexArray
    at_end: IndexArray

    @classmethod
    def of(cls, rows: RFMRows) -> _Pairs:
        n = rows.n_rows
        both_x = np.concatenate([rows.x, rows.x])
        both_t = np.concatenate([rows.t_x, rows.T])
        (x, t), _, inverse = compress([both_x, both_t], np.ones(2 * n))
        return cls(x, t, inverse[:n], inverse[n:])


def _log_terms(params: tuple[float, ...], rows: RFMRows, pairs: _Pairs) -> tuple[FloatArray, ...]:
    """log of the two terms of the likelihood's bracket, and log I at every pair.

    L = G(r+x) alpha^r beta^s / G(r) * [alive + s (I(t_x) - I(T))] (Fader & Hardie 2005, the
    likelihood with A0 = (r+s+x) (I(t_x) - I(T))), with alive = (alpha+T)^-(r+x) (beta+T)^-s:
    still alive at T, versus died in (t_x, T].
    """
    r, alpha, s, beta = params
    log_i = log_tail(r, alpha, s, beta, pairs.x, pairs.t)
    log_i_tx = log_i[pairs.at_t_x]
    log_died = np.log(s) + log_i_tx + log1mexp(log_i[pairs.at_end] - log_i_tx)
    log_alive = -(r + rows.x) * np.log(alpha + rows.T) - s * np.log(beta + rows.T)
    return log_alive, log_died, log_i


def _log_likelihood(params: tuple[float, ...], rows: RFMRows, pairs: _Pairs) -> FloatArray:
    r, alpha, s, beta = params
    log_alive, log_died, _ = _log_terms(params, rows, pairs)
    per_x = gammaln(r + rows.x_values) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
    out: FloatArray = per_x[rows.x_index] + np.logaddexp(log_alive, log_died)
    return out


def _pair_log_tail(z: FloatArray, pairs: _Pairs) -> FloatArray:
    r, alpha, s, beta = (float(v) for v in np.exp(z))
    return log_tail(r, alpha, s, beta, pairs.x, pairs.t)


def _neg_log_likelihood(rows: RFMRows, pairs: _Pairs, z: FloatArray) -> tuple[float, FloatArray]:
    """Negative total log-likelihood and its gradient in the log-parameters.

    The derivatives of 2F1 in its parameters have no closed form, so d log I / d log(theta) is
    taken by central differences, but only on the distinct (x, t) pairs (cheap); everything per
    customer is differentiated analytically by the chain rule. For the died term,
    d log(I1 - I2) = (d log I1 - e^d d log I2) / (1 - e^d) with d = log I2 - log I1 < 0.
    """
    params = tuple(float(v) for v in np.exp(z))
    r, alpha, s, beta = params
    log_alive, log_died, log_i = _log_terms(params, rows, pairs)
    w, wx, xv = rows.w, rows.x_weights, rows.x_values
    per_x = gammaln(r + xv) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
    ll = dot(wx, per_x) + dot(w, np.logaddexp(log_alive, log_died))
    # Per pair: derivatives of log I in each log-parameter.
    d_log_i = np.empty((4, log_i.size))
    for j in range(4):
        step = np.zeros(4)
        step[j] = _STEP
        d_log_i[j] = (_pair_log_tail(z + step, pairs) - _pair_log_tail(z - step, pairs)) / (
            2 * _STEP
        )
    died = np.isfinite(log_died)
    ratio = np.exp(log_i[pairs.at_end] - log_i[pairs.at_t_x], where=died, out=np.zeros(w.size))
    one_minus = np.where(died, 1.0 - ratio, 1.0)
    w_died = w * expit(log_died - log_alive)
    w_alive = w - w_died
    log_a_t, log_b_t = np.log(alpha + rows.T), np.log(beta + rows.T)
    weight = w_died / one_minus
    d_died = np.einsum("ji,i->j", d_log_i[:, pairs.at_t_x], weight) - np.einsum(
        "ji,i->j", d_log_i[:, pairs.at_end], ratio * weight
    )
    n = float(w.sum())
    grad = np.array(
        [
            r * dot(wx, (digamma(r + xv) - digamma(r) + np.log(alpha)))
            - r * dot(w_alive, log_a_t)
            + d_died[0],
            r * n - alpha * dot(w_alive, ((r + rows.x) / (alpha + rows.T))) + d_died[1],
            s * n * np.log(beta) - s * dot(w_alive, log_b_t) + float(w_died.sum()) + d_died[2],
            s * n - beta * s * dot(w_alive, (1.0 / (beta + rows.T))) + d_died[3],
        ]
    )
    return -ll, -grad


class ParetoNBDFitter(BaseFitter):
    """Pareto/NBD model; parameters r, alpha (purchase rate) and s, beta (lifetime).

    I(t), the costly part, is evaluated once per distinct (x, t) pair; see _neg_log_likelihood
    for the gradient.
    """

    param_names = ("r", "alpha", "s", "beta")

    def fit(
        self,
        frequency: npt.ArrayLike,
        recency: npt.ArrayLike,
        T: npt.ArrayLike,  # noqa: N803
        weights: npt.ArrayLike | None = None,
    ) -> Self:
        """Maximum likelihood on customer summaries; ``weights`` counts customers per row."""
        rows, alpha0 = purchase_fit_rows(frequency, recency, T, weights)
        pairs = _Pairs.of(rows)

        # Start at the observed mean purchase rate, and a mean lifetime of the mean T.
        mean_t = dot(rows.w, rows.T) / rows.n_customers
        start = np.log(np.array([1.0, max(alpha0, 1e-6), 1.0, max(mean_t, 1e-6)]))
        z, h, ll = maximise(
            lambda v: _neg_log_likelihood(rows, pairs, v), start, self.param_names, rows.n_customers
        )
        self._result = make_result(self.param_names, z, h, ll, rows.n_customers, rows.n_rows)
        return self

    def _rows(
        self,
        frequency: npt.ArrayLike,
        recency: npt.ArrayLike,
        T: npt.ArrayLike,  # noqa: N803
        horizon: FloatArray | None = None,
    ) -> tuple[RFMRows, _Pairs]:
        rows = prediction_rows(frequency, recency, T, horizon)
        return rows, _Pairs.of(rows)

    def individual_log_likelihood(
        self,
        frequency: npt.ArrayLike,
        recency: npt.ArrayLike,
        T: npt.ArrayLike,  # noqa: N803
    ) -> FloatArray:
        """Each customer's log-likelihood at the fitted parameters."""
        rows, pairs = self._rows(frequency, recency, T)
        return rows.expand(_log_likelihood(self._values(), rows, pairs))

    def conditional_probability_alive(
        self,
        frequency: npt.ArrayLike,
        recency: npt.ArrayLike,
        T: npt.ArrayLike,  # noqa: N803
    ) -> FloatArray:
        """P(alive at T | x, t_x, T): the "alive" share of the likelihood's bracket.

        Equals Fader & Hardie's 1 / (1 + s/(r+s+x) (alpha+T)^(r+x) (beta+T)^s A0).
        """
        rows, pairs = self._rows(frequency, recency, T)
        log_alive, log_died, _ = _log_terms(self._values(), rows, pairs)
        return rows.expand(expit(log_alive - log_died))

    def conditional_expected_purchases(
        self,
        t: npt.ArrayLike,
        frequency: npt.ArrayLike,
        recency: npt.ArrayLike,
        T: npt.ArrayLike,  # noqa: N803
    ) -> FloatArray:
        """E[purchases in (T, T+t] | x, t_x, T] (Schmittlein, Morrison & Colombo 1987).

        P(alive) (r+x)(beta+T) / ((alpha+T)(s-1)) [1 - ((beta+T)/(beta+T+t))^(s-1)]; the factor
        [1 - e^(-(s-1)L)] / (s-1), L = log(1 + t/(beta+T)), is computed with expm1 and tends to
        L at s = 1, so s near 1 is handled without cancellation. ``t`` is a scalar, one horizon
        per customer, or a column (k, 1) of k horizons (result (k, n)).
        """
        horizon = check_horizon(t)
        rows, pairs = self._rows(frequency, recency, T, horizon)
        r, alpha, s, beta = self._values()
        log_alive, log_died, _ = _log_terms((r, alpha, s, beta), rows, pairs)
        p_alive = expit(log_alive - log_died)
        span = np.log1p(horizon / (beta + rows.T))
        # [1 - e^(-(s-1) L)] / (s-1), whose limit at s = 1 is L.
        lifetime = span if abs(s - 1.0) < 1e-12 else -np.expm1(-(s - 1.0) * span) / (s - 1.0)
        out = p_alive * (r + rows.x) / (alpha + rows.T) * (beta + rows.T) * lifetime
        return rows.expand(out)

    def expected_purchases(self, t: npt.ArrayLike) -> FloatArray:
        """E[X(t)] for a new customer: the conditional expectation at x = t_x = T = 0,
        r beta / (alpha (s-1)) [1 - (beta/(beta+t))^(s-1)]."""
        horizon = np.atleast_1d(check_horizon(t))
        zeros = np.zeros(horizon.shape)
        return self.conditional_expected_purchases(horizon, zeros, zeros, zeros)
