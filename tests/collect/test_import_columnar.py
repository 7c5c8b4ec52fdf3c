"""The Arrow path of order imports stores exactly what the message path stores.

Every order export is imported twice into the same database: once with the importer's Arrow
path (plain orders as columns, the rest as messages) and once with messages only; every
derived table must come out the same, on DuckDB and PostgreSQL.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa

from siyu.collect.importers import run_import
from siyu.collect.importers.columnar import ColumnContext
from siyu.collect.importers.generic import from_mapping
from siyu.collect.importers.orders import OrderSpec
from siyu.collect.importers.reader import batches
from siyu.collect.importers.run import ColumnarImporter, ahead
from siyu.collect.tables import import_checkpoints
from siyu.registry import registry
from siyu.runtime import Runtime
from siyu.store import schema
from tests.collect.shopify_export import HEADER, order_rows, write_shopify_orders

FIXTURES = Path(__file__).parent / "fixtures"
IGNORED = {"updated_at", "received_at", "quarantine_id", "resolved_at", "resolution"}
TABLES = (
    schema.events, schema.orders, schema.order_lines, schema.refunds, schema.customers,
    schema.products, schema.consents, schema.quarantine,
)  # fmt: skip


class MessagesOnly:
    """The same importer without its Arrow path: every order becomes messages."""

    def __init__(self, spec: OrderSpec) -> None:
        self.spec = spec
        self.name, self.description = spec.name, spec.description
        self.delimiter, self.group_field = spec.delimiter, spec.group_field

    def prepare(self, batch: pa.RecordBatch | pa.Table) -> pa.Table:
        return self.spec.prepare(batch)

    def build(self, table: pa.Table, origin_row: int) -> Iterator[Any]:
        return self.spec.build(table, origin_row)


def _value(v: Any) -> Any:
    if isinstance(v, str) and v[:1] in '{["':
        return json.loads(v)
    return Decimal(v).normalize() if isinstance(v, Decimal) else v


def snapshot(rt: Runtime) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    with rt.db.engine.connect() as conn:
        for t in TABLES:
            cols = [c for c in t.columns if c.name not in IGNORED]
            if t is schema.products:
                # A product keeps the attributes of the line processed last; within a slice
                # the Arrow path stores its orders before the messages of the others.
                cols = [t.c.product_id, t.c.sku, t.c.name]
            got = conn.execute(sa.select(*cols)).all()
            out[t.name] = sorted((tuple(_value(v) for v in r) for r in got), key=repr)
    return out


def wipe(rt: Runtime) -> None:
    with rt.db.engine.begin() as conn:
        for t in (*TABLES, import_checkpoints):
            conn.execute(t.delete())


def both_ways(rt: Runtime, importer: str, path: Path) -> tuple[Any, Any]:
    spec = (
        from_mapping(FIXTURES / "generic_orders.toml")
        if importer == "generic"
        else registry.importers.get(importer)
    )
    assert isinstance(spec, OrderSpec)
    assert isinstance(spec, ColumnarImporter)
    results = []
    for way in (MessagesOnly(spec), spec):
        summary = run_import(rt.pipeline(), way, path, batch_rows=40)
        results.append((summary.messages, summary.stored, summary.duplicates,
                        summary.repeated_details, summary.quarantined, snapshot(rt)))  # fmt: skip
        wipe(rt)
    return results[0], results[1]


@pytest.mark.parametrize(
    ("importer", "name"),
    [
        ("shopify-orders", "shopify_orders.csv"),
        ("woocommerce-orders", "woocommerce_orders.csv"),
        ("tiktok-shop-orders", "tiktok_shop_orders.csv"),
        # Summed totals and per-line totals (unit prices computed for the columns).
        ("amazon-orders", "amazon_all_orders.txt"),
        # No refunded column: no refund on either path.
        ("generic", "generic_orders.csv"),
    ],
)
def test_fixture_exports_store_the_same_either_way(rt: Runtime, importer: str, name: str) -> None:
    messages, arrow = both_ways(rt, importer, FIXTURES / name)
    assert messages == arrow


def _repeat_customers_export(path: Path) -> Path:
    """Orders 0-39 and 997-1036: each customer of the second half (e-mail buyer{i % 997},
    same country) orders again with unchanged details."""
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=HEADER)
        writer.writeheader()
        for i in [*range(40), *range(997, 1037)]:
            writer.writerows(order_rows(i))
    return path


def test_a_repeat_customers_details_are_not_counted_as_duplicates(
    rt: Runtime, tmp_path: Path
) -> None:
    """A first import reports no duplicates: the second order's unchanged customer details
    are counted apart, the same on either path, whether the repeat is within a slice (left
    out by the importer) or in a later slice (refused by the stored key)."""
    path = _repeat_customers_export(tmp_path / "orders.csv")
    messages, arrow = both_ways(rt, "shopify-orders", path)  # slices of 40 rows
    assert messages == arrow
    total, stored, duplicates, repeated, quarantined, _ = arrow
    assert (duplicates, repeated, quarantined) == (0, 40, 0)
    assert total == stored + repeated
    spec = registry.importers.get("shopify-orders")
    whole = run_import(rt.pipeline(), spec, path, batch_rows=10_000)  # one slice
    assert (whole.messages, whole.stored, whole.duplicates, whole.repeated_details) == (
        total,
        stored,
        0,
        40,
    )
    # The same orders in another file are duplicates; their details are known details.
    copy = tmp_path / "copy.csv"
    copy.write_bytes(path.read_bytes().removeprefix(b"\xef\xbb\xbf"))
    again = run_import(rt.pipeline(), spec, copy, batch_rows=10_000)
    assert again.stored == 0
    assert again.repeated_details == 80  # every order's identify message
    assert again.duplicates == total - 80


def test_generated_export_with_fx_rates_stores_the_same_either_way(
    rt: Runtime, tmp_path: Path
) -> None:
    ws = rt.workspace()
    with rt.db.engine.begin() as conn:
        conn.execute(
            schema.fx_rates.insert(),
            [
                {"workspace_id": ws.workspace_id, "day": date(2025, 2, 27), "currency": c,
                 "base_currency": ws.base_currency, "rate": Decimal(r), "source": "test"}
                for c, r in (("EUR", "1.08"), ("GBP", "1.27"), ("SGD", "0.74"))
                if c != ws.base_currency
            ],
        )  # fmt: skip
    path = write_shopify_orders(tmp_path / "orders.csv", 120)
    messages, arrow = both_ways(rt, "shopify-orders", path)
    assert messages == arrow
    names = [c.name for c in schema.orders.columns if c.name not in IGNORED]
    orders = [dict(zip(names, r, strict=True)) for r in arrow[5]["orders"]]
    assert len(orders) == 120
    rated = [o for o in orders if o["currency"] in ("USD", "EUR", "GBP", "SGD")]
    assert rated
    assert all(o["total_base"] is not None for o in rated)
    assert all(o["total_base"] is None for o in orders if o["currency"] == "IDR")


def test_plain_orders_take_the_arrow_path_and_the_rest_go_as_messages(tmp_path: Path) -> None:
    spec = registry.importers.get("shopify-orders")
    path = write_shopify_orders(tmp_path / "orders.csv", 34)  # orders 0 and 17 are refunded
    table = spec.prepare(pa.Table.from_batches(list(batches(path, ","))))
    now = datetime.now(UTC).replace(tzinfo=None)
    context = ColumnContext("ws", "USD", now, timedelta(minutes=5), 32_000)
    batch, records, _ = spec.build_columns(table, 2, context)
    assert batch is not None
    # Refunded orders are columns too: the order, and its refund as a refunds row.
    assert batch.orders.num_rows == 34
    assert records == []
    assert batch.refunds["order_id"].to_pylist() == ["5000000000", "5000000017"]
    assert batch.refunds["amount"].to_pylist() == [Decimal("15.0000"), Decimal("125.0000")]
    # File rows: order 1 starts on row 3 (header, then the one line of order 0).
    assert batch.orders["position"].to_pylist()[1] == 3


def test_checkouts_and_bad_rows_go_as_messages() -> None:
    spec = registry.importers.get("shopify-orders")
    table = spec.prepare(pa.Table.from_batches(list(batches(FIXTURES / "shopify_orders.csv", ","))))
    now = datetime.now(UTC).replace(tzinfo=None)
    context = ColumnContext("ws", "USD", now, timedelta(minutes=5), 32_000)
    batch, records, _ = spec.build_columns(table, 2, context)
    assert batch is not None
    # Refunded (#1002), partially refunded (#1003), refunded and cancelled (#1004): columns.
    assert sorted(batch.orders["order_id"].to_pylist()) == [
        "5100000001", "5100000002", "5100000003", "5100000004",
    ]  # fmt: skip
    assert sorted(
        zip(batch.refunds["order_id"].to_pylist(), batch.refunds["seq"].to_pylist(), strict=True)
    ) == [("5100000002", 0), ("5100000003", 0), ("5100000004", 0), ("5100000004", 1)]
    # A date in no known format (#1005) and a pending checkout (#1006): messages.
    assert {r.payload["properties"].get("order_id") for r in records if "event" in r.payload} == {
        "5100000005", "5100000006",
    }  # fmt: skip


def test_a_changed_total_in_a_later_export_is_quarantined_as_a_conflict(
    rt: Runtime, tmp_path: Path
) -> None:
    first = write_shopify_orders(tmp_path / "a.csv", 5)
    text = first.read_text(encoding="utf-8-sig")
    run_import(rt.pipeline(), registry.importers.get("shopify-orders"), first)
    changed = tmp_path / "b.csv"
    # Order #1001 (lines of 17.00 and 18.00, 5.00 shipping): the later export says 99.00.
    changed.write_text(text.replace(",40.00,", ",99.00,", 1), encoding="utf-8")
    summary = run_import(rt.pipeline(), registry.importers.get("shopify-orders"), changed)
    assert summary.quarantined == 1
    with rt.db.engine.connect() as conn:
        q = conn.execute(sa.select(schema.quarantine.c.reason_code, schema.quarantine.c.reason,
                                   schema.quarantine.c.position)).one()  # fmt: skip
        total = conn.execute(
            sa.select(schema.orders.c.total).where(schema.orders.c.order_id == "5000000001")
        ).scalar_one()
    assert q[0] == "order_conflict"
    assert "order 5000000001 is already stored with total 40.0000" in q[1]
    assert "99.0000" in q[1]
    assert q[2] == 3
    assert Decimal(total) == Decimal("40.00")


def _later_export(first: Path, later: Path, changes: dict[str, dict[str, str]]) -> Path:
    """``first`` with some orders' first-row columns changed (as a later export shows them)."""
    with first.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        fields, rows = list(reader.fieldnames or []), list(reader)
    seen: set[str] = set()
    for row in rows:
        if row["Name"] in changes and row["Name"] not in seen:
            row.update(changes[row["Name"]])
            seen.add(row["Name"])
    with later.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return later


