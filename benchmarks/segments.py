"""Benchmark: RFM, lifecycle tiers and all built-in tags on 1M customers, DuckDB vs polars.

Data: a demo-shaped brand built in bulk (benchmarks/_segments_data.py: 1M customers, about 20M
events, 2.5M orders; not loaded through the ingestion pipeline, which would take far longer
than what is measured), cached as a DuckDB file under ~/.cache/siyu-bench (SIYU_BENCH_CACHE).
Each engine runs in its own child process on a fresh copy, so peak memory is its own:

- siyu on DuckDB: ``compute_all`` (features once into a temporary table -> RFM -> tiers, then
  the whole tag catalogue compiled to one query over the attribute table), both to Arrow. Also
  timed: the stored runs (``run_segments``, ``run_tags``: compute + write members and history,
  tags a group at a time). DuckDB's
  ``memory_limit`` is set to ``--duckdb-memory`` (3GB) as a deployment would, so that it
  spills instead of caching up to 80% of RAM.
- polars (benchmarks/_segments_polars.py): the same features (collected once too), RFM,
  default tiers and the same built-in rules (translated from the parsed rules, not re-typed)
  over the tables exported to Parquet (export not timed), lazy and collected.

Prints each step (wall and CPU seconds: on a shared machine wall time includes waiting for a
core, so the load average is printed too), the targets (<= 20 s, <= 4 GB on DuckDB), the
ratio, and whether both engines agree on every tier and tag count.

    python benchmarks/segments.py [--customers 1000000 | --quick] [--seed 5] [--skip-polars]
                                  [--compute-only]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._segments_data import AS_OF, build_database, cache_dir

R = TypeVar("R")
TARGET_SECONDS = 20.0
TARGET_MB = 4096.0


def timed(label: str, fn: Callable[[], R], out: dict[str, float]) -> R:
    """Run ``fn``; record its wall time under ``label`` and its CPU time under ``cpu:label``."""
    start, cpu = time.perf_counter(), time.process_time()
    result = fn()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    out[label] = wall
    out[f"cpu:{label}"] = cpu
    print(f"  {label:<52} {wall:7.2f} s wall {cpu:7.2f} s cpu", flush=True)
    return result


def load() -> str:
    """Load average over 1 minute against the cores: how shared the machine was."""
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def peak_mb() -> float:
    """This process's own peak resident memory (MB).

    ``VmHWM`` of /proc/self/status where there is one: ``ru_maxrss`` survives ``exec``, so a
    child started by a parent that built the data reported the parent's peak (at 200k both
    engines showed the same 1,344 MB).
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def export_parquet(db: Path) -> Path:
    """The tables polars reads, exported once next to the cached database."""
    import duckdb

    folder = db.with_suffix(".parquet.d")
    if (folder / "done").exists():
        return folder
    folder.mkdir(exist_ok=True)
    con = duckdb.connect(str(db), read_only=True)
    queries = {
        "customers": "SELECT * EXCLUDE (traits) FROM customers",
        "events": "SELECT customer_id, event, timestamp, CAST(properties AS VARCHAR) AS "
        "properties FROM events",
        "orders": "SELECT * FROM orders",
        "order_lines": "SELECT * FROM order_lines",
        "consents": "SELECT * EXCLUDE (evidence) FROM consents",
    }
    for name, sql in queries.items():
        con.execute(f"COPY ({sql}) TO '{folder / name}.parquet' (FORMAT parquet)")
    con.close()
    (folder / "done").touch()
    return folder


def child_duckdb(db: Path) -> dict[str, Any]:
    from siyu.compute import tables
    from siyu.config import load_settings
    from siyu.registry import load_builtins
    from siyu.runtime import Runtime
    from siyu.segments import run_segments
    from siyu.segments.run import compute_all
    from siyu.segments.tagging import all_tags, run_tags

    # Plugins (tag functions, predictions...) are imported once per process, as polars is
    # imported before its timings: a long-running siyu has them loaded.
    load_builtins()
    times: dict[str, float] = {}
    os.environ.setdefault("SIYU_ENV", "test")
    with Runtime(load_settings(database_url=f"duckdb:///{db}")) as rt:
        # DuckDB caches up to 80% of RAM by default; a deployment caps it, and so does this run
        # (it spills to disk past the cap), so that peak memory measures the work, not the cache.
        with rt.db.engine.connect() as conn:
            conn.exec_driver_sql(f"SET memory_limit = '{os.environ['SIYU_BENCH_DUCKDB_MEMORY']}'")
        ws = rt.workspace()
        wid = ws.workspace_id
        t = tables(rt.db, wid)
        tags = all_tags(rt.db, wid)
        computed = timed(
            f"RFM + tiers + {len(tags)} tags -> Arrow (compute_all)",
            lambda: compute_all(t, AS_OF, tags),
            times,
        )
        compute_peak = peak_mb()  # before the stored runs, whose writes are not compute
        if os.environ.get("SIYU_BENCH_COMPUTE_ONLY"):
            return _result(times, compute_peak, computed, tags)
        timed(
            "run_segments (compute + store + history)",
            lambda: run_segments(rt.db, ws, as_of=AS_OF),
            times,
        )
        try:
            timed(
                "run_tags (compute + store + history)",
                lambda: run_tags(rt.db, ws, as_of=AS_OF),
                times,
            )
        except Exception as exc:  # report it, keep the compute figures
            print(f"  run_tags FAILED: {str(exc).splitlines()[0]}", flush=True)
    return _result(times, compute_peak, computed, tags)


