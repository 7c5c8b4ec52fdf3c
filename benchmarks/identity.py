"""Benchmark: One-ID full and incremental resolution on the demo brand (DuckDB by default).

Loads the demo through the pipeline, then times each step of a full rebuild (read the distinct
identifier tuples, normalise and build the graph, resolve under the rules, write and re-point
records), the rule-based resolution against a plain ``scipy.sparse.csgraph.connected_components``
on the same links (the baseline: no rules, so it fuses the family phone and the store tablet),
and an incremental batch of the most recent events.

    python benchmarks/identity.py [--customers 20000] [--seed 7] [--batch 10000]
                                  [--load bulk|pipeline] [--evaluate] [--postgres]
                                  [--duckdb-memory 2GB] [--evidence FILE.duckdb] [--tables]

The issue's target is 1M customers (about 3M identifiers) in <= 60 s and a batch of 10,000
events in <= 1 s. ``--load bulk`` (the default) stores one event per distinct identifier tuple,
built with the demo generator's own people and message writer (``benchmarks/_identity_data.py``):
the same tuples the pipeline would store, without sending ~30 messages per customer through it.
``--load pipeline`` loads the whole demo through ``Pipeline.ingest`` (slow: ~8 ms a customer).
The load is not part of the measured resolution. ``--evidence FILE`` keeps the loaded DuckDB file
(built once, then copied for each run: the 1M build takes 3-20 minutes); its stored identifier
tuples are removed after the copy, so every run starts as a fresh load does. ``--evaluate`` also
stores the truth and prints precision and recall.

The batch (``--batch-kind new``, the default) is the real path: the 2 x ``--batch`` most
recent events are held out of the full run, then stored again as new events (received after
everything else, as ingest stores them) and resolved incrementally, each batch in its own
transaction: the older half first (the first batch after the full run, which reads the tables
back into DuckDB's buffers: the figure held against the target), then the newest half (the
next batch, as a running server resolves one after another). ``--batch-kind stored``
re-resolves stored events (what earlier versions of this benchmark timed: nothing changes).

The batches look the stored graph up as ``siyu serve`` does: held in memory
(``identity/held.py``), loaded once after the full run (timed and printed on its own: a server
pays it when it starts and after a full rebuild, not per batch). ``--tables``: as a process that
resolves once does, by joins on the tables.
"""

from __future__ import annotations

import argparse
import inspect
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack, suppress
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from siyu.config import load_settings
from siyu.demo.load import load_demo
from siyu.identity.evaluate import evaluate
from siyu.identity.extract import build_graph, fetch_tuples, query_arrow
from siyu.identity.graph import resolve_new_events, resolve_workspace
from siyu.identity.resolve import components, resolve
from siyu.runtime import Runtime
from siyu.store import schema
from siyu.store.bulk import append, stage, unstage

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._identity_data import build

R = TypeVar("R")
LAST_CPU = [0.0]
PEAK_MB = [0.0]
"""The largest step peak so far (resetting the high-water mark also resets ru_maxrss)."""


def _reset_peak() -> None:
    """Reset the kernel's resident high-water mark (Linux), so each step's peak is its own."""
    with suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_mb() -> float:
    """Peak resident memory since the last reset (VmHWM; ru_maxrss where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(label: str, fn: Callable[[], R]) -> tuple[R, float]:
    """Run fn, print wall time, this process's CPU time and the step's peak resident memory."""
    _reset_peak()
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak = _peak_mb()
    PEAK_MB[0] = max(PEAK_MB[0], peak)
    LAST_CPU[0] = cpu
    print(f"  {label:<48} {wall:7.3f} s wall {cpu:7.3f} s cpu {peak:7,.0f} MB peak")
    return out, wall


def _steps(wid: str, rows: pa.Table, region: str | None) -> None:
    """Build the graph, resolve it under the rules and with the connected-components baseline."""
    graph, _ = timed("normalise + build graph", lambda: build_graph(wid, rows, region))
    print(f"  {len(graph.keys):,} identifiers, {len(graph.link_a):,} links")
    res, t_rules = timed("resolve under the rules", lambda: resolve(graph))
    labels, t_cc = timed(
        "baseline: scipy connected_components",
        lambda: components(len(graph.keys), graph.link_a, graph.link_b),
    )
    print(
        f"  groups: rules {int(res.group.max()) + 1:,}, baseline {int(labels.max()) + 1:,};"
        f" rules / baseline time = {t_rules / max(t_cc, 1e-9):.1f}x"
    )


def _hold_out(conn: sa.Connection, wid: str, n: int) -> pa.Table:
    """Take the ``n`` most recent events out of the store (they come back as a new batch after
    the full run), each with a receipt time after every stored event's, as ingest gives."""
    held = query_arrow(
        conn,
        "SELECT * FROM events WHERE workspace_id = :ws ORDER BY timestamp DESC, message_id "
        "LIMIT :n",
        {"ws": wid, "n": n},
    )
    latest = conn.execute(sa.text("SELECT max(received_at) FROM events")).scalar() or datetime(
        2000, 1, 1
    )
    name = stage(conn, schema.events, held.select(["message_id"]))
    try:
        conn.exec_driver_sql(
            f"DELETE FROM events WHERE message_id IN (SELECT message_id FROM {name})"
        )
    finally:
        unstage(conn, name)
    later = pa.array([latest + timedelta(minutes=1)] * held.num_rows, pa.timestamp("us"))
    return held.set_column(held.schema.get_field_index("received_at"), "received_at", later)


