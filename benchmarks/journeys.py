"""Benchmark: journey triggers for N customers and dispatch to the outbox channel (DuckDB).

Builds N customers in twelve markets and one ``Signed Up`` event each straight from NumPy/Arrow
(loading them through the pipeline is not what is measured), publishes a one-step journey
(``Signed Up`` -> send a transactional message on the outbox channel: consent and suppression
are still checked per message, quiet hours and caps do not apply to transactional mail), then
times, in one process:

1. trigger evaluation: one set-based pass that enrolls every customer whose event arrived;
2. dispatch: the worker claims the due step runs in batches and sends them through the
   messaging slice (policy, locale-aware rendering, idempotency claim, outbox rows, records);
3. the baseline: a naive per-customer loop (check the trigger with one query, send one
   message with ``siyu.messaging.send``, one transaction each), run on a subset and
   extrapolated to N (labelled as such), as a hand-written cron job would do it.

Prints each figure, the ratio against the baseline and the peak memory of the process.

    python benchmarks/journeys.py [--customers 100000] [--batch 5000] [--baseline 300]
    python benchmarks/journeys.py --quick          # 10,000 customers, baseline of 100

Targets (issue 7): triggers evaluated for 100,000 customers; >= 2,000 messages/s dispatched.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import peak_rss_mb

from siyu.config import load_settings
from siyu.journeys.definition import parse
from siyu.journeys.versions import publish
from siyu.journeys.worker import WorkerOptions, evaluate_entries, run_pending
from siyu.messaging.contract import SendRequest
from siyu.messaging.send import send
from siyu.messaging.templates import save_template, template_from_doc
from siyu.registry import registry
from siyu.runtime import Runtime
from siyu.store.bulk import append
from siyu.store.schema import customers, events

NOW = datetime(2026, 3, 2, 14, 0)
MARKETS = (
    ("US", "en-US", "America/New_York"),
    ("GB", "en-GB", "Europe/London"),
    ("DE", "de-DE", "Europe/Berlin"),
    ("FR", "fr-FR", "Europe/Paris"),
    ("ID", "id-ID", "Asia/Jakarta"),
    ("TH", "th-TH", "Asia/Bangkok"),
    ("MY", "ms-MY", "Asia/Kuala_Lumpur"),
    ("PH", "en-PH", "Asia/Manila"),
    ("VN", "vi-VN", "Asia/Ho_Chi_Minh"),
    ("BR", "pt-BR", "America/Sao_Paulo"),
    ("MX", "es-MX", "America/Mexico_City"),
    ("CN", "zh-CN", "Asia/Shanghai"),
)
JOURNEY = """
id: welcome_bench
name: Welcome (benchmark)
trigger: {event: {name: Signed Up}}
steps:
  - id: welcome
    send: {channel: outbox, template: welcome_bench, purpose: transactional}
