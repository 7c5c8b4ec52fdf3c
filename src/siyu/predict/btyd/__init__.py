"""Buy-till-you-die models: who is still a customer, how often she will buy, what she will spend.

- :class:`BetaGeoFitter` (BG/NBD) and :class:`ParetoNBDFitter` (Pareto/NBD) model repeat-purchase
  counts and drop-out from each customer's (frequency, recency, T);
- :class:`GammaGammaFitter` models average spend per transaction of repeat buyers;
- :func:`customer_lifetime_value` combines one of each into a discounted value.

All fitters follow lifetimes' conventions: ``fit()`` returns the model, fitted values are in
``params_``, ``standard_errors_``, ``log_likelihood_``, and ``summary`` is a DataFrame.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from siyu.predict.btyd.bgnbd import BetaGeoFitter
from siyu.predict.btyd.clv import customer_lifetime_value
from siyu.predict.btyd.gammagamma import GammaGammaFitter
from siyu.predict.btyd.paretonbd import ParetoNBDFitter
from siyu.predict.btyd.simulate import simulate_bgnbd, simulate_paretonbd, simulate_spend

if TYPE_CHECKING:
    from siyu.registry import Registry

__all__ = [
    "BetaGeoFitter",
    "GammaGammaFitter",
    "ParetoNBDFitter",
    "customer_lifetime_value",
    "register",
    "simulate_bgnbd",
    "simulate_paretonbd",
    "simulate_spend",
]


def register(registry: Registry) -> None:
    """Register the built-in fitters as model fitters (called by siyu.registry.load_builtins)."""
    registry.model_fitters.register("bgnbd", BetaGeoFitter)
    registry.model_fitters.register("paretonbd", ParetoNBDFitter)
    registry.model_fitters.register("gammagamma", GammaGammaFitter)
