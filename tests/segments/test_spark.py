"""Parity: RFM, tiers and tags on DuckDB, PostgreSQL and Apache Spark (local) agree exactly.

One small brand is loaded into a DuckDB file and a PostgreSQL schema; each computes segments and
the whole tag catalogue; the PostgreSQL tables are exported to Parquet and Spark computes the
same from them through Ibis's pyspark backend. Results are compared per customer (by user id,
since customer ids are minted per database). The Spark session is shared by the test session.
PySpark is optional for users, not on CI: there the test fails instead of skipping.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from siyu.compute import tables
from siyu.compute.spark import export_tables, run_on_spark, spark_session
from siyu.config import load_settings
from siyu.runtime import Runtime
from siyu.segments import RfmConfig, TierConfig, run_segments, segments_expr
from siyu.segments.tagging import all_tags, tags_expr
from tests.segments.test_tiers_rfm import AS_OF, at, buy, view


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("PySpark is required on CI (pip install -e '.[dev]').")
        pytest.skip("PySpark is not installed (pip install -e '.[spark]').")
    session = spark_session("local[2]")
    yield session
    session.stop()


def _records() -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = [
        view("new29", 29.5),
        view("old30", 30.0),
        view("pot", 60),
        *[
            {**view("pot", d, i), "properties": {"category": "baby"}}
            for i, d in enumerate((1, 2, 3))
        ],
        view("churn180", 180.0),
        view("a1", 300),
        buy("a1", 10, 50),
        view("a3", 300),
        *[buy("a3", d, 50) for d in (10, 20, 30)],
        view("loyal", 300),
        *[buy("loyal", d, 100) for d in (10, 50, 100, 200)],
        view("equal", 300),
        *[buy("equal", d, 65) for d in (5, 50, 100, 200)],
        {
            "type": "track",
            "event": "Email Opened",
            "userId": "a1",
            "timestamp": at(2),
            "messageId": "mail-a1",
        },
    ]
    for i in range(12):
        records.append({**view(f"c{i}", 300), "properties": {"category": "beauty", "price": i}})
        records += [buy(f"c{i}", 5 + i * 25 + k, 10 * (i + 1), k) for k in range(1 + i // 4)]
    return records


def _by_user(table: pa.Table, users: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Rows keyed by user id; numbers as plain ints and floats rounded to 6 places."""
    out = {}
    for row in table.to_pylist():
        user = users[row.pop("customer_id")]
        out[user] = {k: round(float(v), 6) if isinstance(v, float) else v for k, v in row.items()}
    return out


def _compute(rt: Runtime) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    rt.pipeline().ingest(_records())
    ws = rt.workspace()
    run_segments(rt.db, ws, as_of=AS_OF)
    seg = segments_expr(rt.db, ws.workspace_id, AS_OF, TierConfig(), RfmConfig()).to_pyarrow()
    wide = tags_expr(tables(rt.db, ws.workspace_id), all_tags(rt.db, ws.workspace_id), AS_OF)
    with rt.db.engine.connect() as conn:
        users = dict(conn.exec_driver_sql("SELECT customer_id, user_id FROM customers").all())
    return _by_user(seg, users), _by_user(wide.to_pyarrow(), users), users


def test_duckdb_postgres_and_spark_agree(
    spark: Any, tmp_path: Path, pg_schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIYU_ENV", "test")
    results = {}
    folder = tmp_path / "parquet"
    for engine, url in (("duckdb", f"duckdb:///{tmp_path}/p.duckdb"), ("postgres", pg_schema_url)):
        with Runtime(load_settings(database_url=url)) as rt:
            rt.init()
            results[engine] = _compute(rt)
            if engine == "postgres":
                ws = rt.workspace().workspace_id
                counts = export_tables(rt.db, ws, folder, all_tags(rt.db, ws))
                assert counts["customers"] == len(results[engine][2])
    customers = pq.read_table(folder / "customers.parquet").to_pylist()
    users = {row["customer_id"]: row["user_id"] for row in customers}
    got = run_on_spark(spark, folder, AS_OF)
    spark_seg, spark_tags = _by_user(got.segments, users), _by_user(got.tags, users)

    duck_seg, duck_tags, _ = results["duckdb"]
    pg_seg, pg_tags, _ = results["postgres"]
    assert duck_seg["loyal"]["tier"] == "loyal"
    assert duck_seg["pot"]["tier"] == "potential"
    assert {row["r_score"] for row in duck_seg.values()} >= {1, 5}
    for name, seg in (("postgres", pg_seg), ("spark", spark_seg)):
        for user, row in duck_seg.items():
            assert seg[user] == row, (name, user)
    assert len(duck_tags["a1"]) >= 231
    assert duck_tags["pot"]["browses_baby"]
    assert duck_tags["a1"]["email_opener_7d"]
    assert pg_tags == duck_tags
    assert spark_tags == duck_tags