def test_refunds_of_orders_stored_by_an_earlier_export_store_the_same_either_way(
    rt: Runtime, tmp_path: Path
) -> None:
    first = write_shopify_orders(tmp_path / "a.csv", 6)
    later = _later_export(
        first,
        tmp_path / "b.csv",
        {
            "#1001": {"Financial Status": "partially_refunded", "Refunded Amount": "10.00"},
            "#1002": {"Financial Status": "refunded", "Refunded Amount": "999.00"},  # too much
            "#1003": {"Cancelled at": "2025-03-05 10:00:00 +0000"},
        },
    )
    spec = registry.importers.get("shopify-orders")
    assert isinstance(spec, OrderSpec)
    results = []
    for way in (MessagesOnly(spec), spec):
        summaries = [run_import(rt.pipeline(), way, f, batch_rows=4) for f in (first, later)]
        counts = [(s.stored, s.duplicates, s.repeated_details, s.quarantined) for s in summaries]
        results.append((counts, snapshot(rt)))
        wipe(rt)
    assert results[0] == results[1]
    counts, tables = results[1]
    assert counts[1][3] == 1  # the refund larger than the order is quarantined
    [q] = tables["quarantine"]
    assert "refund_exceeds_order" in q
    names = [c.name for c in schema.orders.columns if c.name not in IGNORED]
    status = {r[names.index("order_id")]: r[names.index("status")] for r in tables["orders"]}
    assert status["5000000001"] == "partially_refunded"
    assert status["5000000002"] == "completed"
    assert status["5000000003"] == "refunded"  # cancelled: the rest is refunded


def test_ahead_keeps_order_raises_the_workers_error_and_stops_with_the_consumer() -> None:
    assert list(ahead(iter(range(5)))) == [0, 1, 2, 3, 4]

    def failing() -> Iterator[int]:
        yield 1
        raise ValueError("bad block")

    items = ahead(failing())
    assert next(items) == 1
    with pytest.raises(ValueError, match="bad block"):
        next(items)
    produced: list[int] = []

    def many() -> Iterator[int]:
        for i in range(1000):
            produced.append(i)
            yield i

    consumer = ahead(many())
    assert next(consumer) == 0
    consumer.close()  # the worker stops instead of running to the end
    assert len(produced) < 10
