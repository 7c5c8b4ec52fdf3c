"""Shared maximum-likelihood machinery of the buy-till-you-die fitters.

Every model has positive parameters. The optimiser works on their logarithms, which removes the
positivity constraints, makes the steps scale-free (a days model has ``alpha`` seven times a weeks
model) and keeps the likelihood surface close to quadratic. L-BFGS-B does the search on the mean
per-customer log-likelihood (so its tolerances do not depend on the number of customers); then up
to a few Newton steps with the finite-difference Hessian polish the optimum, which makes the
fitted values reproducible to many more digits than the published ones.

Standard errors come from the inverse of the observed information (the Hessian of the negative
log-likelihood) at the optimum. It is computed in log-parameters and mapped back with the delta
method, ``se(theta) = theta * se(log theta)``, which is exact at the optimum where the gradient
vanishes. The 95% intervals in :attr:`BaseFitter.summary` are Wald intervals on the log scale,
``theta * exp(+-1.96 se(log theta))``: they never cross zero, unlike ``theta +- 1.96 se``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar, Self

import numpy as np
import pandas as pd
from scipy import linalg, optimize
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from siyu.errors import InvalidInput
from siyu.predict.btyd.data import FloatArray
from siyu.predict.errors import FitFailed, ModelNotFitted

Objective = Callable[[FloatArray], tuple[float, FloatArray]]
"""Log-parameters -> (negative total log-likelihood, its gradient in the log-parameters)."""

LOG_BOUND = float(np.log(1e9))
"""Log-parameters stay in [-LOG_BOUND, LOG_BOUND]; an optimum on that edge is a failed fit."""

_Z95 = 1.959963984540054
_HESSIAN_STEP = 1e-4
_NEWTON_STEPS = 4
#: Newton steps stop when the decrement g'H^-1 g per customer is below this: the estimates are
#: then within about 1e-8 (relative) of the maximum.
_NEWTON_TOLERANCE = 1e-18
#: The Hessian is recomputed at the optimum when the Newton steps moved any log-parameter by
#: more than this (the observed information changes by about as much, relatively).
_REUSE_HESSIAN_WITHIN = 1e-4


@dataclass(frozen=True)
class FitResult:
    """What a successful fit leaves behind."""

    params: dict[str, float]
    covariance: FloatArray
    log_likelihood: float
    n_customers: float
    n_rows: int


def hessian(objective: Objective, z: FloatArray) -> FloatArray:
    """Symmetrised central-difference Jacobian of the gradient at ``z``."""
    k = z.size
    h = np.empty((k, k))
    for i in range(k):
        step = np.zeros(k)
        step[i] = _HESSIAN_STEP
        h[:, i] = (objective(z + step)[1] - objective(z - step)[1]) / (2 * _HESSIAN_STEP)
    return (h + h.T) / 2


def maximise(
    objective: Objective, start: FloatArray, names: tuple[str, ...], n_customers: float
) -> tuple[FloatArray, FloatArray, float]:
    """Maximum-likelihood log-parameters, the Hessian there and the maximised log-likelihood."""
    # L-BFGS-B calls BLAS on vectors of 4 numbers; OpenBLAS's worker threads then cost more
    # than the likelihood itself: 0.27 of a 0.32 s fit at 100,000 customers was spent waking
    # them (measured 2026-12-06), and more on a loaded machine. One thread is the right size.
    with threadpool_limits(limits=1, user_api="blas"):
        z = _search(objective, start, n_customers)
        return _polish(objective, z, names, n_customers)


def _search(objective: Objective, start: FloatArray, n_customers: float) -> FloatArray:
    """L-BFGS-B on the mean log-likelihood, from ``start`` to close to the optimum."""
    scale = 1.0 / n_customers

    def scaled(z: FloatArray) -> tuple[float, FloatArray]:
        value, grad = objective(z)
        if not np.isfinite(value):
            # Only reachable far from the optimum; a large value sends the line search back.
            return float(np.finfo(np.float64).max) * 1e-10, np.zeros_like(z)
        return value * scale, grad * scale

    bounds = [(-LOG_BOUND, LOG_BOUND)] * start.size
    result = optimize.minimize(
        scaled,
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-10},
    )
    return np.asarray(result.x, dtype=np.float64)


def _polish(
    objective: Objective, z: FloatArray, names: tuple[str, ...], n_customers: float
) -> tuple[FloatArray, FloatArray, float]:
    """Newton steps with the observed information until the Newton decrement is negligible.

    The Hessian (8 evaluations of the likelihood for 4 parameters) is needed for the standard
    errors anyway; it is computed once and reused for the steps, which near the optimum are
    tiny, and computed again only if the steps moved the estimate noticeably. A step counts if
    it lowers the objective or shrinks the decrement fourfold: at a million customers the
    objective's rounding noise exceeds the improvement of a last step, and a test on the value
    alone rejected good steps again and again (70 likelihood evaluations per fit instead of 27).
    """
    value, grad = objective(z)
    h = hessian(objective, z)
    z_at_h = z
    tolerance = _NEWTON_TOLERANCE * n_customers
    for _ in range(_NEWTON_STEPS):
        try:
            factor = linalg.cho_factor(h)
        except linalg.LinAlgError:
            break
        step = linalg.cho_solve(factor, grad)
        decrement = float(grad @ step)
        if decrement < tolerance:
            break
        shrink = 1.0
        while shrink > 1e-3:
            candidate = np.clip(z - shrink * step, -LOG_BOUND, LOG_BOUND)
            candidate_value, candidate_grad = objective(candidate)
            if np.isfinite(candidate_value) and (
                candidate_value <= value
                or float(candidate_grad @ linalg.cho_solve(factor, candidate_grad)) < decrement / 4
            ):
                z, value, grad = candidate, candidate_value, candidate_grad
                break
            shrink /= 2
        else:
            break
    if float(np.max(np.abs(z - z_at_h))) > _REUSE_HESSIAN_WITHIN:
        h = hessian(objective, z)
    _check_optimum(z, h, grad, names)
    return z, h, -value


def _check_optimum(z: FloatArray, h: FloatArray, grad: FloatArray, names: tuple[str, ...]) -> None:
    at_bound = np.abs(z) >= LOG_BOUND - 1e-6
    if at_bound.any():
        name = names[int(np.argmax(at_bound))]
        side = "0" if z[int(np.argmax(at_bound))] < 0 else "infinity"
        raise FitFailed(
            f"The estimate of {name} goes to {side}: the likelihood has no interior "
            "maximum for this data."
        )
    try:
        factor = linalg.cho_factor(h)
    except linalg.LinAlgError:
        raise FitFailed(
            "The log-likelihood is flat or not concave at the optimum found, so the parameters "
            "are not identified by this data."
        ) from None
    decrement = float(grad @ linalg.cho_solve(factor, grad))
    if not decrement < 1e-3:
        raise FitFailed(
            f"The optimiser stopped {decrement:.3g} log-likelihood units short of the maximum."
        )


def make_result(
    names: tuple[str, ...], z: FloatArray, h: FloatArray, log_likelihood: float, n: float, rows: int
) -> FitResult:
    """Natural-scale parameters and covariance from the log-scale optimum (delta method)."""
    theta = np.exp(z)
    covariance = np.linalg.inv(h) * np.outer(theta, theta)
    params = {name: float(v) for name, v in zip(names, theta, strict=True)}
    return FitResult(params, covariance, float(log_likelihood), float(n), int(rows))


class BaseFitter:
    """``fit()`` returns the model; fitted values are the ``*_`` attributes (lifetimes style)."""

    param_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        self._result: FitResult | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, float]) -> Self:
        """A model with given parameters (saved earlier, or published) and no fit statistics.

        Predictions work as after ``fit``; standard errors and the log-likelihood are NaN.
        """
        names = set(cls.param_names)
        if set(params) != names:
            raise InvalidInput(
                f"{cls.__name__} needs the parameters {sorted(names)}, got {sorted(params)}.",
                field="params",
            )
        values = np.array([float(params[name]) for name in cls.param_names])
        if not (np.isfinite(values).all() and (values > 0).all()):
            raise InvalidInput(
                f"{cls.__name__} parameters must be positive numbers.", field="params"
            )
        model = cls()
        k = values.size
        covariance = np.full((k, k), np.nan)
        model._result = FitResult(
            dict(zip(cls.param_names, values.tolist(), strict=True)), covariance, np.nan, 0.0, 0
        )
        return model

    @property
    def result(self) -> FitResult:
        if self._result is None:
            raise ModelNotFitted(f"{type(self).__name__} is not fitted yet.")
        return self._result

    @property
    def params_(self) -> dict[str, float]:
        """Maximum-likelihood estimates by name."""
        return dict(self.result.params)

    @property
    def covariance_(self) -> pd.DataFrame:
        """Asymptotic covariance of the estimates (inverse observed information)."""
        names = list(self.param_names)
        return pd.DataFrame(self.result.covariance, index=names, columns=names)

    @property
    def standard_errors_(self) -> dict[str, float]:
        """Standard errors of the estimates by name."""
        se = np.sqrt(np.diag(self.result.covariance))
        return {name: float(v) for name, v in zip(self.param_names, se, strict=True)}

    @property
    def log_likelihood_(self) -> float:
        """The maximised log-likelihood, total over customers."""
        return self.result.log_likelihood

    @property
    def n_customers_(self) -> float:
        """Customers fitted (the sum of the weights)."""
        return self.result.n_customers

    def _values(self) -> tuple[float, ...]:
        params = self.result.params
        return tuple(params[name] for name in self.param_names)

    @property
    def summary(self) -> pd.DataFrame:
        """Estimates with standard errors and log-scale 95% intervals, one row per parameter."""
        coef = np.array(self._values())
        se = np.sqrt(np.diag(self.result.covariance))
        spread = np.exp(_Z95 * se / coef)
        return pd.DataFrame(
            {"coef": coef, "se": se, "lower 95%": coef / spread, "upper 95%": coef * spread},
            index=pd.Index(self.param_names, name="param"),
        )

    def __repr__(self) -> str:
        name = type(self).__name__
        if self._result is None:
            return f"<{name}: not fitted>"
        values = " ".join(f"{k}={v:.3f}" for k, v in self._result.params.items())
        n = self._result.n_customers
        count = f"{n:.0f}" if n == round(n) else f"{n:.1f}"
        return f"<{name} {values} ll={self._result.log_likelihood:.2f} n={count}>"
