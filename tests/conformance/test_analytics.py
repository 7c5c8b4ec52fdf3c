"""One analytics suite, run on every engine through Ibis (siyu.compute).

The same Ibis expressions must give the same answers on DuckDB and PostgreSQL. Engines declare
their known gaps as data (siyu.compute.engines); a test that hits a gap is skipped by name.
"""

from __future__ import annotations

from decimal import Decimal

import ibis
import pytest

from siyu.compute import tables
from siyu.registry import registry
from siyu.runtime import Runtime
from tests.collect.helpers import order, track


@pytest.fixture
def loaded(rt: Runtime) -> Runtime:
    batch = [
        order("o1", user="alice", total=100, ts="2025-01-05T10:00:00Z"),
        order("o2", user="alice", total=50, ts="2025-02-05T10:00:00Z"),
        order("o3", user="bob", total=20, ts="2025-02-06T10:00:00Z"),
        order("o4", user="carol", total=80, currency="USD", ts="2025-03-01T00:00:00Z"),
        *[track(f"v{i}", user=["alice", "bob"][i % 2], category="baby") for i in range(6)],
    ]
    rt.pipeline().ingest(batch)
    return rt


def _skip_gap(rt: Runtime, name: str) -> None:
    if name in registry.engines.get(rt.db.kind).gaps:
        pytest.skip(f"{rt.db.kind} declares the gap {name!r}")


def test_revenue_per_customer(loaded: Runtime) -> None:
    t = tables(loaded.db, loaded.workspace().workspace_id)
    orders = t.orders
    expr = (
        orders.group_by("user_id")
        .aggregate(n=orders.count(), revenue=orders.total_base.sum().cast("float64"))
        .order_by("user_id")
    )
    df = t.execute(expr)
    assert df["user_id"].tolist() == ["alice", "bob", "carol"]
    assert df["n"].tolist() == [2, 1, 1]
    assert df["revenue"].tolist() == [150.0, 20.0, 80.0]


def test_monthly_orders(loaded: Runtime) -> None:
    t = tables(loaded.db, loaded.workspace().workspace_id)
    o = t.orders
    expr = (
        o.mutate(month=o.placed_at.truncate("M").date())
        .group_by("month")
        .aggregate(n=lambda x: x.count())
        .order_by("month")
    )
    df = t.execute(expr)
    assert [str(m)[:7] for m in df["month"]] == ["2025-01", "2025-02", "2025-03"]
    assert df["n"].tolist() == [1, 2, 1]


def test_windowed_event_counts_with_json_properties(loaded: Runtime) -> None:
    _skip_gap(loaded, "json")
    t = tables(loaded.db, loaded.workspace().workspace_id)
    e = t.events
    category = e.properties["category"].str
    expr = (
        e.filter((e.event == "Product Viewed") & (category == "baby"))
        .group_by("user_id")
        .aggregate(views=lambda x: x.count())
        .order_by("user_id")
    )
    df = t.execute(expr)
    assert dict(zip(df["user_id"], df["views"], strict=True)) == {"alice": 3, "bob": 3}


def test_days_since_last_order(loaded: Runtime) -> None:
    t = tables(loaded.db, loaded.workspace().workspace_id)
    o = t.orders
    as_of = ibis.timestamp("2025-03-11 00:00:00")
    last = o.group_by("user_id").aggregate(last=o.placed_at.max())
    expr = last.mutate(days=(as_of.date() - last["last"].date()).cast("int64")).order_by("user_id")
    df = t.execute(expr)
    assert df["days"].tolist() == [34, 33, 10]


def test_workspace_filter_isolates_tenants(loaded: Runtime) -> None:
    t = tables(loaded.db, "ws_somebody_else")
    assert int(t.execute(t.orders.count())) == 0
    mine = tables(loaded.db, loaded.workspace().workspace_id)
    assert Decimal(str(mine.execute(mine.orders.total.sum()))) == Decimal(250)
