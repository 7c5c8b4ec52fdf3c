"""Importers on vendor-format fixture files, on DuckDB and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from siyu.collect.importers import run_import
from siyu.collect.importers.generic import from_mapping
from siyu.errors import InvalidInput
from siyu.registry import registry
from siyu.runtime import Runtime
from siyu.store import schema
from tests.collect.shopify_export import write_shopify_orders

FIXTURES = Path(__file__).parent / "fixtures"


def run(rt: Runtime, kind: str, name: str, **kw: Any) -> Any:
    importer = registry.importers.get(kind)
    return run_import(rt.pipeline(), importer, FIXTURES / name, **kw)


def orders(rt: Runtime) -> dict[str, tuple[str, Decimal, Decimal, str]]:
    o = schema.orders
    with rt.db.engine.connect() as conn:
        rows = conn.execute(
            sa.select(o.c.order_id, o.c.currency, o.c.total, o.c.refunded, o.c.status)
        )
        return {r[0]: (r[1], Decimal(r[2]), Decimal(r[3]), r[4]) for r in rows}


def events(rt: Runtime) -> list[dict[str, Any]]:
    with rt.db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(schema.events))]


def quarantine(rt: Runtime) -> list[tuple[str, int, str]]:
    q = schema.quarantine
    with rt.db.engine.connect() as conn:
        rows = conn.execute(sa.select(q.c.origin, q.c.position, q.c.reason).order_by(q.c.position))
        return [(str(r[0]), int(r[1]), str(r[2])) for r in rows]


def test_builtin_importers_are_registered() -> None:
    assert {
        "shopify-orders", "shopify-customers", "amazon-orders", "woocommerce-orders",
        "tiktok-shop-orders",
    } <= set(registry.importers.names())  # fmt: skip


def test_shopify_orders_multiline_refunds_cancel_consent_and_bad_rows(rt: Runtime) -> None:
    summary = run(rt, "shopify-orders", "shopify_orders.csv")
    assert summary.rows == 8
    assert summary.messages == (
        summary.stored + summary.duplicates + summary.repeated_details + summary.quarantined
    )
    assert summary.duplicates == 0  # a first import
    got = orders(rt)
    # Only the first row of #1001 has totals; its two lines are both kept.
    assert got["5100000001"] == ("USD", Decimal("69.8"), Decimal(0), "completed")
    assert got["5100000002"][2:] == (Decimal(450000), "refunded")
    assert got["5100000003"] == ("EUR", Decimal(1030), Decimal(20), "partially_refunded")
    assert got["5100000004"][3] == "refunded"  # cancelled
    assert "5100000005" not in got  # bad date: quarantined with its row
    assert "5100000006" not in got  # pending: a checkout, not an order
    with rt.db.engine.connect() as conn:
        lines = conn.execute(
            sa.select(sa.func.count()).where(schema.order_lines.c.order_id == "5100000001")
        ).scalar()
        consents = (
            conn.execute(sa.select(schema.consents.c.status).order_by(schema.consents.c.status))
            .scalars()
            .all()
        )
    assert lines == 2
    assert consents.count("granted") == 2  # #1001 and #1003 accept marketing
    ev = [e["event"] for e in events(rt)]
    assert ev.count("Checkout Started") == 1
    assert ev.count("Order Cancelled") == 1
    q = quarantine(rt)
    assert q, "the bad row is quarantined"
    assert {(origin, pos) for origin, pos, _ in q} == {
        ("import:shopify-orders:shopify_orders.csv", 8)
    }
    assert all("timestamp" in reason for _, _, reason in q)
    # Timestamps with offsets are stored in UTC.
    first = next(e for e in events(rt) if e["event"] == "Order Completed")
    assert first["timestamp"].hour in (15, 2, 17, 8)


def test_reimport_adds_nothing_and_overlapping_files_dedup(rt: Runtime, tmp_path: Path) -> None:
    run(rt, "shopify-orders", "shopify_orders.csv")
    before = len(events(rt))
    again = run(rt, "shopify-orders", "shopify_orders.csv")
    assert again.already_done
    # The same orders in another file (other bytes: no BOM) are duplicates, row by row.
    copy = tmp_path / "copy.csv"
    copy.write_bytes((FIXTURES / "shopify_orders.csv").read_bytes().removeprefix(b"\xef\xbb\xbf"))
    other = run_import(rt.pipeline(), registry.importers.get("shopify-orders"), copy)
    assert other.stored == 0
    assert other.duplicates + other.repeated_details == other.messages - other.quarantined
    assert other.duplicates > 0
    assert len(events(rt)) == before


def test_shopify_customers(rt: Runtime) -> None:
    summary = run(rt, "shopify-customers", "shopify_customers.csv")
    assert (summary.rows, summary.quarantined) == (3, 1)  # no id and no e-mail
    c = schema.customers
    with rt.db.engine.connect() as conn:
        n = conn.execute(sa.select(sa.func.count()).select_from(c)).scalar()
        consents = conn.execute(
            sa.select(schema.consents.c.channel, schema.consents.c.status)
        ).all()
    assert n == 2
    assert sorted(map(tuple, consents)) == [
        ("email", "denied"), ("email", "granted"), ("sms", "denied")
    ]  # fmt: skip
    ids = {e["user_id"] for e in events(rt)}
    assert "7001" in ids  # Shopify's leading apostrophe removed


def test_amazon_all_orders_tab_separated_summed_with_relay_emails(rt: Runtime) -> None:
    run(rt, "amazon-orders", "amazon_all_orders.txt")
    got = orders(rt)
    # 40 + 3.20 + 5 - 2 (promotion) + 8 + 0.64
    assert got["111-1111111-1111111"][:2] == ("USD", Decimal("54.84"))
    assert got["302-2222222-2222222"][:2] == ("EUR", Decimal(357))
    assert got["111-3333333-3333333"][3] == "refunded"  # cancelled
    relay = [e for e in events(rt) if e["type"] == "identify" and "marketplace.amazon" in (
        e["anonymous_id"] or "")]  # fmt: skip
    assert len(relay) == 2


def test_woocommerce_and_tiktok(rt: Runtime) -> None:
    run(rt, "woocommerce-orders", "woocommerce_orders.csv")
    run(rt, "tiktok-shop-orders", "tiktok_shop_orders.csv")
    got = orders(rt)
    assert got["201"] == ("MYR", Decimal(130), Decimal(0), "completed")
    assert got["202"][2:] == (Decimal(50), "refunded")
    assert "203" not in got  # failed payment: Checkout Started
    assert got["576461234567890001"][:2] == ("IDR", Decimal("25.98"))
    assert got["576461234567890002"][3] == "refunded"  # cancelled
    tt = next(e for e in events(rt)
              if e["message_id"].startswith("import:tiktok_shop:576461234567890001:")
              and e["event"] == "Order Completed")  # fmt: skip
    assert tt["timestamp"].isoformat().startswith("2025-03-01T22:15:30")
    assert quarantine(rt) == []  # TikTok's column-description row is skipped, not quarantined


def test_generic_mapping(rt: Runtime) -> None:
    importer = from_mapping(FIXTURES / "generic_orders.toml")
    summary = run_import(rt.pipeline(), importer, FIXTURES / "generic_orders.csv")
    assert summary.quarantined == 1  # "abc" is no amount
    got = orders(rt)
    assert got["G-1"][:2] == ("JPY", Decimal(3000))
    ev = next(e for e in events(rt) if e["event"] == "Order Completed")
    assert ev["timestamp"].isoformat().startswith("2025-03-01T01:00")  # 10:00 in Tokyo
    assert quarantine(rt)[0][1] == 3


def test_generic_mapping_errors(tmp_path: Path) -> None:
    bad = tmp_path / "m.toml"
    bad.write_text('[columns]\nnot_a_field = "x"\n')
    with pytest.raises(InvalidInput, match="not_a_field"):
        from_mapping(bad)


def test_slices_and_checkpoints_do_not_split_orders(rt: Runtime, tmp_path: Path) -> None:
    path = write_shopify_orders(tmp_path / "orders.csv", 300)
    seen: list[int] = []
    summary = run_import(
        rt.pipeline(), registry.importers.get("shopify-orders"), path, batch_rows=7,
        on_checkpoint=seen.append,
    )  # fmt: skip
    assert len(seen) > 10
    assert seen == sorted(seen)
    assert summary.quarantined == 0
    assert len(orders(rt)) == 300
    with rt.db.engine.connect() as conn:
        lines = conn.execute(sa.select(sa.func.count()).select_from(schema.order_lines)).scalar()
    assert lines == sum(1 + i % 3 for i in range(300))


def test_amounts_and_dates_in_the_formats_exports_use() -> None:
    import pyarrow as pa

    from siyu.collect.importers.prep import money, timestamps

    amounts = ["1.030,50", "1,030.00", "12,5", "€1,030.00", "1,030", "EUR 3,99", "abc", ""]
    assert money(pa.array(amounts)).to_pylist() == [
        "1030.50", "1030.00", "12.5", "1030.00", "1030", "3.99", "abc", None,
    ]  # fmt: skip
    dates = ["2025-03-01 10:00:00 -0500", "2025-03-01T10:00:00Z", "03/01/2025 10:00:00 PM",
             "2025-03-01", "31/02/2025", ""]  # fmt: skip
    assert timestamps(pa.array(dates)).to_pylist() == [
        "2025-03-01T15:00:00Z", "2025-03-01T10:00:00Z", "2025-03-01T22:00:00Z",
        "2025-03-01T00:00:00Z", "31/02/2025", None,
    ]  # fmt: skip
