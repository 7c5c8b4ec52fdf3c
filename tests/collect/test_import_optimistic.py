"""Slices stored without the key conflict checks (DuckDB) store exactly what the checks store.

An import expects new messages until a slice meets a stored one; that slice's transaction is
rolled back and stored again with the checks, and so is every later slice of the import.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import sqlalchemy as sa

from siyu.collect.columnar import Expectation, ingest_columns
from siyu.collect.importers import run_import
from siyu.collect.importers.columnar import ColumnContext
from siyu.collect.importers.reader import batches
from siyu.collect.tables import import_checkpoints
from siyu.registry import registry
from siyu.runtime import Runtime
from siyu.store import schema
from tests.collect.shopify_export import write_shopify_orders
from tests.collect.test_import_columnar import snapshot


def _counts(rt: Runtime) -> dict[str, int]:
    with rt.db.engine.connect() as conn:
        return {
            t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in (schema.events, schema.orders, schema.order_lines, schema.consents)
        }


def test_a_file_imported_again_without_its_checkpoint_adds_nothing(
    rt: Runtime, tmp_path: Path
) -> None:
    path = write_shopify_orders(tmp_path / "orders.csv", 60)
    spec = registry.importers.get("shopify-orders")
    first = run_import(rt.pipeline(), spec, path, batch_rows=30)
    before = snapshot(rt)
    with rt.db.engine.begin() as conn:
        conn.execute(import_checkpoints.delete())
    again = run_import(rt.pipeline(), spec, path, batch_rows=30)
    assert again.stored == 0
    assert again.duplicates + again.repeated_details == (
        first.stored + first.duplicates + first.repeated_details
    )
    assert snapshot(rt) == before


def test_a_stored_consent_sends_the_slice_through_the_checks(rt: Runtime, tmp_path: Path) -> None:
    path = write_shopify_orders(tmp_path / "orders.csv", 20)
    spec = registry.importers.get("shopify-orders")
    table = spec.prepare(pa.Table.from_batches(list(batches(path, ","))))
    pipeline = rt.pipeline()
    now = datetime.now(UTC).replace(tzinfo=None)
    ws = pipeline.workspace
    context = ColumnContext(ws.workspace_id, ws.base_currency, now, timedelta(0), 32_000)
    batch, records, _ = spec.build_columns(table, 2, context)
    assert batch is not None
    assert records == []
    consent = batch.events.filter(pc.equal(batch.events["kind"], "consent")).slice(0, 1)
    # A consent kept in the ledger whose event is gone (as after an erasure of events).
    with rt.db.engine.begin() as conn:
        conn.execute(
            schema.consents.insert().values(
                workspace_id=pipeline.workspace.workspace_id,
                consent_id=consent["message_id"][0].as_py(),
                purpose="marketing",
                channel="email",
                status="granted",
                timestamp=consent["timestamp"][0].as_py(),
            )
        )
    expect = Expectation()
    report = ingest_columns(pipeline, batch, source_id=None, origin="test", expect=expect)
    duckdb = rt.db.engine.dialect.name == "duckdb"
    # DuckDB: rolled back, then stored with the checks (PostgreSQL always checks).
    assert expect.new is not duckdb
    assert report.stored == batch.events.num_rows
    counts = _counts(rt)
    assert counts["events"] == batch.events.num_rows
    assert counts["orders"] == batch.orders.num_rows
    # The kept consent is one of the batch's: each consent of the batch is there once.
    assert counts["consents"] == pc.sum(pc.equal(batch.events["kind"], "consent")).as_py()


@pytest.mark.parametrize("lookup", [True, False], ids=["lookup", "on-conflict"])
def test_identify_messages_stored_by_an_earlier_export_keep_the_slice_optimistic(
    rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lookup: bool
) -> None:
    """Next month's export: new orders of the same customers. Their identify messages (same
    customer, same details: same id) are stored; they are found by a look-up and left out,
    and the slice stays on the plain insert (one statement into events); past the look-up's
    table size, the identify messages are inserted with the conflict check instead."""
    import csv

    from siyu.collect import columnar
    from tests.collect.shopify_export import HEADER, order_rows

    monkeypatch.setattr(columnar, "_LOOKUP_RATIO", 1_000 if lookup else 0)
    calls: list[str] = []
    for name in ("_stored_ids", "_insert_checking_identify"):
        original = getattr(columnar, name)

        def spy(*args: object, _name: str = name, _fn: object = original) -> object:
            calls.append(_name)
            return _fn(*args)  # type: ignore[operator]

        monkeypatch.setattr(columnar, name, spy)

    spec = registry.importers.get("shopify-orders")
    pipeline = rt.pipeline()
    first = run_import(pipeline, spec, write_shopify_orders(tmp_path / "march.csv", 40),
                       batch_rows=1000)  # fmt: skip
    # Orders 997.. are new orders of the customers of orders 0.. (e-mail buyer{i % 997}).
    path = tmp_path / "april.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=HEADER)
        writer.writeheader()
        for i in range(997, 997 + 40):
            writer.writerows(order_rows(i))
    table = spec.prepare(pa.Table.from_batches(list(batches(path, ","))))
    ws = pipeline.workspace
    now = datetime.now(UTC).replace(tzinfo=None)
    context = ColumnContext(ws.workspace_id, ws.base_currency, now, timedelta(0), 32_000)
    batch, records, _ = spec.build_columns(table, 2, context)
    assert batch is not None
    assert records == []
    identify = pc.sum(pc.equal(batch.events["kind"], "identify")).as_py()
    assert identify > 0
    expect = Expectation()
    report = ingest_columns(pipeline, batch, source_id=None, origin="test", expect=expect)
    assert expect.new  # no roll-back: the stored identify messages were looked up
    assert report.duplicates == report.repeated_details == identify
    assert report.stored == batch.events.num_rows - identify
    counts = _counts(rt)
    assert counts["events"] == first.stored + report.stored
    assert counts["orders"] == 80
    with rt.db.engine.connect() as conn:
        stored = conn.execute(
            sa.select(sa.func.count()).select_from(schema.events).where(
                schema.events.c.type == "identify")
        ).scalar_one()  # fmt: skip
    assert stored == identify  # each customer's identify message once
    if rt.db.engine.dialect.name == "duckdb":
        assert calls[-1] == ("_stored_ids" if lookup else "_insert_checking_identify")
