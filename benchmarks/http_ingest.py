"""HTTP ingestion: a load generator (separate process, loopback) against a real ``siyu serve``.

1. Throughput: batches of 100 track events to ``/v1/batch`` from a few keep-alive connections
   for ``--seconds``; prints events/s stored (counted in the database afterwards).
2. Latency: single ``/v1/track`` calls paced at ``--rate`` requests/s (open loop: each request
   has its scheduled start; latency is measured from it, so queueing counts); prints p50/p99.

The rate limit is switched off for the run (SIYU_TRACKING_RATE_LIMIT=0).

    python benchmarks/http_ingest.py [--seconds 10] [--rate 500] [--requests 5000]

Targets (2-core machine): >= 15,000 events/s sustained into DuckDB; p99 of single /v1/track
under 50 ms at 500 requests/s.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def _siyu() -> str:
    found = shutil.which("siyu", path=str(Path(sys.executable).parent)) or shutil.which("siyu")
    if not found:
        sys.exit("the siyu console script is not installed")
    return found


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _event(worker: int, i: int, tag: str = "h") -> dict[str, object]:
    return {
        "type": "track",
        "messageId": f"{tag}-{worker}-{i}",
        "userId": f"u{i % 5000}",
        "event": "Product Viewed",
        "timestamp": "2025-03-01T10:00:00Z",
        "properties": {"product_id": f"p{i % 300}", "price": 9.5, "currency": "USD"},
    }


def throughput(
    port: int, auth: str, seconds: float, workers: int, tag: str = "h"
) -> tuple[int, float]:
    sent = [0] * workers
    deadline = time.perf_counter() + seconds

    def work(w: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        i = 0
        while time.perf_counter() < deadline:
            body = json.dumps({"batch": [_event(w, i + k, tag) for k in range(100)]})
            conn.request(
                "POST",
                "/v1/batch",
                body,
                {"Authorization": auth, "Content-Type": "application/json"},
            )
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise SystemExit(f"batch refused: {response.status}")
            i += 100
            sent[w] += 100

    start = time.perf_counter()
    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(sent), time.perf_counter() - start


def latency(port: int, auth: str, rate: float, requests: int, workers: int) -> list[float]:
    start = time.perf_counter() + 0.2
    results: list[float] = []
    lock = threading.Lock()

    def work(w: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        for n in range(w, requests, workers):
            scheduled = start + n / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)  # pacing of the open-loop schedule
            body = json.dumps({**_event(1000 + w, n), "messageId": f"lat-{n}"})
            conn.request(
                "POST",
                "/v1/track",
                body,
                {"Authorization": auth, "Content-Type": "application/json"},
            )
            conn.getresponse().read()
            with lock:
                results.append(time.perf_counter() - scheduled)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument(
        "--background",
        action="store_true",
        help="keep siyu serve's background work on (One-ID resolution, journeys, segments)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIYU_")}
        env.update(
            SIYU_DATABASE_URL=f"duckdb:///{tmp}/http.duckdb",
            SIYU_ENV="test",
            SIYU_TRACKING_RATE_LIMIT="0",
            SIYU_LOG_LEVEL="WARNING",
            COLUMNS="250",
        )
        if not args.background:
            # The tracking path alone: background One-ID resolution, the journeys worker and
            # the segments schedule share the write lock and the CPU (--background keeps them).
            env.update(
                SIYU_IDENTITY_RESOLVE="manual",
                SIYU_JOURNEYS_EVERY_SECONDS="0",
                SIYU_SEGMENTS_EVERY_DAYS="0",
            )

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [_siyu(), *args], cwd=tmp, env=env, check=True, capture_output=True, text=True
            )

        run("init")
        out = run("sources", "add", "bench", "--kind", "web")
        key = re.search(r"\bwk_[A-Za-z0-9_-]+", out.stdout)
        assert key, out.stdout
        auth = "Basic " + base64.b64encode(f"{key.group(0)}:".encode()).decode()
        port = _port()
        env["SIYU_LOG_LEVEL"] = "INFO"  # to see uvicorn's start line
        server = subprocess.Popen(
            [_siyu(), "serve", "--port", str(port)],
            cwd=tmp,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stderr is not None
            for line in server.stderr:
                if "Uvicorn running on" in line:
                    break
            else:
                sys.exit("siyu serve did not start")
            threading.Thread(target=server.stderr.read, daemon=True).start()  # drain the log
            throughput(port, auth, 1.0, 2, "warm")  # warm-up: plugins load on first use
            events, seconds = throughput(port, auth, args.seconds, args.workers)
            lat = latency(port, auth, args.rate, args.requests, args.workers * 4)
        finally:
            server.terminate()
            server.wait(timeout=60)
        import duckdb

        with duckdb.connect(f"{tmp}/http.duckdb", read_only=True) as db:
            row = db.execute("SELECT count(*) FROM events WHERE message_id LIKE 'h-%'").fetchone()
        stored = int(row[0]) if row else 0
    if stored != events:
        sys.exit(f"{events:,} events acknowledged but {stored:,} stored")
    rate = events / seconds
    p50, p99 = lat[len(lat) // 2] * 1000, lat[int(len(lat) * 0.99)] * 1000
    mode = "with background work" if args.background else "tracking path alone"
    print(f"siyu serve, {mode}")
    print(
        f"/v1/batch x100 into DuckDB: {events:,} events (all found in the database) "
        f"in {seconds:.1f} s = {rate:,.0f} events/s "
        f"(target >= 15,000: {'met' if rate >= 15_000 else 'NOT met'})"
    )
    print(
        f"/v1/track at {args.rate:.0f} req/s, {len(lat):,} requests: p50 {p50:.1f} ms, "
        f"p99 {p99:.1f} ms (target < 50 ms: {'met' if p99 < 50 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
