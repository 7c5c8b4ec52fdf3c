"""Store-export import: siyu's importers against a pandas baseline, into DuckDB.

Writes a Shopify orders export (documented columns, multi-line orders where only the first row
carries the totals, a BOM, refunded orders) and imports it into a fresh DuckDB with
``run_import``: pyarrow streaming, vectorised preparation, plain, refunded and cancelled orders
as Arrow columns stored set-based (deduplication, orders, lines, refunds, FX base values,
products, customers, consents, checkpoints), the rest through the ingestion pipeline. The
baseline is the straightforward alternative: ``pandas.read_csv`` of the whole file, then one
insert of the frame into a DuckDB table (DuckDB scans the DataFrame), with no validation,
deduplication or derived tables. Both run in the same invocation on the same files (the big
one and a small one), and the ratios are printed.

``--others ROWS``: each other importer (shopify-customers, amazon-orders, woocommerce-orders,
tiktok-shop-orders, generic) on its test fixture repeated to about ROWS rows (new order and
customer ids per copy; the fixtures' bad and pending rows included, so their share of the
message path is the fixture's, far above a real export's).

Each measurement runs in a fresh process: wall time, CPU time of the process (all threads)
and peak memory; the machine's load average is printed, since others' load inflates wall time.
The big file is imported a second time serially (no worker thread) with the storage calls
(``SliceWriter.add`` / ``.commit``, ``Pipeline.ingest``) timed, to print how the CPU time
splits between the storage and the importer's own work. The storage floor: the rows that
import stored, read back and inserted from memory into a fresh database (with siyu's keys in
one transaction and in two at once, then into tables without any key), which bounds any
importer that stores them in DuckDB on the machine at hand.

    python benchmarks/import.py [--orders 100000] [--baseline-orders 20000] [--others 100000]
                                [--batch-rows 100000] [--large-batch-rows 250000]

``--orders N`` writes N orders of one to three lines: about 2N rows (100,000 orders: 199,999
rows). The big file is imported with ``--batch-rows`` (``siyu import``'s default) and again
with ``--large-batch-rows``: DuckDB stores the 200k rows in one transaction for less CPU than
in two (its commit and closing checkpoint), though at 1M rows in 250k slices that gain was
not seen (docs/importers.md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT))

FIXTURES = ROOT / "tests" / "collect" / "fixtures"
# importer -> (fixture, delimiter, columns made unique per copy, description rows kept once)
OTHERS: dict[str, tuple[str, str, tuple[str, ...], int]] = {
    "shopify-customers": ("shopify_customers.csv", ",", ("Customer ID", "Email"), 0),
    "amazon-orders": ("amazon_all_orders.txt", "\t", ("amazon-order-id",), 0),
    "woocommerce-orders": ("woocommerce_orders.csv", ",", ("Order ID", "Order Number"), 0),
    "tiktok-shop-orders": ("tiktok_shop_orders.csv", ",", ("Order ID",), 1),
    "generic": ("generic_orders.csv", ";", ("Order No",), 0),
}


def _time_storage(spent: dict[str, float]) -> None:
    """Run the import serially and add the time of its storage calls to ``spent``.

    Storage calls: ``SliceWriter.add`` and ``.commit`` (the Arrow path's set-based store, a
    slice's transaction) and ``Pipeline.ingest`` (messages), each with its commit. Serially,
    because the import normally builds the next part in a worker thread while these run,
    and process CPU time could not be told apart then.
    """
    import functools
    from collections.abc import Callable, Iterable, Iterator
    from typing import Any

    import siyu.collect.importers.run as run_module
    from siyu.collect.pipeline import Pipeline

    def serial(items: Iterable[Any], depth: int = 1) -> Iterator[Any]:
        return iter(items)

    def timed(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent["store_seconds"] += time.perf_counter() - wall
                spent["store_cpu"] += time.process_time() - cpu

        return call

    spent.update(store_seconds=0.0, store_cpu=0.0)
    run_module.ahead = serial  # type: ignore[assignment]
    from siyu.collect.columnar import SliceWriter

    SliceWriter.add = timed(SliceWriter.add)  # type: ignore[method-assign]
    SliceWriter.commit = timed(SliceWriter.commit)  # type: ignore[method-assign]
    Pipeline.ingest = timed(Pipeline.ingest)  # type: ignore[method-assign]


def run_siyu(
    path: str, db: str, kind: str, batch_rows: int, phases: bool = False
) -> dict[str, float]:
    from _common import peak_rss_mb
    from siyu.collect.importers import run_import
    from siyu.collect.importers.generic import from_mapping
    from siyu.config import load_settings
    from siyu.registry import registry
    from siyu.runtime import Runtime

    spent: dict[str, float] = {}
    if phases:
        _time_storage(spent)

    settings = load_settings(database_url=f"duckdb:///{db}")
    with Runtime(settings) as rt:
        rt.init()
        importer = (
            from_mapping(FIXTURES / "generic_orders.toml")
            if kind == "generic"
            else registry.importers.get(kind)
        )
        wall, cpu = time.perf_counter(), time.process_time()
        summary = run_import(rt.pipeline(), importer, Path(path), batch_rows=batch_rows)
        close_wall, close_cpu = time.perf_counter(), time.process_time()
    # Closing checkpoints the database (DuckDB folds its write-ahead log into the file):
    # `siyu import` pays it before it exits, as the baseline pays its CHECKPOINT.
    close_wall, close_cpu = time.perf_counter() - close_wall, time.process_time() - close_cpu
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "rows": summary.rows,
        "seconds": wall,
        "cpu": cpu,
        "close_seconds": close_wall,
        "close_cpu": close_cpu,
        "messages": summary.messages,
        "stored": summary.stored,
        "duplicates": summary.duplicates,
        "repeated_details": summary.repeated_details,
        "quarantined": summary.quarantined,
        "rss_mb": peak_rss_mb(),
        **spent,
    }


def run_pandas(path: str, db: str) -> dict[str, float]:
    """The straightforward alternative: read the whole file with pandas, insert the frame.

    The insert is DuckDB's own scan of the DataFrame (``INSERT ... SELECT * FROM frame``),
    the fast way to write a DataFrame to DuckDB (``DataFrame.to_sql`` through SQLAlchemy
    inserts row by row, about 200 rows/s here: no fair comparison).
    """
    import duckdb
    import pandas as pd

    from _common import peak_rss_mb

    con = duckdb.connect(db)
    wall, cpu = time.perf_counter(), time.process_time()
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    con.register("frame", frame)
    con.execute("CREATE TABLE orders_export AS SELECT * FROM frame")
    con.unregister("frame")
    con.execute("CHECKPOINT")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    con.close()
    return {"rows": len(frame), "seconds": wall, "cpu": cpu, "rss_mb": peak_rss_mb()}


STORED_TABLES = ("events", "order_lines", "orders", "consents", "refunds", "customers", "products")
"""The tables an orders import writes (its checkpoint aside)."""


def run_floor(imported: str, out: str) -> dict[str, float]:
    """What storing the import's rows alone costs DuckDB: the rows siyu's import stored (read
    back from ``imported``) inserted from memory into a fresh database, then closed (its
    checkpoint), as the import ends. Three shapes: siyu's schema (keys and indexes, the same
    checkpoint threshold) in one transaction with one ``INSERT`` per table; the same schema
    with the events in one transaction and the other tables in another, both at once (DuckDB
    uses about one core per transaction here); tables without any key in one transaction.
    No parsing, validation or deduplication: an importer storing these rows in DuckDB cannot
    be faster on the machine at hand."""
    import threading

    import duckdb

    from siyu.config import load_settings
    from siyu.runtime import Runtime

    src = duckdb.connect(imported, read_only=True)
    tables = {name: src.sql(f"SELECT * FROM {name}").to_arrow_table() for name in STORED_TABLES}
    src.close()
    threshold = load_settings().duckdb_checkpoint_threshold
    result: dict[str, float] = {name: float(t.num_rows) for name, t in tables.items()}

    def insert(con: duckdb.DuckDBPyConnection, names: list[str]) -> None:
        con.execute("BEGIN")
        for name in names:
            con.register("rows", tables[name])
            con.execute(f"INSERT INTO {name} SELECT * FROM rows")
            con.unregister("rows")
        con.execute("COMMIT")

    for shape in ("keys", "parallel", "plain"):
        db = f"{out}-{shape}.duckdb"
        if shape != "plain":
            with Runtime(load_settings(database_url=f"duckdb:///{db}")) as rt:
                rt.init()
        con = duckdb.connect(db)
        con.execute(f"SET checkpoint_threshold = '{threshold}'")
        if shape == "plain":
            for name, table in tables.items():
                con.register("rows", table)
                con.execute(f"CREATE TABLE {name} AS SELECT * FROM rows LIMIT 0")
                con.unregister("rows")
        wall, cpu = time.perf_counter(), time.process_time()
        if shape == "parallel":
            rest = [name for name in tables if name != "events"]
            other = threading.Thread(target=insert, args=(con.cursor(), rest))
            other.start()
            insert(con.cursor(), ["events"])
            other.join()
        else:
            insert(con, list(tables))
        con.close()
        result[f"{shape}_seconds"] = time.perf_counter() - wall
        result[f"{shape}_cpu"] = time.process_time() - cpu
    return result


def child(*args: str) -> dict[str, float]:
    """Run one measurement in a fresh process (its own peak memory)."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args], check=True, capture_output=True, text=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def rates(r: dict[str, float]) -> str:
    closing = (
        f", of which closing (checkpoint) {r['close_seconds']:.1f} s wall, {r['close_cpu']:.1f} s"
        " CPU"
        if "close_cpu" in r
        else ""
    )
    return (
        f"{r['rows'] / r['seconds']:,.0f} rows/s wall, {r['rows'] / r['cpu']:,.0f} rows per "
        f"CPU-second ({r['seconds']:.1f} s wall, {r['cpu']:.1f} s CPU{closing}, peak "
        f"{r['rss_mb']:.0f} MiB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--baseline-orders", type=int, default=20_000)
    parser.add_argument("--batch-rows", type=int, default=100_000, help="as `siyu import`'s")
    parser.add_argument(
        "--large-batch-rows",
        type=int,
        default=250_000,
        help="the big file imported again with slices of this many rows (0: not)",
    )
    parser.add_argument("--others", type=int, default=0, help="rows per other importer")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        what, path, db, *rest = args.child
        if what == "pandas":
            result = run_pandas(path, db)
        elif what == "floor":
            result = run_floor(path, db)
        else:
            result = run_siyu(path, db, rest[0], int(rest[1]), phases=rest[2:] == ["phases"])
        print(json.dumps(result))
        return
    from tests.collect.shopify_export import repeat_export, write_shopify_orders

    batch = str(args.batch_rows)
    print(f"load average at start: {os.getloadavg()[0]:.1f} (2 cores)")
    with tempfile.TemporaryDirectory() as tmp:
        big = write_shopify_orders(Path(tmp) / "orders.csv", args.orders)
        small = write_shopify_orders(Path(tmp) / "small.csv", args.baseline_orders)
        siyu = child("siyu", str(big), f"{tmp}/siyu.duckdb", "shopify-orders", batch)
        floor = child("floor", f"{tmp}/siyu.duckdb", f"{tmp}/floor")
        large = str(args.large_batch_rows)
        siyu_large = (
            child("siyu", str(big), f"{tmp}/large.duckdb", "shopify-orders", large)
            if args.large_batch_rows
            else None
        )
        siyu_small = child("siyu", str(small), f"{tmp}/small.duckdb", "shopify-orders", batch)
        serial = child("siyu", str(big), f"{tmp}/serial.duckdb", "shopify-orders", batch, "phases")
        base = child("pandas", str(small), f"{tmp}/pandas.duckdb")
        base_big = child("pandas", str(big), f"{tmp}/pandas_big.duckdb")
        others = {}
        for kind, (name, delimiter, vary, keep) in OTHERS.items() if args.others else ():
            source = FIXTURES / name
            data_rows = max(1, len(source.read_text(encoding="utf-8-sig").splitlines()) - 1 - keep)
            path = repeat_export(source, Path(tmp) / name, max(1, args.others // data_rows),
                                 delimiter=delimiter, vary=vary, keep_first=keep)  # fmt: skip
            others[kind] = child("siyu", str(path), f"{tmp}/{kind}.duckdb", kind, batch)
    print(
        f"siyu import shopify-orders, {siyu['rows']:,.0f} rows: {rates(siyu)}; "
        f"{siyu['messages']:,.0f} messages: stored {siyu['stored']:,.0f}, duplicates "
        f"{siyu['duplicates']:,.0f}, repeated customer details {siyu['repeated_details']:,.0f}, "
        f"quarantined {siyu['quarantined']:,.0f}"
    )
    if siyu_large is not None:
        print(
            f"siyu, same file, --batch-rows {args.large_batch_rows:,} (bigger transactions): "
            f"{rates(siyu_large)}"
        )
    print(f"siyu, {siyu_small['rows']:,.0f} rows: {rates(siyu_small)}")
    stored = ", ".join(f"{floor[name]:,.0f} {name}" for name in STORED_TABLES)

    def shape(name: str) -> str:
        spent = floor[f"{name}_seconds"]
        return (
            f"{siyu['rows'] / spent:,.0f} rows/s ({spent:.2f} s wall, "
            f"{floor[f'{name}_cpu']:.2f} s CPU)"
        )

    print(
        f"storage floor: the rows that import stored ({stored}) inserted from memory, then "
        f"closed: with siyu's keys {shape('keys')} in one transaction, {shape('parallel')} in "
        f"two at once (events | the rest); into tables without any key {shape('plain')}. An "
        "importer storing these rows in DuckDB cannot be faster on this machine"
    )
    store, close, total = serial["store_cpu"], serial["close_cpu"], serial["cpu"]
    rest = total - store - close
    print(
        f"where the CPU goes (the big file again, serially: {rates(serial)}): storage calls "
        f"(SliceWriter.add/.commit, Pipeline.ingest) {store:.2f} s CPU = {store / total:.0%}"
        f", {1e6 * store / serial['rows']:.1f} us/row; final checkpoint {close:.2f} s = "
        f"{close / total:.0%}; importer (read, prepare, build, checkpoints) {rest:.2f} s = "
        f"{rest / total:.0%}, {1e6 * rest / serial['rows']:.1f} us/row"
    )
    pairs = [(siyu, base_big, f"--batch-rows {args.batch_rows:,}")]
    if siyu_large is not None:
        pairs.append((siyu_large, base_big, f"--batch-rows {args.large_batch_rows:,}"))
    pairs.append((siyu_small, base, f"--batch-rows {args.batch_rows:,}"))
    shown = set()
    for mine, theirs, how in pairs:
        if id(theirs) not in shown:
            shown.add(id(theirs))
            print(
                f"pandas read_csv + DuckDB insert baseline, {theirs['rows']:,.0f} rows: "
                f"{rates(theirs)} (no validation, dedup or derived tables)"
            )
        print(
            f"ratio siyu ({how}) / baseline (same {theirs['rows']:,.0f}-row file): wall "
            f"{(mine['rows'] / mine['seconds']) / (theirs['rows'] / theirs['seconds']):.2f}x, "
            f"CPU {(mine['rows'] / mine['cpu']) / (theirs['rows'] / theirs['cpu']):.2f}x"
        )
    for kind, r in others.items():
        print(f"  {kind}, {r['rows']:,.0f} rows: {rates(r)}; quarantined {r['quarantined']:,.0f}")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    best = max([siyu] + ([siyu_large] if siyu_large is not None else []),
               key=lambda r: r["rows"] / r["seconds"])  # fmt: skip
    rate = best["rows"] / best["seconds"]
    print(f"target >= 200,000 rows/s: {'met' if rate >= 200_000 else 'NOT met'} "
          f"(best of the big file's runs: {rate:,.0f} rows/s wall)")  # fmt: skip


if __name__ == "__main__":
    main()
