"""Benchmark: the messaging slice alone, marketing messages to the outbox channel (DuckDB).

Builds N US customers (email is opt-out there, so every message passes consent and goes out)
straight from NumPy/Arrow, with a template that formats money with Babel, then times in one
process:

1. ``send_many`` in batches (``--batch``): idempotency claim, set-based policy facts (consents,
   suppressions, recent sends), locale choice and rendering, outbox rows and status records;
2. a repeat of the same requests: every key is a duplicate (the cost of a retried batch);
3. the baseline: ``send`` one message at a time (a batch of one: the same code, one transaction
   per message, as a naive loop would call it), on a subset, extrapolated to N (labelled).

Prints each figure, the ratio against the baseline and the peak memory of the process.

    python benchmarks/messaging.py [--customers 20000] [--batch 1000] [--baseline 300]
    python benchmarks/messaging.py --quick        # 5,000 customers, baseline of 100
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import peak_rss_mb

from siyu.config import load_settings
from siyu.messaging.contract import SendRequest, SendStatus
from siyu.messaging.send import send, send_many
from siyu.messaging.templates import save_template, template_from_doc
from siyu.registry import registry
from siyu.runtime import Runtime
from siyu.store.bulk import append
from siyu.store.schema import customers

NOW = datetime(2026, 3, 2, 17, 0)  # noon in New York: no quiet hours
TEMPLATE = {
    "name": "bench",
    "channel": "outbox",
    "default_locale": "en",
    "variants": {
        "en": {
            "subject": "{{ customer.first_name }}, your offer",
            "text": "Take {{ offer | money('USD') }} off until {{ until | date('long') }}.",
            "html": "<p>Take <b>{{ offer | money('USD') }}</b> off.</p>",
        }
    },
}


def build(rt: Runtime, n: int) -> list[str]:
    ws = rt.workspace().workspace_id
    ids = np.char.add("cm", np.arange(n).astype(str))
    seen = NOW - timedelta(days=30)
    ts = pa.array(np.full(n, np.datetime64(seen, "us")), pa.timestamp("us"))
    people = pa.table(
        {
            "workspace_id": pa.array(np.full(n, ws)),
            "customer_id": pa.array(ids),
            "user_id": pa.array(np.char.add("u", ids)),
            "email": pa.array(np.char.add(ids, "@example.com")),
            "first_name": pa.array(np.char.add("Name", np.arange(n).astype(str))),
            "country": pa.array(np.full(n, "US")),
            "language": pa.array(np.full(n, "en")),
            "timezone": pa.array(np.full(n, "America/New_York")),
            "first_seen_at": ts,
            "last_seen_at": ts,
            "updated_at": ts,
        }
    )
    with rt.db.engine.begin() as conn:
        append(conn, customers, people)
        save_template(conn, ws, template_from_doc(TEMPLATE, registry.channels.names()), seen)
    return [str(x) for x in ids]


def requests(ws: str, ids: list[str], prefix: str) -> list[SendRequest]:
    ctx = {"offer": "10", "until": "2026-03-31"}
    return [
        SendRequest(ws, cid, "outbox", "marketing", "bench", f"{prefix}:{cid}", context=ctx)
        for cid in ids
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--baseline", type=int, default=300, help="messages of the naive loop")
    parser.add_argument("--quick", action="store_true", help="5,000 customers, baseline 100")
    args = parser.parse_args()
    if args.quick:
        args.customers, args.baseline = 5_000, 100
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SIYU_DATABASE_URL"] = f"duckdb:///{tmp}/bench.duckdb"
        os.environ.setdefault("SIYU_ENV", "development")
        settings = load_settings()
        with Runtime(settings) as rt:
            rt.init()
            ws = rt.workspace().workspace_id
            n = args.customers
            ids = build(rt, n)
            main_ids, base_ids = ids[: n - args.baseline], ids[n - args.baseline :]
            reqs = requests(ws, main_ids, "batch")

            start = time.perf_counter()
            outcomes = []
            for i in range(0, len(reqs), args.batch):
                outcomes += send_many(rt.db, reqs[i : i + args.batch], now=NOW, settings=settings)
            batched = time.perf_counter() - start
            sent = sum(o.status == SendStatus.SENT for o in outcomes)
            assert sent == len(reqs), f"only {sent} of {len(reqs)} sent"

            start = time.perf_counter()
            for i in range(0, len(reqs), args.batch):
                again = send_many(rt.db, reqs[i : i + args.batch], now=NOW, settings=settings)
                assert all(o.status == SendStatus.DUPLICATE for o in again)
            repeat = time.perf_counter() - start

            base_reqs = requests(ws, base_ids, "one")
            start = time.perf_counter()
            for r in base_reqs:
                assert send(rt.db, r, now=NOW, settings=settings).status == SendStatus.SENT
            per_one = (time.perf_counter() - start) / len(base_reqs)

    rate = len(reqs) / batched
    base_rate = 1 / per_one
    print(f"messages: {len(reqs):,} marketing emails to the outbox, batches of {args.batch}")
    print(f"send_many:            {batched:8.2f} s  {rate:9,.0f} messages/s")
    print(f"repeat (duplicates):  {repeat:8.2f} s  {len(reqs) / repeat:9,.0f} requests/s")
    print(
        f"baseline, one by one: {per_one * len(reqs):8.2f} s  {base_rate:9,.0f} messages/s "
        f"(measured on {len(base_reqs)}, extrapolated to {len(reqs):,})"
    )
    print(f"ratio send_many / one by one: {rate / base_rate:.1f}x")
    print(f"peak memory: {peak_rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
