"""Benchmark: points ledger postings on PostgreSQL and fission metrics for 1M customers on DuckDB.

Part 1, ledger (PostgreSQL): siyu's bulk paths - ``earn_many`` (lots credited in one Arrow
``COPY`` + set-based insert) and ``reverse`` (FIFO claw-back of many customers under their
account locks, the path of refunds) - against the naive baseline, one posting per transaction
through SQLAlchemy (a plain INSERT and COMMIT per posting), measured in the same run. The
request path (``ledger.earn`` / ``ledger.redeem``, one posting per call with idempotency check,
account lock and FIFO) is timed too. Target: >= 5,000 postings/s.

Part 2, fission metrics (DuckDB): a brand of ``--customers`` customers is written straight
from NumPy/Arrow into the tables the metrics read (orders, Referral Link Shared/Clicked events,
referral codes, referrals, predicted CLV) - not through the pipeline, which would take far
longer than what is measured - then ``fission_metrics`` runs over three months. The baseline is
the naive approach in the same run: read the same tables into pandas and compute the same
definitions there; both answers must agree. Target: 1M customers in <= 15 s.

    python benchmarks/loyalty.py [--customers 1000000] [--postings 100000] [--quick]
                                 [--skip-ledger] [--skip-metrics]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from siyu.config import load_settings
from siyu.fission.metrics import FissionMetrics, fission_metrics
from siyu.loyalty import ledger
from siyu.loyalty.tables import points_ledger
from siyu.runtime import Runtime

if not __package__:  # run as a script: make `benchmarks._common` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

R = TypeVar("R")
NOW = datetime(2025, 7, 1)
YEAR = datetime(2025, 1, 1)
SINCE, UNTIL = datetime(2025, 3, 1), datetime(2025, 6, 1)


def timed(label: str, fn: Callable[[], R]) -> tuple[R, float]:
    start = time.perf_counter()
    out = fn()
    wall = time.perf_counter() - start
    print(f"  {label:<58} {wall:8.3f} s")
    return out, wall


def rate(label: str, n: int, seconds: float, baseline: float | None = None) -> float:
    per_s = n / seconds if seconds else float("inf")
    ratio = f"  ({per_s / baseline:6.1f}x the baseline)" if baseline else ""
    print(f"  => {label:<55} {per_s:12,.0f} postings/s{ratio}")
    return per_s


# -- part 1: the ledger on PostgreSQL --------------------------------------------------------


def bench_ledger(postings: int, sample: int) -> None:
    from benchmarks._common import pg_schema

    with pg_schema() as url, Runtime(load_settings(database_url=url)) as rt:
        rt.init()
        ws = rt.workspace().workspace_id
        db = rt.db
        print(f"ledger on PostgreSQL: {postings:,} bulk postings, {sample:,} one by one")

        # Baseline: one posting per transaction through SQLAlchemy, nothing else.
        def naive() -> None:
            for i in range(sample):
                with db.engine.begin() as conn:
                    conn.execute(
                        points_ledger.insert().values(
                            workspace_id=ws,
                            idempotency_key=f"naive:{i}",
                            line_no=0,
                            customer_id=f"cus_naive_{i % 1000}",
                            kind="earn",
                            amount=10,
                            contra_account="issued:manual",
                            lot_id=f"naive:{i}",
                            expires_at=NOW + timedelta(days=365),
                            reason="manual",
                            shortfall=0,
                            created_at=NOW,
                        )
                    )

        _, t = timed(f"baseline: {sample:,} INSERT + COMMIT", naive)
        base = rate("baseline (one posting per transaction)", sample, t)

        def one_by_one_earn() -> None:
            for i in range(sample):
                ledger.earn(
                    db, ws, f"cus_req_{i % 500}", 10, key=f"req:{i}", reason="manual", now=NOW
                )

        _, t = timed(f"siyu ledger.earn, {sample:,} requests", one_by_one_earn)
        rate("siyu request path: earn (check + lot)", sample, t, base)

        def one_by_one_redeem() -> None:
            for i in range(sample):
                ledger.redeem(db, ws, f"cus_req_{i % 500}", 3, key=f"spend:{i}", now=NOW)

        _, t = timed(f"siyu ledger.redeem, {sample:,} requests", one_by_one_redeem)
        rate("siyu request path: redeem (lock + FIFO)", sample, t, base)

        customers = max(postings // 4, 1)
        credits = pd.DataFrame(
            {
                "customer_id": [f"cus_{i % customers:08d}" for i in range(postings)],
                "points": np.full(postings, 100, dtype="int64"),
                "key": [f"bulk:{i}" for i in range(postings)],
                "reference": None,
                "expires_at": NOW + timedelta(days=365),
            }
        )

        def bulk_earn() -> None:
            with db.engine.begin() as conn:
                ledger.ensure_accounts(conn, ws, credits["customer_id"].unique().tolist())
                ledger.earn_many(conn, ws, credits, reason="order", now=NOW)

        _, t = timed(f"siyu earn_many, {postings:,} lots", bulk_earn)
        rate("siyu bulk: earn_many", postings, t, base)

        # Each customer has 4 lots of 100; a claw-back of 250 takes 3 lots (FIFO).
        demands = pd.DataFrame(
            {
                "customer_id": [f"cus_{i:08d}" for i in range(customers)],
                "key": [f"rev:{i}" for i in range(customers)],
                "want": np.full(customers, 250, dtype="int64"),
                "preferred_lot": "",
                "reference": "bench",
            }
        )
        posted, t = timed(
            f"siyu reverse, {customers:,} customers (FIFO)",
            lambda: ledger.reverse(db, ws, demands, now=NOW),
        )
        assert posted == customers, posted
        rate("siyu bulk: reverse (locked FIFO claw-back)", customers, t, base)
        with db.engine.connect() as conn:
            left = ledger.balances(conn, ws, ["cus_00000000"])["cus_00000000"]
        assert left == 150, left


# -- part 2: fission metrics on DuckDB ---------------------------------------------------------


def _ids(prefix: str, numbers: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(numbers), pa.string()), "")


def _ts(seconds: np.ndarray) -> pa.Array:
    base = np.datetime64(YEAR, "us")
    return pa.array(base + (seconds * 1e6).astype("timedelta64[us]"))


def build_brand(ws: str, customers: int, seed: int) -> dict[str, pa.Table]:
    """The tables the metrics read, for workspace ``ws`` (vectorised, deterministic)."""
    rng = np.random.default_rng(seed)
    year = 365 * 86400
    ids = np.arange(customers)
    buyers = ids[rng.random(customers) < 0.8]
    first = rng.integers(0, year, buyers.size)
    extra = rng.poisson(0.6, buyers.size)
    rep_cust = np.repeat(buyers, extra)
    rep_at = np.repeat(first, extra) + rng.integers(3600, 120 * 86400, rep_cust.size)
    o_cust = np.concatenate([buyers, rep_cust])
    o_at = np.concatenate([first, rep_at])
    n_orders = o_cust.size
    totals = np.round(rng.lognormal(3.5, 0.6, n_orders), 2)
    orders = pa.table(
        {
            "workspace_id": pa.array([ws] * n_orders),
            "order_id": _ids("o", np.arange(n_orders)),
            "customer_id": _ids("c", o_cust),
            "message_id": _ids("m", np.arange(n_orders)),
            "placed_at": _ts(o_at),
            "currency": pa.array(["USD"] * n_orders),
            "total": pa.array(totals),
            "line_count": pa.array(np.ones(n_orders, dtype="int32")),
            "base_currency": pa.array(["USD"] * n_orders),
            "refunded": pa.array(np.zeros(n_orders)),
            "status": pa.array(["completed"] * n_orders),
            "updated_at": _ts(o_at),
        }
    )
    # Sharers: 10% of customers hold a code; shares Poisson(3)+1 each, clicks Poisson(2)/share.
    sharers = ids[rng.random(customers) < 0.1]
    codes = pa.table(
        {
            "workspace_id": pa.array([ws] * sharers.size),
            "code": _ids("K", sharers),
            "customer_id": _ids("c", sharers),
            "created_at": _ts(np.zeros(sharers.size, dtype="int64")),
        }
    )
    shares = rng.poisson(3, sharers.size) + 1
    s_who = np.repeat(sharers, shares)
    s_at = rng.integers(0, year, s_who.size)
    clicks = rng.poisson(2, s_who.size)
    c_who = np.repeat(s_who, clicks)
    c_at = np.repeat(s_at, clicks) + rng.integers(60, 3 * 86400, c_who.size)
    e_who = np.concatenate([s_who, c_who])
    n_ev = e_who.size
    props = pc.binary_join_element_wise(
        '{"referral_code": "', _ids("K", e_who), '", "channel": "whatsapp"}', ""
    )
    is_share = np.arange(n_ev) < s_who.size
    events = pa.table(
        {
            "workspace_id": pa.array([ws] * n_ev),
            "message_id": _ids("e", np.arange(n_ev)),
            "type": pa.array(["track"] * n_ev),
            "event": pa.array(
                np.where(is_share, "Referral Link Shared", "Referral Link Clicked").tolist()
            ),
            "customer_id": pc.if_else(
                pa.array(is_share), _ids("c", e_who), pa.scalar(None, pa.string())
            ),
            "timestamp": _ts(np.concatenate([s_at, c_at])),
            "received_at": _ts(np.concatenate([s_at, c_at])),
            "properties": props,
        }
    )
    # Referrals: 8% of buyers are friends of a random sharer, created an hour before their first
    # order; 60% rewarded, 20% qualified, 15% rejected, 5% pending.
    pick = rng.random(buyers.size) < 0.08
    friends, f_first = buyers[pick], first[pick]
    referrer = sharers[rng.integers(0, sharers.size, friends.size)]
    keep = referrer != friends
    friends, f_first, referrer = friends[keep], f_first[keep], referrer[keep]
    n_ref = friends.size
    u = rng.random(n_ref)
    state = np.select(
        [u < 0.6, u < 0.8, u < 0.95], ["rewarded", "qualified", "rejected"], "pending"
    )
    ok = (state == "rewarded") | (state == "qualified")
    f_tot = totals[: buyers.size][pick][keep]
    null_ts = pa.scalar(None, pa.timestamp("us"))
    referrals = pa.table(
        {
            "workspace_id": pa.array([ws] * n_ref),
            "referral_id": _ids("r", np.arange(n_ref)),
            "code": _ids("K", referrer),
            "referrer_id": _ids("c", referrer),
            "friend_id": _ids("c", friends),
            "friend_key": _ids("c", friends),
            "state": pa.array(state.tolist()),
            "created_at": _ts(f_first - 3600),
            "order_placed_at": pc.if_else(pa.array(ok), _ts(f_first), null_ts),
            "order_total": pa.array(np.where(ok, f_tot, np.nan), from_pandas=True),
            "fx_rate": pa.array(np.where(ok, 1.0, np.nan), from_pandas=True),
            "qualified_at": pc.if_else(pa.array(ok), _ts(f_first + 86400), null_ts),
            "rewarded_at": pc.if_else(
                pa.array(state == "rewarded"), _ts(f_first + 31 * 86400), null_ts
            ),
            "reward_cost_base": pa.array(
                np.where(state == "rewarded", 40.0, np.nan), from_pandas=True
            ),
            "updated_at": _ts(f_first),
        }
    )
    scores = pa.table(
        {
            "workspace_id": pa.array([ws] * buyers.size),
            "customer_id": _ids("c", buyers),
            "clv_12m": pa.array(np.round(rng.lognormal(4.0, 0.8, buyers.size), 2)),
        }
    )
    return {
        "orders": orders,
        "events": events,
        "referral_codes": codes,
        "referrals": referrals,
        "customer_scores": scores,
    }


def load_brand(rt: Runtime, tables: dict[str, pa.Table]) -> None:
    cur = rt.db.duckdb_cursor()
    for name, data in tables.items():
        cur.register("stage", data)
        cols = ", ".join(data.column_names)
        cur.execute(f"INSERT INTO {name} ({cols}) SELECT {cols} FROM stage")
        cur.unregister("stage")
    cur.close()


def pandas_metrics(rt: Runtime, ws: str, top: int) -> dict[str, Any]:
    """The naive baseline: the same definitions over tables read into pandas."""
    cur = rt.db.duckdb_cursor()

    def read(sql: str) -> pd.DataFrame:
        return cur.execute(sql, [ws]).df()

    ev = read("SELECT event, customer_id, timestamp, properties FROM events WHERE workspace_id = ?")
    orders = read("SELECT customer_id, placed_at FROM orders WHERE workspace_id = ?")
    refs = read("SELECT * FROM referrals WHERE workspace_id = ?")
    codes = read("SELECT code, customer_id FROM referral_codes WHERE workspace_id = ?")
    scores = read("SELECT customer_id, clv_12m FROM customer_scores WHERE workspace_id = ?")
    cur.close()
    since, until = pd.Timestamp(SINCE), pd.Timestamp(UNTIL)
    ev = ev[(ev["timestamp"] >= since) & (ev["timestamp"] < until)]
    shared = ev[ev["event"] == "Referral Link Shared"]
    clicked = ev[ev["event"] == "Referral Link Clicked"]
    in_range = refs["order_placed_at"].between(since, until, inclusive="left")
    converted = refs["state"].isin(["qualified", "rewarded"]) & in_range
    created = refs["created_at"].between(since, until, inclusive="left")
    rewarded = refs["rewarded_at"].between(since, until, inclusive="left")
    active = orders.loc[orders["placed_at"].between(since, until, inclusive="left"), "customer_id"]
    firsts = orders.groupby("customer_id")["placed_at"].min()
    cohort = firsts[(firsts >= since) & (firsts < until)]
    joined = orders.merge(cohort.rename("first_at").reset_index(), on="customer_id", how="inner")
    early = joined[joined["placed_at"] <= joined["first_at"] + pd.Timedelta(days=30)]
    n30 = early.groupby("customer_id").size()
    friends = set(refs.loc[refs["state"].isin(["qualified", "rewarded"]), "friend_id"])
    frame = pd.DataFrame({"customer_id": cohort.index})
    frame["referred"] = frame["customer_id"].isin(friends)
    frame["retained"] = frame["customer_id"].map(n30).fillna(0) >= 2
    frame = frame.merge(scores, on="customer_id", how="left")
    referred = frame["referred"].to_numpy(dtype=bool)
    code = (
        shared["properties"].str.extract(r'"referral_code": "([^"]*)"')[0],
        clicked["properties"].str.extract(r'"referral_code": "([^"]*)"')[0],
    )
    owner = codes.set_index("code")["customer_id"]
    per_share = pd.Series(code[0].map(owner).fillna(shared["customer_id"]).values)
    per_click = pd.Series(code[1].map(owner).values)
    koc = pd.DataFrame(
        {"shares": per_share.value_counts(), "visits": per_click.value_counts()}
    ).fillna(0)
    ref_in = refs[created | in_range].copy()
    ref_in["created_n"] = created[created | in_range].astype(int)
    ref_in["conv_n"] = converted[created | in_range].astype(int)
    ref_in["rev"] = (ref_in["order_total"] * ref_in["fx_rate"]).fillna(0) * ref_in["conv_n"]
    by_ref = ref_in.groupby("referrer_id")[["created_n", "conv_n", "rev"]].sum()
    koc = koc.join(by_ref, how="outer").fillna(0)
    koc = koc.reset_index(names="customer_id").sort_values(
        ["conv_n", "created_n", "shares", "customer_id"], ascending=[False, False, False, True]
    )
    return {
        "invites_sent": len(shared),
        "visits": len(clicked),
        "referred_customers": int(converted.sum()),
        "referrals_created": int(created.sum()),
        "active_customers": int(active.nunique()),
        "reward_cost_base": float(refs.loc[rewarded, "reward_cost_base"].fillna(0).sum()),
        "referred_retained": int(frame.loc[referred, "retained"].sum()),
        "organic_customers": int((~referred).sum()),
        "organic_clv": float(frame.loc[~referred, "clv_12m"].mean()),
        "top": koc["customer_id"].head(top).tolist(),
    }


def bench_metrics(customers: int, seed: int) -> None:
    with ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        url = f"duckdb:///{tmp}/loyalty.duckdb"
        rt = stack.enter_context(Runtime(load_settings(database_url=url)))
        rt.init()
        ws = rt.workspace().workspace_id
        print(f"fission metrics on DuckDB: {customers:,} customers (seed {seed})")
        tables, _ = timed(
            "build the brand with NumPy/Arrow (not measured)",
            lambda: build_brand(ws, customers, seed),
        )
        sizes = ", ".join(f"{k} {v.num_rows:,}" for k, v in tables.items())
        print(f"  rows: {sizes}")
        timed("load into DuckDB (not measured)", lambda: load_brand(rt, tables))
        m, t_siyu = timed(
            "siyu fission_metrics, 3 months, top 10",
            lambda: fission_metrics(rt.db, ws, SINCE, UNTIL, top=10),
        )
        ref, t_base = timed(
            "baseline: the same in pandas (read + compute)", lambda: pandas_metrics(rt, ws, 10)
        )
        _agree(m, ref)
        print(
            f"  => fission metrics for {customers:,} customers: {t_siyu:.2f} s (target <= 15 s); "
            f"baseline {t_base:.2f} s; {t_base / t_siyu:.1f}x faster; answers agree"
        )
        print(
            f"     invites {m.invites_sent:,}, visits/share {m.fission_coefficient:.2f}, "
            f"conversion {m.invite_conversion:.3f}, K {m.k_factor:.3f}, retention referred "
            f"{m.referred.retention_30d:.3f} vs organic {m.organic.retention_30d:.3f}"
        )


def _agree(m: FissionMetrics, ref: dict[str, Any]) -> None:
    got = {
        "invites_sent": m.invites_sent,
        "visits": m.visits,
        "referred_customers": m.referred_customers,
        "referrals_created": m.referrals_created,
        "active_customers": m.active_customers,
        "reward_cost_base": round(m.reward_cost_base, 2),
        "referred_retained": m.referred.retained_30d,
        "organic_customers": m.organic.customers,
        "organic_clv": round(m.organic.avg_clv_12m or 0, 4),
        "top": [i.customer_id for i in m.top_inviters],
    }
    want = {**ref, "reward_cost_base": round(ref["reward_cost_base"], 2)}
    want["organic_clv"] = round(ref["organic_clv"], 4)
    if got != want:
        raise SystemExit(f"siyu and the baseline disagree:\n  siyu     {got}\n  baseline {want}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--postings", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=500, help="one-by-one postings timed")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--quick", action="store_true", help="50k customers, 10k postings")
    parser.add_argument("--skip-ledger", action="store_true")
    parser.add_argument("--skip-metrics", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.customers, args.postings, args.sample = 50_000, 10_000, 200
    os.environ.setdefault("SIYU_ENV", "test")
    if not args.skip_ledger:
        bench_ledger(args.postings, args.sample)
    if not args.skip_metrics:
        bench_metrics(args.customers, args.seed)


if __name__ == "__main__":
    main()