def _result(
    times: dict[str, float], compute_peak: float, computed: Any, tags: Any
) -> dict[str, Any]:
    """What the parent prints: timings, peaks, load, and the tier and tag counts to compare."""
    seg, table = computed.segments, computed.tags
    tiers = {str(k): int(v) for k, v in _value_counts(seg["tier"]).items()}
    tag_counts = {tag.tag_id: int(table[tag.tag_id].to_numpy().sum()) for tag in tags}
    return {
        "times": times,
        "peak_mb": compute_peak,
        "peak_mb_stored": peak_mb(),
        "load": load(),
        "tiers": tiers,
        "tags": tag_counts,
        "customers": seg.num_rows,
    }


def _value_counts(column: Any) -> dict[str, int]:
    import pyarrow.compute as pc

    return {str(v["values"]): int(v["counts"]) for v in pc.value_counts(column).to_pylist()}


def child_polars(folder: Path) -> dict[str, Any]:
    import polars as pl
    from benchmarks import _segments_polars as impl

    times: dict[str, float] = {}

    def both() -> tuple[Any, Any]:
        features = impl.features(folder, AS_OF).collect().lazy()  # once, as compute_all does
        current = impl.segments(folder, AS_OF, features).collect()
        return current, impl.tags(folder, AS_OF, current.lazy(), features).collect()

    current, wide = timed("RFM + tiers + tags (collect)", both, times)
    tiers = {str(r[0]): int(r[1]) for r in current.group_by("tier").len().iter_rows()}
    tag_counts = {c: int(wide[c].sum()) for c in wide.columns if c != "customer_id"}
    return {
        "times": times,
        "peak_mb": peak_mb(),
        "load": load(),
        "tiers": tiers,
        "tags": tag_counts,
        "polars": pl.__version__,
        "threads": pl.thread_pool_size(),
    }


def run_child(kind: str, target: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(target)],
        check=False,
        stdout=subprocess.PIPE,
        text=True,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0:
        print("\n".join(lines))
        raise SystemExit(f"{kind} run failed (exit {proc.returncode})")
    print("\n".join(lines[:-1]))
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100,000 customers")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--skip-polars", action="store_true")
    parser.add_argument(
        "--compute-only",
        action="store_true",
        help="skip the stored runs (run_segments, run_tags): only the compared computation",
    )
    parser.add_argument(
        "--duckdb-memory", default="3GB", help="DuckDB memory_limit for the run (default 3GB)"
    )
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.customers = 100_000
    os.environ.setdefault("SIYU_BENCH_DUCKDB_MEMORY", args.duckdb_memory)
    if args.compute_only:
        os.environ["SIYU_BENCH_COMPUTE_ONLY"] = "1"
    if args.child:
        kind, target = args.child
        result = child_duckdb(Path(target)) if kind == "duckdb" else child_polars(Path(target))
        print(json.dumps(result))
        return
    print(
        f"segments benchmark: {args.customers:,} customers (seed {args.seed}), cache {cache_dir()}"
    )
    db = build_database(args.customers, args.seed)
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    sizes = {
        n: con.sql(f"SELECT count(*) FROM {n}").fetchall()[0][0]
        for n in ("customers", "events", "orders")
    }
    con.close()
    print("  " + ", ".join(f"{v:,} {k}" for k, v in sizes.items()))
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "bench.duckdb"
        shutil.copy(db, copy)
        print("siyu on DuckDB:")
        ddb = run_child("duckdb", copy)
    label = next(k for k in ddb["times"] if k.endswith("(compute_all)"))
    compute, compute_cpu = ddb["times"][label], ddb["times"][f"cpu:{label}"]
    stored = ddb["times"].get("run_segments (compute + store + history)", float("nan")) + ddb[
        "times"
    ].get("run_tags (compute + store + history)", float("nan"))
    print(
        f"  DuckDB compute (RFM + tiers + all tags): {compute:.2f} s "
        f"(target <= {TARGET_SECONDS:.0f} s: {'met' if compute <= TARGET_SECONDS else 'MISSED'}); "
        f"peak memory {ddb['peak_mb']:,.0f} MB "
        f"(target <= {TARGET_MB:,.0f}: {'met' if ddb['peak_mb'] <= TARGET_MB else 'MISSED'}); "
        f"{compute_cpu:.2f} s CPU over all threads; {ddb['load']}"
    )
    if not args.compute_only:
        print(
            f"  stored runs (run_segments + run_tags, incl. writes and history): {stored:.2f} s, "
            f"peak memory {ddb['peak_mb_stored']:,.0f} MB"
        )
    if args.skip_polars:
        return
    folder = export_parquet(db)
    print("polars (same rules, Parquet, lazy):")
    pol = run_child("polars", folder)
    pol_total = sum(v for k, v in pol["times"].items() if not k.startswith("cpu:"))
    pol_cpu = sum(v for k, v in pol["times"].items() if k.startswith("cpu:"))
    print(
        f"  polars {pol['polars']} ({pol['threads']} threads): {pol_total:.2f} s, "
        f"{pol_cpu:.2f} s CPU, peak {pol['peak_mb']:,.0f} MB; {pol['load']}"
    )
    print(
        f"ratio polars / DuckDB compute: {pol_total / compute:.2f}x wall, "
        f"{pol_cpu / compute_cpu:.2f}x CPU "
        f"({'DuckDB faster' if compute < pol_total else 'polars faster'})"
    )
    tiers_agree = ddb["tiers"] == pol["tiers"]
    differing = sorted(k for k in ddb["tags"] if ddb["tags"][k] != pol["tags"].get(k))
    print(
        f"agreement: tiers {'identical' if tiers_agree else 'DIFFER'}; "
        f"{len(ddb['tags']) - len(differing)} of {len(ddb['tags'])} tag counts identical"
        + (f" (differ: {', '.join(differing[:10])})" if differing else "")
    )


if __name__ == "__main__":
    main()
