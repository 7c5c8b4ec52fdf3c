"""Benchmark: referral qualification (``process_referrals``) on DuckDB and PostgreSQL.

A brand of ``--referrals`` referred friends (each with a device fingerprint and one first order
from its own IP) plus one inviter is loaded through the ingestion pipeline; then one run of the
referral rules qualifies them all (candidates, fingerprints, bursts, state updates, state log).
siyu moves many referrals in one staged, set-based UPDATE and one Arrow insert of the state log.
The baseline, measured in the same run on a fresh database of ``--baseline`` referrals, is the
per-row path (one UPDATE and one INSERT per referral, as before the bulk path), selected by
raising the module's bulk threshold. Reported: referrals per second and the ratio. On
PostgreSQL the tables are analysed after the load (as autovacuum does), since a plan made
without statistics nests loops over the whole load.

    python benchmarks/fission.py [--referrals 10000] [--baseline 1000] [--quick]
                                 [--engine duckdb|postgres|both]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

import siyu.fission.qualify as qualify
from siyu.collect.rows import customer_key
from siyu.config import load_settings
from siyu.fission.tables import referral_codes, referrals
from siyu.runtime import Runtime

if not __package__:  # run as a script: make `benchmarks._common` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import pg_schema

T0 = datetime(2026, 3, 2, 9)


@contextmanager
def database(engine: str) -> Iterator[str]:
    if engine == "postgres":
        with pg_schema() as url:
            yield url
    else:
        with tempfile.TemporaryDirectory() as tmp:
            yield f"duckdb:///{tmp}/bench.duckdb"


def load(rt: Runtime, n: int) -> str:
    """n friends with one first order each, n pending referrals of one inviter; the workspace."""
    ws = rt.workspace().workspace_id
    stamp = T0.isoformat() + "Z"
    messages: list[dict[str, Any]] = [
        {
            "type": "identify",
            "userId": "koc",
            "messageId": "id-koc",
            "timestamp": stamp,
            "traits": {"email": "koc@example.com"},
        }
    ]
    for i in range(n):
        messages.append(
            {
                "type": "identify",
                "userId": f"u{i}",
                "messageId": f"id-{i}",
                "timestamp": stamp,
                "traits": {"email": f"u{i}@example.com"},
                "context": {"device": {"id": f"device-{i}"}},
            }
        )
        messages.append(
            {
                "type": "track",
                "event": "Order Completed",
                "userId": f"u{i}",
                "messageId": f"oc-{i}",
                "timestamp": (T0 + timedelta(days=1)).isoformat() + "Z",
                "properties": {"order_id": f"o{i}", "total": 50, "currency": "USD"},
                "context": {"ip": f"10.{i // 62500}.{i // 250 % 250}.{i % 250}"},
            }
        )
    rt.pipeline().ingest(messages)
    koc = customer_key(ws, "koc", None)
    friends = [customer_key(ws, f"u{i}", None) for i in range(n)]
    with rt.db.engine.begin() as conn:
        conn.execute(
            referral_codes.insert().values(
                workspace_id=ws, code="KOC00001", customer_id=koc, created_at=T0
            )
        )
        conn.execute(
            referrals.insert(),
            [
                {
                    "workspace_id": ws,
                    "referral_id": f"ref_{i:08d}",
                    "code": "KOC00001",
                    "referrer_id": koc,
                    "friend_id": f,
                    "friend_key": f,
                    "state": "pending",
                    "created_at": T0,
                    "updated_at": T0,
                }
                for i, f in enumerate(friends)
            ],
        )
    return ws


def run(engine: str, n: int, bulk: bool) -> float:
    """Seconds of one qualification run over n pending referrals."""
    threshold = qualify._BULK
    if not bulk:
        qualify._BULK = 10**12  # the per-row path
    try:
        with database(engine) as url, Runtime(load_settings(database_url=url)) as rt:
            rt.init()
            ws = load(rt, n)
            if rt.db.kind == "postgres":
                # Planner statistics, as autovacuum gathers them after a load: without them
                # PostgreSQL estimates one row per table and nests loops (30 s for 2,000).
                with rt.db.engine.begin() as conn:
                    conn.execute(sa.text("ANALYZE referrals, orders, events, customers"))
            start = time.perf_counter()
            report = qualify.process_referrals(rt.db, ws, now=T0 + timedelta(days=2))
            wall = time.perf_counter() - start
            assert report.qualified == n, report.as_dict()
            with rt.db.engine.connect() as conn:
                left = conn.execute(
                    sa.text("SELECT count(*) FROM referrals WHERE state = 'pending'")
                ).scalar_one()
            assert left == 0
    finally:
        qualify._BULK = threshold
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--referrals", type=int, default=10_000)
    parser.add_argument("--baseline", type=int, default=1_000)
    parser.add_argument("--quick", action="store_true", help="2,000 referrals, baseline 500")
    parser.add_argument("--engine", choices=["duckdb", "postgres", "both"], default="both")
    args = parser.parse_args()
    n, base_n = (2_000, 500) if args.quick else (args.referrals, args.baseline)
    engines = ["duckdb", "postgres"] if args.engine == "both" else [args.engine]
    for engine in engines:
        wall = run(engine, n, bulk=True)
        base = run(engine, base_n, bulk=False)
        rate, base_rate = n / wall, base_n / base
        print(f"{engine}: qualify {n:,} referrals in {wall:.2f} s = {rate:,.0f} referrals/s")
        print(
            f"{engine}: baseline per-row path, {base_n:,} referrals in {base:.2f} s = "
            f"{base_rate:,.0f} referrals/s; ratio {rate / base_rate:.1f}x"
        )


if __name__ == "__main__":
    main()
