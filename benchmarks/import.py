"""Shopify orders export import: siyu's streaming importer against a pandas baseline.

Writes a Shopify orders export (documented columns, multi-line orders, BOM) and imports it into
a fresh DuckDB with ``run_import`` (pyarrow streaming, vectorised preparation, the ingestion
pipeline: validation, dedup, orders, lines, consents, checkpoints). The baseline is what a first
implementation would do: ``pandas.read_csv`` of the whole file, then ``DataFrame.to_sql`` of the
rows into a table, with no validation, deduplication or derived tables. Both run in the same
invocation and the ratio is printed.

    python benchmarks/import.py [--orders 100000] [--baseline-orders 20000]

Target (2-core machine): >= 200,000 rows/s into DuckDB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT))


def run_siyu(path: str, db: str) -> dict[str, float]:
    from _common import peak_rss_mb, timed
    from siyu.collect.importers import run_import
    from siyu.config import load_settings
    from siyu.registry import registry
    from siyu.runtime import Runtime

    settings = load_settings(database_url=f"duckdb:///{db}", ingest_chunk_size=50_000)
    with Runtime(settings) as rt:
        rt.init()
        importer = registry.importers.get("shopify-orders")
        summary, seconds = timed(
            lambda: run_import(rt.pipeline(), importer, Path(path), batch_rows=50_000)
        )
    return {
        "rows": summary.rows,
        "seconds": seconds,
        "stored": summary.stored,
        "quarantined": summary.quarantined,
        "rss_mb": peak_rss_mb(),
    }


def run_pandas(path: str, db: str) -> dict[str, float]:
    import pandas as pd
    import sqlalchemy as sa

    from _common import peak_rss_mb, timed

    engine = sa.create_engine(f"duckdb:///{db}")

    def load() -> int:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        frame.to_sql("orders_export", engine, if_exists="replace", index=False, chunksize=10_000)
        return len(frame)

    rows, seconds = timed(load)
    engine.dispose()
    return {"rows": rows, "seconds": seconds, "rss_mb": peak_rss_mb()}


def child(kind: str, path: str, db: str) -> dict[str, float]:
    """Run one measurement in a fresh process (its own peak memory)."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, path, db],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--baseline-orders", type=int, default=20_000)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, path, db = args.child
        result = run_siyu(path, db) if kind == "siyu" else run_pandas(path, db)
        print(json.dumps(result))
        return
    from tests.collect.shopify_export import write_shopify_orders

    with tempfile.TemporaryDirectory() as tmp:
        big = write_shopify_orders(Path(tmp) / "orders.csv", args.orders)
        small = write_shopify_orders(Path(tmp) / "small.csv", args.baseline_orders)
        siyu = child("siyu", str(big), f"{tmp}/siyu.duckdb")
        siyu_small = child("siyu", str(small), f"{tmp}/siyu_small.duckdb")
        base = child("pandas", str(small), f"{tmp}/pandas.duckdb")
    rate = siyu["rows"] / siyu["seconds"]
    rate_small = siyu_small["rows"] / siyu_small["seconds"]
    base_rate = base["rows"] / base["seconds"]
    print(
        f"siyu import shopify-orders, {siyu['rows']:,.0f} rows: {rate:,.0f} rows/s "
        f"(stored {siyu['stored']:,.0f} messages, peak {siyu['rss_mb']:.0f} MiB)"
    )
    print(f"siyu, {siyu_small['rows']:,.0f} rows: {rate_small:,.0f} rows/s")
    print(
        f"pandas read_csv + to_sql baseline, {base['rows']:,.0f} rows: {base_rate:,.0f} rows/s "
        f"(peak {base['rss_mb']:.0f} MiB; no validation, dedup or derived tables)"
    )
    print(
        f"ratio siyu / baseline (same {base['rows']:,.0f}-row file): {rate_small / base_rate:.2f}x"
    )
    print(f"target >= 200,000 rows/s: {'met' if rate >= 200_000 else 'NOT met'}")


if __name__ == "__main__":
    main()
