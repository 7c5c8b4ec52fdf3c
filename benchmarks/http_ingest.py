"""HTTP ingestion: a load generator (separate process, loopback) against a real ``siyu serve``.

1. Latency: single ``/v1/track`` calls paced at ``--rate`` requests/s (open loop: each request
   has its scheduled start and latency is measured from it, so queueing counts, including a
   request waiting for a free connection). The generator is one asyncio loop over
   ``--connections`` keep-alive connections, so its own scheduling does not add the GIL
   contention of many client threads. Prints p50/p95/p99/max.
2. Throughput: batches of 100 track events to ``/v1/batch`` from ``--workers`` keep-alive
   connections for ``--seconds``. The rate printed is *stored* events per second: the clock
   stops when the last acknowledged event is committed to the database (the server's
   ``GET /api/tracking/spool`` says when its durable spool is drained; a server without it
   answered only after storing). Every acknowledged event is then counted in the database.

Beside wall time, each phase prints the CPU seconds the server process used (utime + stime
from /proc), and the load average: the machine is shared.

The rate limit is switched off for the run (SIYU_TRACKING_RATE_LIMIT=0).

    python benchmarks/http_ingest.py [--seconds 10] [--rate 500] [--requests 5000]

Targets (2-core machine): >= 15,000 events/s sustained into DuckDB; p99 of single /v1/track
under 50 ms at 500 requests/s.
"""

from __future__ import annotations

import argparse
import asyncio
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

import orjson


def _siyu() -> str:
    found = shutil.which("siyu", path=str(Path(sys.executable).parent)) or shutil.which("siyu")
    if not found:
        sys.exit("the siyu console script is not installed")
    return found


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


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
    """Closed loop: each worker sends its next batch when the previous one is answered."""
    sent = [0] * workers
    deadline = time.perf_counter() + seconds

    def work(w: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        i = 0
        while time.perf_counter() < deadline:
            body = orjson.dumps({"batch": [_event(w, i + k, tag) for k in range(100)]})
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


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = re.search(rb"(?i)content-length:\s*(\d+)", head)
    if length:
        await reader.readexactly(int(length.group(1)))
    return status


async def _latency(
    port: int, auth: str, rate: float, requests: int, connections: int
) -> tuple[list[float], int]:
    loop = asyncio.get_running_loop()
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    results: list[float] = []
    failures = 0
    start = loop.time() + 0.3

    async def one(n: int) -> None:
        nonlocal failures
        scheduled = start + n / rate
        await asyncio.sleep(max(0.0, scheduled - loop.time()))
        body = orjson.dumps({**_event(1000, n), "messageId": f"lat-{n}"})
        request = (
            b"POST /v1/track HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: "
            + auth.encode()
            + b"\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        reader, writer = await pool.get()
        try:
            writer.write(request)
            status = await _read_response(reader)
        finally:
            pool.put_nowait((reader, writer))
        results.append(loop.time() - scheduled)
        if status != 200:
            failures += 1

    await asyncio.gather(*(one(n) for n in range(requests)))
    while not pool.empty():
        pool.get_nowait()[1].close()
    return sorted(results), failures


def latency(
    port: int, auth: str, rate: float, requests: int, connections: int
) -> tuple[list[float], int]:
    return asyncio.run(_latency(port, auth, rate, requests, connections))


def wait_drained(port: int, api_key: str, timeout: float = 600) -> bool:
    """Block until the server's spool holds nothing uncommitted; False without a spool API."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        conn.request("GET", "/api/tracking/spool", headers={"Authorization": f"Bearer {api_key}"})
        response = conn.getresponse()
        data = response.read()
        if response.status == 404:
            return False
        if response.status != 200:
            raise SystemExit(f"spool status refused: {response.status} {data[:200]!r}")
        if json.loads(data)["pending_records"] == 0:
            return True
        time.sleep(0.02)
    raise SystemExit("the spool did not drain in time")


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(len(values) * q))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--connections", type=int, default=64)
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
                SIYU_FISSION_EVERY_SECONDS="0",
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
        out = run("keys", "create", "bench", "--scope", "admin")
        api_key = re.search(r"\bsk_[A-Za-z0-9_-]+", out.stdout)
        assert api_key, out.stdout
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
            spool = wait_drained(port, api_key.group(0))

            load_lat = _load()
            cpu0, t0 = _cpu_seconds(server.pid), time.perf_counter()
            lat, failures = latency(port, auth, args.rate, args.requests, args.connections)
            lat_wall = time.perf_counter() - t0
            wait_drained(port, api_key.group(0))
            lat_cpu = _cpu_seconds(server.pid) - cpu0

            load_tp = _load()
            cpu0, t0 = _cpu_seconds(server.pid), time.perf_counter()
            events, acked = throughput(port, auth, args.seconds, args.workers)
            wait_drained(port, api_key.group(0))
            seconds = time.perf_counter() - t0
            tp_cpu = _cpu_seconds(server.pid) - cpu0
        finally:
            server.terminate()
            server.wait(timeout=120)
        import duckdb

        with duckdb.connect(f"{tmp}/http.duckdb", read_only=True) as db:
            row = db.execute("SELECT count(*) FROM events WHERE message_id LIKE 'h-%'").fetchone()
            lat_row = db.execute(
                "SELECT count(*) FROM events WHERE message_id LIKE 'lat-%'"
            ).fetchone()
        stored = int(row[0]) if row else 0
        lat_stored = int(lat_row[0]) if lat_row else 0
    if stored != events:
        sys.exit(f"{events:,} events acknowledged but {stored:,} stored")
    if lat_stored != len(lat) - failures:
        sys.exit(f"{len(lat) - failures:,} single calls acknowledged but {lat_stored:,} stored")
    rate = events / seconds
    p50, p95, p99 = (_pct(lat, q) for q in (0.50, 0.95, 0.99))
    mode = "with background work" if args.background else "tracking path alone"
    ack = "durable spool, drained asynchronously" if spool else "answered after storing"
    print(f"siyu serve, {mode}; acknowledgement: {ack}")
    print(
        f"/v1/track at {args.rate:.0f} req/s, {len(lat):,} requests ({failures} not 200) over "
        f"{args.connections} connections: p50 {p50:.1f} ms, p95 {p95:.1f} ms, "
        f"p99 {p99:.1f} ms, max {lat[-1] * 1000:.1f} ms "
        f"(target p99 < 50 ms: {'met' if p99 < 50 else 'NOT met'}); "
        f"server CPU {lat_cpu:.2f} s in {lat_wall:.1f} s wall "
        f"({lat_cpu / max(len(lat), 1) * 1e6:.0f} us per request); load {load_lat}"
    )
    print(
        f"/v1/batch x100 into DuckDB: {events:,} events acknowledged in {acked:.1f} s, all "
        f"stored after {seconds:.1f} s (found in the database) = {rate:,.0f} events/s "
        f"(target >= 15,000: {'met' if rate >= 15_000 else 'NOT met'}); "
        f"server CPU {tp_cpu:.2f} s in {seconds:.1f} s wall "
        f"({tp_cpu / max(events, 1) * 1e6:.0f} us per event); load {load_tp}"
    )


if __name__ == "__main__":
    main()
