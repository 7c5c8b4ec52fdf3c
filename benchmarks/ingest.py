"""Ingestion throughput and memory: siyu's pipeline against row-by-row INSERT.

Each measurement runs in a fresh subprocess so that its peak RSS is its own. Prints events/s and
peak memory for DuckDB and PostgreSQL, and the ratio against a naive baseline (one SQLAlchemy
INSERT per event, the way a first implementation would write it) measured in the same run.

    python benchmarks/ingest.py                 # default sizes
    python benchmarks/ingest.py --events 5000000 --engines duckdb   # the 5M memory check

Targets (2-core machine): >= 100,000 events/s into DuckDB, >= 30,000 events/s into PostgreSQL,
5M events with peak RSS under 1.5 GB.

Beyond 1M events the input streams from its generator, whose time (about 2 us per event) is
then inside the clock and the GIL; a second run over the same number of events makes each
slice of 500,000 before its clock starts and prints the pipeline's own rate and its slowest
slice (the table grows the same way).

Besides wall-clock events/s, siyu's run prints events per CPU-second of its process (all
threads): on a shared machine the wall-clock figure falls with the other load, the CPU figure
much less, so it tells whether a change made the work itself cheaper.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

CATEGORIES = ("baby", "beauty", "3C", "home", "apparel", "outdoor")
EVENTS = ("Product Viewed", "Product Added", "Page Scrolled", "Email Opened", "Search")


def track_events(n: int, seed: int = 1) -> Iterator[dict[str, Any]]:
    """Track events with properties, generated lazily (input never held in memory)."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for i in range(n):
        k = (i * 2654435761 + seed) % 1_000_003
        yield {
            "type": "track",
            "messageId": f"bench-{seed}-{i}",
            "userId": f"user-{k % 200_000}",
            "event": EVENTS[k % len(EVENTS)],
            "timestamp": (start + timedelta(seconds=i)).isoformat(),
            "properties": {
                "category": CATEGORIES[k % 6],
                "path": f"/products/{k % 5000}",
                "value": (k % 1000) / 10,
                "campaign": f"c{k % 40}",
            },
            "context": {"ip": f"10.0.{k % 250}.{k % 200}", "locale": "en-US"},
        }


def server_cpu_seconds() -> float | None:
    """CPU seconds used so far by the local PostgreSQL server's processes (None if not local).

    Read from /proc for every process owned by the ``postgres`` user: the backend that serves
    the run lives as long as the connection pool holds it, so the difference over the run is
    the server's share of the work, which tells whether the server is the limit.
    """
    import pwd

    try:
        uid = pwd.getpwnam("postgres").pw_uid
    except KeyError:
        return None
    ticks = 0
    found = False
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime + stime
        found = True
    return ticks / os.sysconf("SC_CLK_TCK") if found else None


def run_siyu(url: str, n: int) -> dict[str, float]:
    from _common import peak_rss_mb, timed
    from siyu.config import load_settings
    from siyu.runtime import Runtime

    settings = load_settings(database_url=url, ingest_chunk_size=50_000)
    # Up to 1M events the input is made before the clock starts, so the figure is the
    # pipeline's; beyond, it streams (the memory check), and the generator's time counts too.
    source = list(track_events(n)) if n <= 1_000_000 else track_events(n)
    with Runtime(settings) as rt:
        rt.init()
        pipeline = rt.pipeline()
        pipeline.ingest(track_events(1_000, seed=2))  # warm-up: plugins and schemas load once
        server = server_cpu_seconds() if url.startswith("postgresql") else None
        cpu = time.process_time()
        report, seconds = timed(lambda: pipeline.ingest(source))
        cpu = time.process_time() - cpu
        after = server_cpu_seconds() if server is not None else None
    assert report.stored == n, report.as_dict()
    from siyu.collect._native import compiled

    return {
        "events": n,
        "seconds": seconds,
        "eps": n / seconds,
        "cpu_seconds": cpu,
        "cpu_eps": n / cpu,
        "server_cpu_seconds": -1.0 if server is None or after is None else after - server,
        "peak_rss_mb": peak_rss_mb(),
        "load": os.getloadavg()[0],
        "compiled": float(all(compiled().values())),
    }


SLICE = 500_000
"""Events per slice of the sliced run (the memory a slice of input dicts takes stays bounded)."""