def _two_batches(held: pa.Table) -> tuple[pa.Table, pa.Table]:
    """The held-out events as two batches: the older half first, then the newest half,
    received a minute after the first (each batch is read by its receipt time)."""
    half = held.num_rows // 2
    first, newest = held.slice(half), held.slice(0, half)
    received = newest.column("received_at")
    later = pc.add(received, pa.scalar(timedelta(minutes=1), pa.duration("us")))
    index = newest.schema.get_field_index("received_at")
    return first, newest.set_column(index, "received_at", later.cast(received.type))


def _takes_received_from() -> bool:
    """Whether this siyu's incremental path takes the batch's receipt time (older ones do not:
    the benchmark also runs against earlier commits for before/after figures)."""
    return "received_from" in inspect.signature(resolve_new_events).parameters


def _takes_held() -> bool:
    """Whether this siyu's incremental path can hold the graph in memory."""
    return "held" in inspect.signature(resolve_new_events).parameters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--load", choices=["bulk", "pipeline"], default="bulk")
    parser.add_argument("--evaluate", action="store_true")
    parser.add_argument(
        "--batch-kind",
        choices=["new", "stored"],
        default="new",
        help="new: the most recent events are held out of the full run and resolved after it "
        "as new events (the real path); stored: re-resolve stored events",
    )
    parser.add_argument(
        "--duckdb-memory", default="2GB", help="DuckDB memory_limit ('' keeps DuckDB's default)"
    )
    parser.add_argument(
        "--tables",
        action="store_true",
        help="batches look the graph up in the tables (a one-off process), not held in memory",
    )
    parser.add_argument(
        "--evidence",
        default="",
        help="DuckDB file of the loaded demo: copied if it exists, else kept",
    )
    args = parser.parse_args()
    reuse = bool(args.evidence) and Path(args.evidence).exists()
    with ExitStack() as stack:
        if args.postgres:
            from benchmarks._common import pg_schema

            url = stack.enter_context(pg_schema())
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory())
            url = f"duckdb:///{tmp}/identity.duckdb"
            if reuse:
                shutil.copyfile(args.evidence, f"{tmp}/identity.duckdb")
        os.environ.setdefault("SIYU_ENV", "test")
        rt = stack.enter_context(Runtime(load_settings(database_url=url)))
        rt.init()
        if not args.postgres and args.duckdb_memory:
            with rt.db.engine.begin() as conn:  # DuckDB spills past it instead of growing
                conn.exec_driver_sql(f"SET memory_limit = '{args.duckdb_memory}'")
        ws = rt.workspace()
        print(f"demo: {args.customers:,} customers (seed {args.seed}) on {url.split(':')[0]}")
        as_of = date(2025, 6, 30)
        if reuse:
            print(f"  evidence copied from {args.evidence}")
            with rt.db.engine.begin() as conn:
                # A file built by an older siyu is migrated when opened, and a migration that
                # rebuilds identity_tuples (0024) would spare the full run the tuples' first
                # write: every run starts as a fresh load does, with none stored.
                emptied = conn.execute(sa.text("DELETE FROM identity_tuples")).rowcount
            if emptied and emptied > 0:
                print(f"  {emptied:,} identifier tuples a migration stored removed (not measured)")
        elif args.load == "pipeline":
            timed(
                "load demo through the pipeline (not measured below)",
                lambda: load_demo(rt, ws, customers=args.customers, seed=args.seed, as_of=as_of),
            )
        else:

            def bulk() -> int:
                with rt.db.engine.begin() as conn:
                    return build(
                        conn, ws.workspace_id, args.customers, args.seed, as_of,
                        truth=args.evaluate,
                    )  # fmt: skip

            timed("bulk-build the evidence events (not measured below)", bulk)
        if args.evidence and not reuse and not args.postgres:
            with rt.db.engine.begin() as conn:
                conn.exec_driver_sql("CHECKPOINT")
            shutil.copyfile(url.removeprefix("duckdb:///"), args.evidence)
        wid = ws.workspace_id
        held = following = None
        if args.batch_kind == "new":
            with rt.db.engine.begin() as conn:
                held, following = _two_batches(_hold_out(conn, wid, 2 * args.batch))
        with rt.db.engine.begin() as conn:
            events = conn.execute(sa.text("SELECT count(*) FROM events")).scalar()
            print(f"  {events:,} events")
            rows, _ = timed("read distinct identifier tuples", lambda: fetch_tuples(conn, wid))
            _steps(wid, rows, ws.default_region)  # its graph is freed before the full run
            _, t_full = timed(
                "full resolve_workspace (all steps)", lambda: resolve_workspace(conn, wid)
            )
            cpu_full = LAST_CPU[0]
        # A batch is resolved in a later transaction than the full run (the ingest hook's or
        # the background pass's), after the full resolution was committed.
        holding: dict[str, object] = {}
        if not args.tables and _takes_held():
            from siyu.identity.held import HeldGraphs

            holder = HeldGraphs()
            with rt.db.engine.begin() as conn:
                timed(
                    "hold the graph in memory (once per server start)",
                    lambda: holder.lookups(conn, wid),
                )
            graph = holder.get(wid)
            if graph is not None:
                print(f"  held graph: {graph.nbytes / 2**20:,.0f} MB of Arrow and indexes")
            holding = {"held": holder}
        with rt.db.engine.begin() as conn:
            if held is not None:
                # New events: the held-out most recent ones, stored again as the pipeline would
                # (appended, received after everything else; not measured), then resolved.
                received = held.column("received_at")[0].as_py()
                append(conn, schema.events, held)
                recent = [str(m) for m in held.column("message_id").to_pylist()]
                extra = {"received_from": received} if _takes_received_from() else {}
                extra.update(holding)
                label = f"incremental batch of {len(recent):,} new events"
            else:
                recent = [
                    m
                    for (m,) in conn.execute(
                        sa.text(
                            "SELECT message_id FROM events ORDER BY timestamp DESC, message_id "
                            "LIMIT :n"
                        ),
                        {"n": args.batch},
                    )
                ]
                extra = dict(holding)
                label = f"incremental batch of {len(recent):,} stored events"
            _, t_batch = timed(label, lambda: resolve_new_events(conn, wid, recent, **extra))
            cpu_batch = LAST_CPU[0]
        if following is not None:
            # The next batch, as a server resolves it after the one before (the tables the
            # first batch read are in DuckDB's buffers now; the first followed the full run).
            with rt.db.engine.begin() as conn:
                append(conn, schema.events, following)
                later = [str(m) for m in following.column("message_id").to_pylist()]
                since = following.column("received_at")[0].as_py()
                extra = {"received_from": since} if _takes_received_from() else {}
                extra.update(holding)
                timed(
                    f"next incremental batch of {len(later):,} new events",
                    lambda: resolve_new_events(conn, wid, later, **extra),
                )
        with rt.db.engine.begin() as conn:
            print(
                f"  full resolution {t_full:.2f} s wall, {cpu_full:.2f} s cpu (target <= 60 s at"
                f" 1M customers); incremental batch {t_batch:.2f} s wall, {cpu_batch:.2f} s cpu"
                f" (target <= 1 s; graph {'held in memory' if holding else 'read from the tables'})"
            )
            print(
                f"  peak memory (largest step) {PEAK_MB[0]:,.0f} MB; "
                f"load average {os.getloadavg()[0]:.1f}"
            )
            if args.evaluate or args.load == "pipeline":
                quality, _ = timed("evaluate against the truth", lambda: evaluate(conn, wid))
                print(
                    f"  precision {quality.precision:.4f} recall {quality.recall:.4f} "
                    f"(ceiling {quality.recall_ceiling:.4f})"
                )


if __name__ == "__main__":
    main()