"""
TEMPLATE = {
    "name": "welcome_bench",
    "channel": "email",
    "default_locale": "en",
    "variants": {
        "en": {
            "subject": "Welcome, {{ customer.first_name }}",
            "text": "Hello {{ customer.first_name }}, your first order ships free.",
        },
        "zh-CN": {"subject": "欢迎 {{ customer.first_name }}", "text": "首单包邮。"},
        "de": {"subject": "Willkommen, {{ customer.first_name }}", "text": "Versandkostenfrei."},
    },
}


def build(rt: Runtime, n: int, seed: int) -> None:
    """N customers and one Signed Up event each, appended as Arrow tables."""
    ws = rt.workspace().workspace_id
    rng = np.random.default_rng(seed)
    market = rng.integers(0, len(MARKETS), n)
    ids = np.char.add("cb", np.arange(n).astype(str))
    country = np.array([m[0] for m in MARKETS])[market]
    language = np.array([m[1] for m in MARKETS])[market]
    zone = np.array([m[2] for m in MARKETS])[market]
    seen = NOW - timedelta(days=1)
    ts = pa.array(np.full(n, np.datetime64(seen, "us")), pa.timestamp("us"))
    people = pa.table(
        {
            "workspace_id": pa.array(np.full(n, ws)),
            "customer_id": pa.array(ids),
            "user_id": pa.array(np.char.add("u", ids)),
            "email": pa.array(np.char.add(ids, "@example.com")),
            "first_name": pa.array(np.char.add("Name", np.arange(n).astype(str))),
            "country": pa.array(country),
            "language": pa.array(language),
            "timezone": pa.array(zone),
            "first_seen_at": ts,
            "last_seen_at": ts,
            "updated_at": ts,
        }
    )
    signups = pa.table(
        {
            "workspace_id": pa.array(np.full(n, ws)),
            "message_id": pa.array(np.char.add("signup-", ids)),
            "type": pa.array(np.full(n, "track")),
            "event": pa.array(np.full(n, "Signed Up")),
            "user_id": pa.array(np.char.add("u", ids)),
            "customer_id": pa.array(ids),
            "timestamp": ts,
            "received_at": ts,
        }
    )
    with rt.db.engine.begin() as conn:
        append(conn, customers, people)
        append(conn, events, signups)
        save_template(conn, ws, template_from_doc(TEMPLATE, registry.channels.names()), seen)
    publish(rt.db, ws, parse(JOURNEY), now=seen - timedelta(hours=1))


def count(rt: Runtime, sql: str) -> int:
    with rt.db.engine.connect() as conn:
        return int(conn.execute(sa.text(sql)).scalar_one())


def baseline(rt: Runtime, subset: int) -> tuple[float, float]:
    """Naive loop: per customer, one query for the trigger and one send call; (wall, CPU) s."""
    ws = rt.workspace().workspace_id
    with rt.db.engine.connect() as conn:
        ids = (
            conn.execute(
                sa.select(customers.c.customer_id).order_by(customers.c.customer_id).limit(subset)
            )
            .scalars()
            .all()
        )
    start, cpu = time.perf_counter(), time.process_time()
    for cid in ids:
        with rt.db.engine.connect() as conn:
            triggered = conn.execute(
                sa.select(sa.func.count()).where(
                    events.c.workspace_id == ws,
                    events.c.customer_id == cid,
                    events.c.event == "Signed Up",
                )
            ).scalar_one()
        if triggered:
            send(
                rt.db,
                SendRequest(
                    workspace_id=ws,
                    customer_id=cid,
                    channel="outbox",
                    purpose="transactional",
                    template="welcome_bench",
                    idempotency_key=f"naive:{cid}",
                ),
                now=NOW,
                settings=rt.settings,
            )
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument(
        "--batch", type=int, default=5000, help="step runs per worker batch (the default setting)"
    )
    parser.add_argument("--baseline", type=int, default=300, help="customers of the naive loop")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--quick", action="store_true", help="10,000 customers, baseline 100")
    args = parser.parse_args()
    if args.quick:
        args.customers, args.baseline = 10_000, 100
    os.environ.setdefault("SIYU_ENV", "test")
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            config_file=Path(tmp) / "none.toml",
            database_url=f"duckdb:///{tmp}/bench.duckdb",
            journeys_batch_size=args.batch,
        )
        with Runtime(settings) as rt:
            rt.init()
            n = args.customers
            start = time.perf_counter()
            build(rt, n, args.seed)
            print(f"journeys benchmark on DuckDB, {n:,} customers, batch {args.batch}")
            print(f"  data built in {time.perf_counter() - start:.1f} s (not measured)")
            ws = rt.workspace()

            start, cpu = time.perf_counter(), time.process_time()
            entered, _ = evaluate_entries(rt.db, ws.workspace_id, ws.default_region, NOW)
            trig, trig_cpu = time.perf_counter() - start, time.process_time() - cpu
            assert entered == n, f"{entered} of {n} entered"
            print(
                f"  triggers: {entered:,} customers evaluated and enrolled in {trig:.2f} s "
                f"({entered / trig:,.0f} customers/s; {trig_cpu:.2f} s CPU)"
            )

            start, cpu = time.perf_counter(), time.process_time()
            report = run_pending(
                rt.db,
                ws.workspace_id,
                ws.default_region,
                now=NOW,
                options=WorkerOptions(batch_size=args.batch, max_batches=10**6),
                triggers_too=False,
            )
            disp, disp_cpu = time.perf_counter() - start, time.process_time() - cpu
            sent = count(rt, "SELECT count(*) FROM outbox")
            assert sent == n, f"{sent} messages in the outbox, expected {n}: {report.outcomes}"
            rate = sent / disp
            print(
                f"  dispatch: {sent:,} messages to the outbox in {disp:.2f} s "
                f"({rate:,.0f} messages/s; target >= 2,000); {disp_cpu:.2f} s CPU "
                f"({sent / disp_cpu:,.0f} messages per CPU second)"
            )

            naive, naive_cpu = baseline(rt, args.baseline)
            naive_rate = args.baseline / naive
            print(
                f"  baseline (naive per-customer loop, {args.baseline:,} customers measured): "
                f"{naive:.2f} s ({naive_cpu:.2f} s CPU), {naive_rate:,.1f} messages/s; "
                f"extrapolated to {n:,}: {n / naive_rate:,.0f} s"
            )
            print(
                f"  ratio: trigger + dispatch {trig + disp:.1f} s vs naive "
                f"{n / naive_rate:,.0f} s (extrapolated) = {n / naive_rate / (trig + disp):.1f}x "
                f"faster; dispatch alone {rate / naive_rate:.1f}x the naive rate"
            )
            print(f"  peak memory: {peak_rss_mb():,.0f} MiB (whole process)")
            print(
                f"  load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
            )


if __name__ == "__main__":
    main()