def run_sliced(url: str, n: int) -> dict[str, float]:
    """The pipeline's own rate over ``n`` events: each slice of SLICE events is made before
    its clock starts (the streamed run beyond 1M also times the generator, 2.1 us per event
    here, in the same process and GIL); the table grows as in the streamed run."""
    import itertools

    from siyu.config import load_settings
    from siyu.runtime import Runtime

    settings = load_settings(database_url=url, ingest_chunk_size=50_000)
    events = track_events(n)
    rates, seconds = [], 0.0
    with Runtime(settings) as rt:
        rt.init()
        pipeline = rt.pipeline()
        pipeline.ingest(track_events(1_000, seed=2))
        while batch := list(itertools.islice(events, SLICE)):
            start = time.perf_counter()
            report = pipeline.ingest(batch)
            took = time.perf_counter() - start
            assert report.stored == len(batch), report.as_dict()
            seconds += took
            rates.append(len(batch) / took)
    return {"events": n, "seconds": seconds, "eps": n / seconds, "slowest": min(rates)}


def run_naive(url: str, n: int) -> dict[str, float]:
    """Baseline: validate each event with the same models, then one INSERT per row."""
    import orjson

    from _common import peak_rss_mb, timed
    from siyu.collect.spec import call_adapter
    from siyu.config import load_settings
    from siyu.runtime import Runtime
    from siyu.store import schema

    settings = load_settings(database_url=url)
    with Runtime(settings) as rt:
        rt.init()
        ws = rt.workspace().workspace_id

        source = list(track_events(n))

        def work() -> None:
            now = datetime.now(UTC).replace(tzinfo=None)
            with rt.db.engine.begin() as conn:
                for raw in source:
                    call = call_adapter.validate_python(raw)
                    conn.execute(
                        schema.events.insert().values(
                            workspace_id=ws,
                            message_id=call.message_id,
                            type=call.type,
                            event=call.event,
                            user_id=call.user_id,
                            timestamp=call.timestamp.replace(tzinfo=None),
                            received_at=now,
                            properties=orjson.loads(orjson.dumps(call.properties)),
                            context=call.context,
                        )
                    )

        _, seconds = timed(work)
    return {"events": n, "seconds": seconds, "eps": n / seconds, "peak_rss_mb": peak_rss_mb()}


def child(kind: str, engine: str, n: int) -> dict[str, float]:
    from _common import pg_schema

    fn = {"siyu": run_siyu, "sliced": run_sliced, "naive": run_naive}[kind]
    if engine == "duckdb":
        with tempfile.TemporaryDirectory() as tmp:
            return fn(f"duckdb:///{tmp}/bench.duckdb", n)
    with pg_schema() as url:
        return fn(url, n)


def measure(kind: str, engine: str, n: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, engine, str(n)],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _verdict(eps: float, target: int) -> str:
    return "meets" if eps >= target else "MISSES"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--baseline-events", type=int, default=20_000)
    parser.add_argument("--engines", default="duckdb,postgres")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, engine, n = args.child
        print(json.dumps(child(kind, engine, int(n))))
        return
    targets = {"duckdb": 100_000, "postgres": 30_000}
    for engine in args.engines.split(","):
        fast = measure("siyu", engine, args.events)
        slow = measure("naive", engine, args.baseline_events)
        ok = _verdict(fast["eps"], targets[engine])
        print(
            f"ingest {engine:8s} siyu {fast['eps']:>10,.0f} events/s "
            f"({fast['events']:,} events, peak RSS {fast['peak_rss_mb']:,.0f} MiB) | "
            f"row-by-row INSERT {slow['eps']:>8,.0f} events/s | "
            f"ratio {fast['eps'] / slow['eps']:6.1f}x | target {targets[engine]:,}/s {ok} | "
            f"per CPU-second of the process {fast['cpu_eps']:,.0f} events"
        )
        server = fast["server_cpu_seconds"]
        print(
            f"    {fast['seconds']:.1f} s wall, {fast['cpu_seconds']:.1f} s CPU of the process"
            + (
                f", {server:.1f} s CPU of the PostgreSQL server "
                f"({fast['events'] / (fast['cpu_seconds'] + server):,.0f} events per CPU-second "
                "of both)"
                if server >= 0
                else ""
            )
            + f"; load average {fast['load']:.1f} on {os.cpu_count()} cores; ingestion modules "
            + ("compiled (mypyc)" if fast["compiled"] else "NOT compiled (pure Python)")
        )
        if args.events > 1_000_000:
            # Beyond 1M the input streams (the memory check) and its generator is timed too.
            sliced = measure("sliced", engine, args.events)
            verdict = _verdict(sliced["eps"], targets[engine])
            print(
                f"    the pipeline alone (each slice of {SLICE:,} events made before its clock "
                f"starts): {sliced['eps']:,.0f} events/s over {args.events:,} events, slowest "
                f"slice {sliced['slowest']:,.0f}/s | target {targets[engine]:,}/s {verdict}"
            )


if __name__ == "__main__":
    main()
