"""RFM and lifecycle tiers on DuckDB and PostgreSQL, at the rule boundaries."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import product
from typing import Any

import pytest

from siyu.errors import InvalidInput
from siyu.runtime import Runtime
from siyu.segments import SEGMENTS, RfmConfig, TierConfig, run_segments, segments_expr
from siyu.segments.rfm import SEGMENT_GRID

AS_OF = datetime(2025, 6, 30, 12, 0, 0)


def at(days_ago: float) -> str:
    return (AS_OF - timedelta(days=days_ago)).isoformat() + "Z"


def view(user: str, days_ago: float, n: int = 0) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Product Viewed",
        "userId": user,
        "timestamp": at(days_ago),
        "messageId": f"v-{user}-{days_ago}-{n}",
    }


def buy(user: str, days_ago: float, total: float, n: int = 0) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Order Completed",
        "userId": user,
        "timestamp": at(days_ago),
        "messageId": f"o-{user}-{days_ago}-{n}",
        "properties": {"order_id": f"{user}-{days_ago}-{n}", "total": total, "currency": "USD"},
    }


def tiers_of(rt: Runtime, records: list[dict[str, Any]], **config: Any) -> dict[str, str]:
    rt.pipeline().ingest(records)
    ws = rt.workspace()
    expr = segments_expr(rt.db, ws.workspace_id, AS_OF, TierConfig(**config), RfmConfig())
    df = expr.execute()
    with rt.db.engine.connect() as conn:
        by_id: dict[str, str] = dict(
            conn.exec_driver_sql("SELECT customer_id, user_id FROM customers").fetchall()
        )
    return {by_id[c]: t for c, t in zip(df["customer_id"], df["tier"], strict=True)}


def test_new_potential_churned_boundaries(rt: Runtime) -> None:
    records = [
        view("new29", 29.5),
        view("old30", 30.0),
        *[view("pot", 60)] + [view("pot", d, i) for i, d in enumerate((1, 2, 3))],
        *[view("pot2", 60)] + [view("pot2", d, i) for i, d in enumerate((1, 2))],
        view("churn180", 180.0),
        view("live179", 179.5),
        view("live179", 200),
    ]
    got = tiers_of(rt, records)
    assert got["new29"] == "new"
    assert got["old30"] == "unclassified"  # 30 days is no longer 'within the last 30 days'
    assert got["pot"] == "potential"  # 3 interactions in 30 days
    assert got["pot2"] == "unclassified"  # only 2
    assert got["churn180"] == "churned"
    assert got["live179"] == "unclassified"


def test_events_about_a_customer_are_not_her_interactions(rt: Runtime) -> None:
    """A points expiry or a win-back message 10 days ago is stored on the lapsed customer but
    is not her act: she stays churned, not counted as having interacted."""

    def about(user: str, event: str, days_ago: float) -> dict[str, Any]:
        return {**view(user, days_ago), "event": event, "messageId": f"s-{user}-{event}"}

    records = [
        view("lapsed", 200),
        about("lapsed", "Points Expired", 10),
        about("lapsed", "Message Sent", 5),
        view("back", 200),
        view("back", 3),  # her own act: no longer churned
    ]
    assert tiers_of(rt, records) == {"lapsed": "churned", "back": "unclassified"}


def test_active_and_loyal_boundaries(rt: Runtime) -> None:
    records = [
        view("a1", 300),
        buy("a1", 10, 50),
        view("a3", 300),
        *[buy("a3", d, 50) for d in (10, 20, 30)],  # 3 purchases: not active (1-2), not loyal
        view("loyal", 300),
        *[buy("loyal", d, 100) for d in (10, 50, 100, 200)],  # 4 purchases, AOV 100
        view("equal", 300),
        *[buy("equal", d, 65) for d in (5, 50, 100, 200)],  # AOV == workspace mean -> not loyal
        view("old", 300),
        buy("old", 95, 20),  # outside 90 days
    ]
    got = tiers_of(rt, records)
    # workspace AOV in 365 days: (50 + 150 + 400 + 260 + 20) / 13 orders = 67.69...
    assert got["a1"] == "active"
    assert got["a3"] == "unclassified"
    assert got["loyal"] == "loyal"
    assert got["old"] == "unclassified"
    assert got["equal"] == "active"  # 1 purchase in 90 days, AOV 65 < mean


def test_loyal_needs_aov_strictly_above_the_mean(rt: Runtime) -> None:
    records = [
        view("x", 300),
        *[buy("x", d, 100) for d in (10, 100, 150, 200)],
        view("y", 300),
        *[buy("y", d, 100) for d in (120, 130, 150, 200)],
    ]
    got = tiers_of(rt, records)
    # Both have AOV 100 == the workspace mean: neither is loyal.
    assert got["x"] == "active"
    assert got["y"] == "unclassified"


def test_apparel_preset(rt: Runtime) -> None:
    records = [
        view("d", 300),
        *[buy("d", d, 150) for d in (1, 5, 9)],
        view("g", 300),
        buy("g", 45, 20),
        view("s", 300),
        buy("s", 80, 20),
        view("w", 300),
        buy("w", 120, 20),
    ]
    got = tiers_of(rt, records, model="apparel")
    assert got == {"d": "diamond", "g": "gold", "s": "silver", "w": "churn_warning"}


def test_segment_grid_covers_every_cell_once() -> None:
    cells = [(r, f) for _, rs, fs in SEGMENT_GRID for r in rs for f in fs]
    assert sorted(cells) == sorted(product(range(1, 6), range(1, 6)))
    assert len(SEGMENTS) == 11


def test_rfm_quintiles_ties_and_thresholds(rt: Runtime) -> None:
    records = []
    for i in range(10):
        records.append(view(f"c{i}", 300))
        records += [buy(f"c{i}", 5 + i * 30 + k, 10 * (i + 1), k) for k in range(1 + i // 5)]
    rt.pipeline().ingest(records)
    ws = rt.workspace().workspace_id
    df = segments_expr(rt.db, ws, AS_OF, TierConfig(), RfmConfig()).execute()
    df = df.sort_values("recency")
    assert df["r_score"].tolist() == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    # five customers with 1 order share F=1; the others have 2 orders: percent rank 5/9 -> F3
    assert sorted(df["f_score"].tolist()) == [1] * 5 + [3] * 5
    fixed = RfmConfig(method="thresholds", frequency=(1, 2, 3, 4))
    df2 = segments_expr(rt.db, ws, AS_OF, TierConfig(), fixed).execute()
    assert sorted(df2["f_score"].tolist()) == [1] * 5 + [2] * 5


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(InvalidInput, match="4 ascending"):
        RfmConfig(frequency=(3, 2, 1, 0))
    with pytest.raises(InvalidInput, match="not known"):
        TierConfig(model="gold-silver")


def test_runs_record_transitions(rt: Runtime) -> None:
    rt.pipeline().ingest([view("a", 10), view("b", 100)])
    ws = rt.workspace()
    first = run_segments(rt.db, ws, as_of=AS_OF)
    assert (first.customers, first.transitions) == (2, 2)
    assert first.tiers == {"new": 1, "unclassified": 1}
    same = run_segments(rt.db, ws, as_of=AS_OF)
    assert same.transitions == 0
    later = run_segments(rt.db, ws, as_of=AS_OF + timedelta(days=90))
    assert later.tiers == {"unclassified": 1, "churned": 1}
    assert later.transitions == 2
    with rt.db.engine.connect() as conn:
        history = conn.exec_driver_sql(
            "SELECT from_tier, to_tier FROM tier_history ORDER BY changed_at, to_tier"
        ).fetchall()
    assert [tuple(h) for h in history] == [
        (None, "new"),
        (None, "unclassified"),
        ("unclassified", "churned"),
        ("new", "unclassified"),
    ]


def test_schedule_runs_only_when_due(rt: Runtime) -> None:
    from siyu.segments.saved import create_segment
    from siyu.segments.schedule import run_if_due

    rt.pipeline().ingest([view("a", 10)])
    ws = rt.workspace()
    create_segment(rt.db, ws, "new_browsers", "tier:new and tag:never_bought")
    first = run_if_due(rt, ws, now=AS_OF)
    assert first is not None
    assert first.customers == 1
    with rt.db.engine.connect() as conn:  # tiers, then tags, then saved segments, in order
        entered = conn.exec_driver_sql("SELECT segment_id, change FROM segment_history").all()
    assert [tuple(r) for r in entered] == [("new_browsers", "entered")]
    assert run_if_due(rt, ws, now=AS_OF + timedelta(days=6)) is None
    assert run_if_due(rt, ws, now=AS_OF + timedelta(days=7, seconds=1)) is not None


def test_feature_column_list_matches_the_expression(rt: Runtime) -> None:
    """``customer_features_columns`` (read by the attribute table) is the expression's order."""
    from siyu.compute import tables
    from siyu.segments.features import customer_features, customer_features_columns

    t = tables(rt.db, rt.workspace().workspace_id)
    assert list(customer_features(t, AS_OF).columns) == customer_features_columns()
