"""Benchmark: from a 20M-row transaction log of 1M customers to a 12-month CLV per customer.

Data: 1M customers drawn from a BG/NBD process (r=1.2, alpha=20.5 days, a=1, b=30; first
purchases spread over a year, two years observed) with Gamma-Gamma spend (p=6.25, q=3.74,
gamma=15.44) in cents: about 20 purchases per customer, 20M rows, some on the same day. Built
in bulk with NumPy, written once to Parquet and loaded into the ``orders`` table of a siyu DuckDB
database (cached under ~/.cache/siyu-bench; not timed).

- siyu, end to end: ``siyu.predict.scores.score_customers`` - the calibration summary in SQL
  (DuckDB, same-day purchases as one transaction), BG/NBD and Gamma-Gamma maximum likelihood,
  p_alive, expected orders, expected spend, 12-month CLV and next-order date for every customer,
  written to ``customer_scores``. Then the same steps again one by one, for the breakdown.
- lifetimes 0.11.3, end to end on the same data (read from the Parquet file, reading not
  timed): ``summary_data_from_transaction_data``, ``BetaGeoFitter.fit``, ``GammaGammaFitter.fit``
  and ``customer_lifetime_value(time=12, discount_rate=0.01, freq="D")``.
- Pareto/NBD on the same summary: siyu's fit against lifetimes'.

lifetimes does not import with this project's NumPy/pandas/SciPy, so it runs in its own
virtual environment as a child process (the interpreter from ``--lifetimes-python`` or
``SIYU_LIFETIMES_PYTHON``; default ``/work/lt-venv/bin/python`` if it exists). One-line setup:

    python3 -m venv /work/lt-venv && /work/lt-venv/bin/pip install lifetimes==0.11.3 \
        'pandas<2.2' 'numpy<2' 'scipy<1.14' 'pyarrow<17'

Without it the benchmark says so and prints siyu's figures only. Targets (issue 6): siyu <= 15 s
end to end on 1M customers, >= 5x faster than lifetimes with the same parameters to 1e-3
(relative), Pareto/NBD >= 10x faster.

    python benchmarks/clv.py [--customers 1000000] [--quick] [--skip-pareto]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

TRUE_BGNBD = {"r": 1.2, "alpha": 20.5, "a": 1.0, "b": 30.0}
TRUE_SPEND = {"p": 6.25, "q": 3.74, "gamma": 15.44}
START = date(2023, 7, 1)
HISTORY_DAYS = 730
END = START + timedelta(days=HISTORY_DAYS - 1)  # the last observed day (calibration end)
DEFAULT_LIFETIMES = "/work/lt-venv/bin/python"

LIFETIMES_SCRIPT = r"""
import json, sys, time
import numpy as np
import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter, ParetoNBDFitter
from lifetimes.utils import summary_data_from_transaction_data

path, end, pareto = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
df = pd.read_parquet(path)
out = {"times": {}}
cpu0 = time.process_time()
t = time.perf_counter()
s = summary_data_from_transaction_data(
    df, "customer_id", "date", monetary_value_col="amount", observation_period_end=end, freq="D"
)
out["times"]["summary"] = time.perf_counter() - t
print("STEP summary_data_from_transaction_data %.2f" % out["times"]["summary"], flush=True)
t = time.perf_counter()
bgf = BetaGeoFitter(penalizer_coef=0.0).fit(s["frequency"], s["recency"], s["T"])
out["times"]["BG/NBD fit"] = time.perf_counter() - t
print("STEP BetaGeoFitter.fit %.2f" % out["times"]["BG/NBD fit"], flush=True)
t = time.perf_counter()
rep = s[s["frequency"] > 0]
ggf = GammaGammaFitter(penalizer_coef=0.0).fit(rep["frequency"], rep["monetary_value"])
out["times"]["Gamma-Gamma fit"] = time.perf_counter() - t
print("STEP GammaGammaFitter.fit %.2f" % out["times"]["Gamma-Gamma fit"], flush=True)
t = time.perf_counter()
clv = ggf.customer_lifetime_value(
    bgf, s["frequency"], s["recency"], s["T"], s["monetary_value"],
    time=12, discount_rate=0.01, freq="D",
)
out["times"]["CLV"] = time.perf_counter() - t
print("STEP customer_lifetime_value %.2f" % out["times"]["CLV"], flush=True)
out["end_to_end"] = sum(out["times"].values())
out["end_to_end_cpu"] = time.process_time() - cpu0
import resource
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
out["bgnbd"] = {k: float(v) for k, v in bgf.params_.items()}
out["gammagamma"] = {{"v": "gamma"}.get(k, k): float(v) for k, v in ggf.params_.items()}
out["customers"] = int(len(s))
out["clv_total"] = float(np.sum(clv))
print("PARTIAL " + json.dumps(out), flush=True)
if pareto:
    t, c = time.perf_counter(), time.process_time()
    pnbd = ParetoNBDFitter(penalizer_coef=0.0).fit(s["frequency"], s["recency"], s["T"])
    out["pareto_time"] = time.perf_counter() - t
    out["pareto_cpu"] = time.process_time() - c
    out["paretonbd"] = {k: float(v) for k, v in pnbd.params_.items()}
