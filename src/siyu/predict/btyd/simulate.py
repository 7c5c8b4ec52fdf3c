"""Draw customer summaries from the models' own generative stories (for tests and benchmarks).

Every draw is vectorised and exact, without simulating individual purchase times: given the
number n of Poisson events in (0, L], their times are n uniform order statistics, so the k-th is
L * Beta(k, n-k+1); events in (0, T] out of those in (0, T+h] are Binomial(n, T/(T+h)). Pass a
seeded ``numpy.random.Generator``; nothing here touches global random state.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from siyu.errors import InvalidInput
from siyu.predict.btyd.data import FloatArray, as_array


def _summary(
    rng: np.random.Generator,
    x: npt.NDArray[np.int64],
    n_events: npt.NDArray[np.int64],
    length: FloatArray,
    t_end: FloatArray,
    holdout: npt.NDArray[np.int64] | None,
    resolution: float | None,
    alive: npt.NDArray[np.bool_],
) -> pd.DataFrame:
    """(frequency, recency, T, alive) with t_x the x-th of n_events uniform times on (0, length].

    ``alive`` is the latent state at T that the models estimate as P(alive): tests use it.
    """
    repeat = x > 0
    shape_a = np.where(repeat, x, 1).astype(np.float64)
    shape_b = np.where(repeat, n_events - x + 1, 1).astype(np.float64)
    recency = np.where(repeat, length * rng.beta(shape_a, shape_b), 0.0)
    if resolution is not None:
        # Purchases recorded on whole days (or other units): nearest grid point, within [0, T].
        recency = np.minimum(np.round(recency / resolution) * resolution, t_end)
    out = pd.DataFrame(
        {"frequency": x.astype(np.float64), "recency": recency, "T": t_end, "alive": alive}
    )
    if holdout is not None:
        out["frequency_holdout"] = holdout.astype(np.float64)
    return out


def _check_t(T: npt.ArrayLike, holdout: float) -> FloatArray:  # noqa: N803
    t_end = as_array(T, "T")
    if (t_end <= 0).any() or not holdout >= 0:
        raise InvalidInput("Simulation needs T > 0 for every customer and holdout >= 0.", field="T")
    return t_end


def simulate_bgnbd(
    rng: np.random.Generator,
    T: npt.ArrayLike,  # noqa: N803
    r: float,
    alpha: float,
    a: float,
    b: float,
    *,
    holdout: float = 0.0,
    resolution: float | None = None,
) -> pd.DataFrame:
    """BG/NBD customers observed for T (one value per customer) and ``holdout`` more units.

    Drop-out happens just after a repeat purchase with probability p, so the number of repeat
    purchases a customer would ever make is J ~ Geometric(p) on {1, 2, ...}; she makes
    min(J, N(t)) of them by time t, N Poisson with rate lambda (Fader, Hardie & Lee 2005, sec. 3).
    """
    t_end = _check_t(T, holdout)
    n = t_end.size
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    ever = rng.geometric(np.maximum(p, np.finfo(np.float64).tiny), n)
    n_total = rng.poisson(lam * (t_end + holdout))
    n_cal = rng.binomial(n_total, t_end / (t_end + holdout))
    x = np.minimum(ever, n_cal)
    later = np.minimum(ever, n_total) - x if holdout > 0 else None
    # She has dropped out by T once her J-th repeat purchase happened in (0, T].
    return _summary(rng, x, n_cal, t_end, t_end, later, resolution, ever > n_cal)


def simulate_paretonbd(
    rng: np.random.Generator,
    T: npt.ArrayLike,  # noqa: N803
    r: float,
    alpha: float,
    s: float,
    beta: float,
    *,
    holdout: float = 0.0,
    resolution: float | None = None,
) -> pd.DataFrame:
    """Pareto/NBD customers: Poisson purchases until an exponential lifetime ends."""
    t_end = _check_t(T, holdout)
    n = t_end.size
    lam = rng.gamma(r, 1.0 / alpha, n)
    mu = rng.gamma(s, 1.0 / beta, n)
    lifetime = rng.exponential(1.0 / np.maximum(mu, np.finfo(np.float64).tiny), n)
    active_cal = np.minimum(lifetime, t_end)
    x = rng.poisson(lam * active_cal)
    later = None
    if holdout > 0:
        later = rng.poisson(lam * (np.minimum(lifetime, t_end + holdout) - active_cal))
    # Given x events in (0, active], the last is at active * Beta(x, 1).
    return _summary(rng, x, x, active_cal, t_end, later, resolution, lifetime > t_end)


def simulate_spend(
    rng: np.random.Generator, frequency: npt.ArrayLike, p: float, q: float, gamma: float
) -> FloatArray:
    """Average value of ``frequency`` transactions per customer under Gamma-Gamma (0 if none).

    nu ~ Gamma(q, rate gamma); the mean of x Gamma(p, rate nu) values is Gamma(p x, rate nu x).
    """
    x = as_array(frequency, "frequency")
    nu = rng.gamma(q, 1.0 / gamma, x.size)
    shape = np.where(x > 0, p * x, 1.0)
    mean = rng.gamma(shape, 1.0 / (nu * np.maximum(x, 1.0)))
    out: FloatArray = np.where(x > 0, mean, 0.0)
    return out
