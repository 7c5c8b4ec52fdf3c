"""Benchmark: fit and predict the buy-till-you-die models on 1M simulated customers.

Customers are drawn from the models themselves (siyu.predict.btyd.simulate) with the published
CDNOW parameters, first purchases spread evenly over 78 weeks, purchases recorded on whole days
and time measured in weeks: the shape of a real export. Prints wall time per step, the fitted
parameters against the true ones (in standard errors), and the number of distinct rows the fit
actually works on after compression.

    python benchmarks/clv_models.py [--customers 1000000] [--seed 2005]

There is no lifetimes baseline (it is not a dependency); the "distinct rows" line shows how
much of the speed comes from compression rather than from the likelihood code.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from siyu.predict.btyd import (
    BetaGeoFitter,
    GammaGammaFitter,
    ParetoNBDFitter,
    customer_lifetime_value,
    simulate_bgnbd,
    simulate_paretonbd,
    simulate_spend,
)
from siyu.predict.btyd.base import BaseFitter

BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PARETO = {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}
SPEND = {"p": 6.25, "q": 3.74, "gamma": 15.44}

R = TypeVar("R")


def timed(label: str, fn: Callable[[], R]) -> R:
    """Run fn, print wall time and this process's CPU time (which other load does not inflate)."""
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"  {label:<44} {wall:6.2f} s wall {cpu:6.2f} s cpu")
    return out


def report(model: BaseFitter, truth: dict[str, float]) -> None:
    se = model.standard_errors_
    cells = [
        f"{k}={v:.4f} (true {truth[k]}, {(v - truth[k]) / se[k]:+.1f} se)"
        for k, v in model.params_.items()
    ]
    print("    " + ", ".join(cells))
    print(f"    distinct rows fitted: {model.result.n_rows:,} of {model.n_customers_:,.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=2005)
    args = parser.parse_args()
    n = args.customers
    rng = np.random.default_rng(args.seed)
    day = 1.0 / 7.0
    t_end = rng.integers(1, 78 * 7, n, endpoint=True) * day
    print(f"{n:,} simulated customers, weeks, day resolution (seed {args.seed})")

    bg_data = simulate_bgnbd(rng, t_end, **BGNBD, resolution=day)
    pnbd_data = simulate_paretonbd(rng, t_end, **PARETO, resolution=day)
    repeat = bg_data[bg_data["frequency"] > 0]
    spend = np.zeros(n)
    spend[bg_data["frequency"].to_numpy() > 0] = simulate_spend(rng, repeat["frequency"], **SPEND)
    # Spend is recorded in cents, which is what makes equal averages repeat in real data.
    spend = np.round(spend, 2)
    x, t_x, big_t = (bg_data[c].to_numpy() for c in ("frequency", "recency", "T"))

    print("fit")
    bg = timed("BG/NBD", lambda: BetaGeoFitter().fit(x, t_x, big_t))
    report(bg, BGNBD)
    pnbd = timed(
        "Pareto/NBD",
        lambda: ParetoNBDFitter().fit(pnbd_data["frequency"], pnbd_data["recency"], pnbd_data["T"]),
    )
    report(pnbd, PARETO)
    is_repeat = x > 0
    gg = timed(
        f"Gamma-Gamma ({int(is_repeat.sum()):,} repeat buyers)",
        lambda: GammaGammaFitter().fit(x[is_repeat], spend[is_repeat]),
    )
    report(gg, SPEND)

    print(f"predict ({n:,} customers)")
    timed("BG/NBD P(alive)", lambda: bg.conditional_probability_alive(x, t_x, big_t))
    timed(
        "BG/NBD E[purchases in 39 weeks]",
        lambda: bg.conditional_expected_purchases(39.0, x, t_x, big_t),
    )
    timed("Pareto/NBD P(alive)", lambda: pnbd.conditional_probability_alive(x, t_x, big_t))
    timed(
        "Pareto/NBD E[purchases in 39 weeks]",
        lambda: pnbd.conditional_expected_purchases(39.0, x, t_x, big_t),
    )
    timed("Gamma-Gamma E[spend]", lambda: gg.conditional_expected_average_profit(x, spend))
    clv = timed(
        "CLV, 12 months, BG/NBD x Gamma-Gamma",
        lambda: customer_lifetime_value(bg, gg, x, t_x, big_t, spend, months=12),
    )
    print(f"    mean 12-month CLV ${clv.mean():.2f}, total ${clv.sum():,.0f}")


if __name__ == "__main__":
    main()