print("RESULT " + json.dumps(out))
"""


def cache_dir() -> Path:
    root = Path(os.environ.get("SIYU_BENCH_CACHE", Path.home() / ".cache" / "siyu-bench"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def generate(customers: int, seed: int) -> pa.Table:
    """The transaction log (customer_id, date, amount), vectorised: for each customer a Poisson
    number of repeat purchases at uniform times over her observed span, cut at a geometric number
    of purchases (BG/NBD drop-out), plus her first purchase; spend Gamma-Gamma, in cents."""
    rng = np.random.default_rng(seed)
    n = customers
    first = rng.integers(0, 365, n) + rng.random(n)  # day of the first purchase, with time
    span = HISTORY_DAYS - first
    lam = rng.gamma(TRUE_BGNBD["r"], 1.0 / TRUE_BGNBD["alpha"], n)
    p = rng.beta(TRUE_BGNBD["a"], TRUE_BGNBD["b"], n)
    alive_for = rng.geometric(p)  # repeat purchases before dropping out
    drawn = rng.poisson(lam * span)
    owner = np.repeat(np.arange(n), drawn)
    offset = rng.random(owner.size) * span[owner]
    order = np.lexsort((offset, owner))
    owner, offset = owner[order], offset[order]
    starts = np.concatenate(([0], np.cumsum(drawn)[:-1]))
    rank = np.arange(owner.size) - starts[owner]
    keep = rank < alive_for[owner]
    owner = np.concatenate((np.arange(n), owner[keep]))
    when = np.concatenate((first, first[owner[n:]] + offset[keep]))
    nu = rng.gamma(TRUE_SPEND["q"], 1.0 / TRUE_SPEND["gamma"], n)  # rate of each one's spend
    amount = np.round(rng.gamma(TRUE_SPEND["p"], 1.0 / nu[owner]), 2)
    order = np.lexsort((when, owner))
    start_us = np.datetime64(START.isoformat(), "us").astype(np.int64)
    stamps = start_us + (when[order] * 86_400e6).astype(np.int64)
    return pa.table(
        {
            "customer_id": pa.array(owner[order].astype(np.int64)),
            "date": pa.array(stamps, pa.timestamp("us")),
            "amount": pa.array(np.maximum(amount[order], 0.01)),
        }
    )


def build(customers: int, seed: int) -> tuple[Path, Path]:
    """The cached Parquet log and the siyu DuckDB database with it as orders."""
    stem = cache_dir() / f"clv-{customers}-{seed}"
    parquet, database = stem.with_suffix(".parquet"), stem.with_suffix(".duckdb")
    if not parquet.exists():
        start = time.perf_counter()
        log = generate(customers, seed)
        pq.write_table(log, f"{parquet}.partial")
        Path(f"{parquet}.partial").rename(parquet)
        print(f"  generated {log.num_rows:,} rows in {time.perf_counter() - start:.1f} s")
    if not database.exists():
        from siyu.config import load_settings
        from siyu.runtime import Runtime

        start = time.perf_counter()
        partial = Path(f"{database}.partial")
        partial.unlink(missing_ok=True)
        with Runtime(load_settings(database_url=f"duckdb:///{partial}", env="test")) as rt:
            rt.init()
            ws = rt.workspace().workspace_id
            with rt.db.engine.begin() as conn:
                conn.exec_driver_sql(
                    "INSERT INTO orders (workspace_id, order_id, customer_id, user_id, message_id,"
                    " placed_at, currency, total, line_count, base_currency, fx_rate, total_base,"
                    " refunded, refunded_base, status, updated_at) SELECT"
                    f" '{ws}', 'o' || n, 'c' || customer_id, 'u' || customer_id, 'm' || n,"
                    " date, 'USD', amount, 1, 'USD', 1, amount, 0, 0, 'completed', date"
                    f" FROM (SELECT *, row_number() OVER () AS n FROM read_parquet('{parquet}'))"
                )
        partial.rename(database)
        print(f"  loaded into a siyu DuckDB database in {time.perf_counter() - start:.1f} s")
    return parquet, database


def _timed(label: str, fn: Any, times: dict[str, float]) -> Any:
    """Run fn; record wall time under ``label`` and this process's CPU time (all its threads,
    DuckDB's included) under ``label + " cpu"``: on a shared machine the CPU time is the figure
    other load does not inflate."""
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    times[label] = time.perf_counter() - start
    times[label + " cpu"] = time.process_time() - cpu
    print(
        f"    {label:<52} {times[label]:7.2f} s wall {times[label + ' cpu']:7.2f} s cpu", flush=True
    )
    return out


def child_siyu(database: Path, pareto: bool) -> dict[str, Any]:
    """siyu end to end (score_customers), then the same steps one by one."""
    import resource

    from siyu.compute import tables
    from siyu.config import load_settings
    from siyu.predict.btyd import (
        BetaGeoFitter,
        GammaGammaFitter,
        ParetoNBDFitter,
        customer_lifetime_value,
    )
    from siyu.predict.btyd.batch import predict_customers
    from siyu.predict.scores import Minimums, score_customers
    from siyu.predict.store_scores import CLV_COLUMNS, write_family
    from siyu.predict.store_summary import calibration_summary_arrow
    from siyu.runtime import Runtime

    as_of = datetime.combine(END, datetime.max.time()).replace(microsecond=0)
    out: dict[str, Any] = {}
    with Runtime(load_settings(database_url=f"duckdb:///{database}", env="test")) as rt:
        rt.init()  # a database cached by an older siyu gets the current schema (not timed)
        ws = rt.workspace()
        # Imports are not timed on either side (the lifetimes script imports lifetimes, pandas
        # and SciPy before its clock starts): Ibis loads its DuckDB backend, and with it every
        # SQL dialect of sqlglot, on first use, about 0.5 s CPU.
        rt.db.ibis()
        with rt.db.engine.connect() as conn:
            out["stored_before"] = conn.exec_driver_sql(
                "SELECT count(*) FROM customer_scores"
            ).scalar()
        times: dict[str, float] = {}
        print(
            f"  siyu end to end (siyu.predict.scores.score_customers; "
            f"{out['stored_before']:,} scores stored before):",
            flush=True,
        )
        report = _timed(
            "summary SQL + fits + predictions + stored scores",
            lambda: score_customers(rt.db, ws, as_of=as_of, minimums=Minimums()),
            times,
        )
        out["end_to_end"] = times.pop("summary SQL + fits + predictions + stored scores")
        out["end_to_end_cpu"] = times.pop("summary SQL + fits + predictions + stored scores cpu")
        out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out["bgnbd"] = report.purchase_params
        out["gammagamma"] = report.spend_params
        out["clv_total"] = report.total_clv_12m
        out["customers"] = report.customers
        print("  the same steps one by one:", flush=True)
        t = tables(rt.db, ws.workspace_id)
        summary = _timed(
            "calibration summary (DuckDB SQL, to Arrow)",
            lambda: calibration_summary_arrow(t, calibration_end=END, time_unit="D"),
            times,
        )
        x, t_x, big_t, m = (
            summary[c].to_numpy().astype(np.float64)
            for c in ("frequency", "recency", "T", "monetary_value")
        )
        bg = _timed("BG/NBD fit", lambda: BetaGeoFitter().fit(x, t_x, big_t), times)
        rep = x > 0
        gg = _timed("Gamma-Gamma fit", lambda: GammaGammaFitter().fit(x[rep], m[rep]), times)
        _timed(
            "12-month CLV alone (customer_lifetime_value)",
            lambda: customer_lifetime_value(
                bg, gg, x, t_x, big_t, m, months=12, discount_rate=0.01, time_unit="D"
            ),
            times,
        )
        predicted = _timed(
            "all predictions (p_alive, orders, value, CLV, next)",
            lambda: predict_customers(
                bg,
                gg,
                x,
                t_x,
                big_t,
                np.where(rep, m, 0.0),
                horizon=365.25,
                time_unit="D",
                next_purchase_within=1096.0,
            ),
            times,
        )
        n = summary.num_rows
        when = pa.scalar(as_of, pa.timestamp("us"))
        next_days = np.ceil(predicted.time_to_next_purchase)
        data = pa.table(
            {
                "customer_id": summary["customer_id"],
                "model_version": pa.repeat(pa.scalar("benchmark", pa.string()), n),
                "as_of": pa.repeat(when, n),
                "scored_at": pa.repeat(when, n),
                "p_alive": predicted.p_alive,
                "expected_orders_12m": predicted.expected_purchases,
                "expected_order_value": predicted.expected_spend,
                "clv_12m": predicted.clv,
                "expected_next_order_at": pa.array(
                    np.datetime64(END, "us")
                    + (np.nan_to_num(next_days) * 86_400e6).astype("timedelta64[us]"),
                    pa.timestamp("us"),
                    mask=np.isnan(next_days),
                ),
            }
        )

        def write() -> None:
            with rt.db.write_lock, rt.db.engine.begin() as conn:
                write_family(conn, ws.workspace_id, CLV_COLUMNS, data)

        _timed("write the scores again (customer_scores)", write, times)
        out["steps"] = times
        out["distinct_rows"] = bg.result.n_rows
        if pareto:
            pt: dict[str, float] = {}
            pnbd = _timed("Pareto/NBD fit", lambda: ParetoNBDFitter().fit(x, t_x, big_t), pt)
            out["pareto_time"] = pt["Pareto/NBD fit"]
            out["pareto_cpu"] = pt["Pareto/NBD fit cpu"]
            out["paretonbd"] = pnbd.params_
            out["pareto_rows"] = pnbd.result.n_rows
    return out


def run_lifetimes(
    python: str, parquet: Path, pareto: bool, ours: dict[str, Any]
) -> dict[str, Any] | None:
    """lifetimes in its own interpreter; None (with the reason printed) when unavailable."""
    if not (Path(python).exists() or shutil.which(python)):
        print(f"  lifetimes baseline UNAVAILABLE: no interpreter at {python}.")
        print("  Set SIYU_LIFETIMES_PYTHON or --lifetimes-python (setup: see this file's doc).")
        return None
    proc = subprocess.Popen(
        [python, "-c", LIFETIMES_SCRIPT, str(parquet), END.isoformat(), "1" if pareto else "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Steps are printed as they finish: at 1M customers lifetimes runs for minutes.
    result: dict[str, Any] | None = None
    assert proc.stdout is not None
    for line in proc.stdout:
        kind, _, rest = line.rstrip("\n").partition(" ")
        if kind == "STEP":
            label, _, seconds = rest.rpartition(" ")
            print(f"    {label:<52} {float(seconds):7.2f} s wall", flush=True)
        elif kind == "PARTIAL":
            result = json.loads(rest)
            print(
                f"    {'end to end':<52} {result['end_to_end']:7.2f} s wall "
                f"{result['end_to_end_cpu']:7.2f} s cpu",
                flush=True,
            )
            # Compared now: the Pareto/NBD fit that follows takes minutes at 1M.
            compare("BG/NBD", ours["bgnbd"], result["bgnbd"])
            compare("Gamma-Gamma", ours["gammagamma"], result["gammagamma"])
        elif kind == "RESULT":
            result = json.loads(rest)
    _, err = proc.communicate()
    if result is None:
        tail = (err.strip().splitlines() or ["(no output)"])[-1]
        print(f"  lifetimes baseline UNAVAILABLE: {python} failed: {tail}")
        return None
    return result


def compare(name: str, ours: dict[str, float], theirs: dict[str, float]) -> float:
    """Print both parameter sets and return the largest relative difference."""
    worst = max(abs(ours[k] - theirs[k]) / abs(theirs[k]) for k in theirs)
    cells = ", ".join(f"{k}={ours[k]:.4f}/{theirs[k]:.4f}" for k in theirs)
    print(f"  {name} siyu/lifetimes: {cells}; largest relative difference {worst:.1e}")
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--quick", action="store_true", help="100,000 customers (~2M rows)")
    parser.add_argument("--skip-pareto", action="store_true")
    parser.add_argument("--skip-lifetimes", action="store_true", help="siyu's figures only")
    parser.add_argument(
        "--lifetimes-python",
        default=os.environ.get("SIYU_LIFETIMES_PYTHON", DEFAULT_LIFETIMES),
        help="Python of a virtualenv with lifetimes 0.11.3 (env SIYU_LIFETIMES_PYTHON)",
    )
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = child_siyu(Path(args.child[0]), args.child[1] == "1")
        print("RESULT " + json.dumps(result), flush=True)
        return
    customers = 100_000 if args.quick else args.customers
    pareto = not args.skip_pareto
    print(f"CLV benchmark: {customers:,} customers, seed {args.seed}")
    parquet, database = build(customers, args.seed)
    rows = pq.ParquetFile(parquet).metadata.num_rows
    print(f"  transaction log: {rows:,} rows ({parquet})")

    print("siyu (DuckDB):", flush=True)
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(database), "1" if pareto else "0"],
        capture_output=True,
        text=True,
        check=True,
    )
    for line in proc.stdout.splitlines():
        if not line.startswith("RESULT "):
            print(line)
    ours: dict[str, Any] = json.loads(proc.stdout.splitlines()[-1][len("RESULT ") :])
    print("lifetimes 0.11.3:", flush=True)
    theirs = (
        None if args.skip_lifetimes else run_lifetimes(args.lifetimes_python, parquet, pareto, ours)
    )

    print("results:")
    e2e = ours["end_to_end"]
    met = "met" if e2e <= 15 else "NOT met"
    print(
        f"  siyu end to end: {e2e:.2f} s wall, {ours['end_to_end_cpu']:.2f} s cpu for "
        f"{ours['customers']:,} customers "
        f"(target <= 15 s at 1M: {met if customers >= 1_000_000 else 'n/a below 1M'}); "
        f"BG/NBD fitted on {ours['distinct_rows']:,} distinct (x, t_x, T) rows; "
        f"peak RSS {ours['peak_rss_mb']:,.0f} MB"
    )
    if theirs is None:
        print("  no lifetimes comparison (baseline unavailable)")
        return
    ratio = theirs["end_to_end"] / e2e
    cpu_ratio = theirs["end_to_end_cpu"] / ours["end_to_end_cpu"]
    print(
        f"  lifetimes end to end: {theirs['end_to_end']:.2f} s wall, "
        f"{theirs['end_to_end_cpu']:.2f} s cpu, peak RSS {theirs['peak_rss_mb']:,.0f} MB "
        f"(with the log read from Parquet); siyu {e2e:.2f} s wall, "
        f"{ours['end_to_end_cpu']:.2f} s cpu: siyu is {ratio:.1f}x faster in wall time, "
        f"{cpu_ratio:.1f}x in CPU time (target >= 5x: {'met' if ratio >= 5 else 'NOT met'})"
    )
    same = max(
        compare("BG/NBD", ours["bgnbd"], theirs["bgnbd"]),
        compare("Gamma-Gamma", ours["gammagamma"], theirs["gammagamma"]),
    )
    print(f"  same parameters to 1e-3: {'yes' if same <= 1e-3 else 'NO'} ({same:.1e})")
    print(
        f"  total 12-month CLV: siyu {ours['clv_total']:,.0f}, lifetimes "
        f"{theirs['clv_total']:,.0f} (siyu's month is 30.44 days, lifetimes' 30)"
    )
    if pareto and "paretonbd" in theirs:
        p_ratio = theirs["pareto_time"] / ours["pareto_time"]
        p_cpu = theirs["pareto_cpu"] / ours["pareto_cpu"]
        print(
            f"  Pareto/NBD fit: siyu {ours['pareto_time']:.2f} s wall {ours['pareto_cpu']:.2f} s "
            f"cpu ({ours['pareto_rows']:,} distinct rows), lifetimes {theirs['pareto_time']:.2f} s "
            f"wall {theirs['pareto_cpu']:.2f} s cpu: {p_ratio:.1f}x wall, {p_cpu:.1f}x cpu "
            f"(target >= 10x: {'met' if p_ratio >= 10 else 'NOT met'})"
        )
        compare("Pareto/NBD", ours["paretonbd"], theirs["paretonbd"])


if __name__ == "__main__":
    main()
