"""Points from orders, refund reversal, tiers and events through ``sync`` (both engines)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from siyu.loyalty.ledger import balances, redeem
from siyu.loyalty.program import save_program
from siyu.loyalty.sync import sync
from siyu.loyalty.tables import tier_changes, tier_states
from siyu.runtime import Runtime
from tests.loyalty.helpers import customer, events, order, refund

T0 = datetime(2026, 2, 3, 10, 0)


def _balance(rt: Runtime, cid: str) -> int:
    with rt.db.engine.connect() as conn:
        return balances(conn, rt.workspace().workspace_id, [cid])[cid]


def test_orders_earn_once_and_refunds_take_back_proportionally(rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    with rt.db.engine.begin() as conn:
        save_program(conn, ws, {"market_points_per_unit": {"FR": 2}}, T0)
    ann = customer(rt, "ann", country="DE", at=T0)
    bea = customer(rt, "bea", country="FR", at=T0)
    rt.pipeline().ingest(
        [
            order("ann", "o1", 100, at=T0),
            order("ann", "o2", 40.5, at=T0.replace(day=4)),
            order("bea", "o3", 30, at=T0),
        ]
    )
    first = sync(rt.db, ws, now=T0.replace(day=5))
    assert first.orders_earned == 3
    assert _balance(rt, ann) == 140  # floor(100) + floor(40.5)
    assert _balance(rt, bea) == 60  # France earns 2 points per unit
    again = sync(rt.db, ws, now=T0.replace(day=5))
    assert again.orders_earned == 0
    assert again.events == 0
    assert _balance(rt, ann) == 140
    # A partial refund of o1 (25%) takes back 25 points, from o1's own lot.
    rt.pipeline().ingest([refund("ann", "o1", 25, at=T0.replace(day=6))])
    assert sync(rt.db, ws, now=T0.replace(day=6)).refunds_reversed == 1
    assert _balance(rt, ann) == 115
    # The customer spends most points, then o1 is refunded in full: 75 more are due, only
    # what is left is clawed back and the rest is recorded as shortfall.
    redeem(rt.db, ws, ann, 100, key="spend", now=T0.replace(day=7))
    rt.pipeline().ingest([refund("ann", "o1", 75, at=T0.replace(day=8), n=2)])
    sync(rt.db, ws, now=T0.replace(day=8))
    assert _balance(rt, ann) == 0
    reversed_ = [e["properties"] for e in events(rt, "Points Reversed")]
    assert sorted((p["points"], p.get("shortfall", 0)) for p in reversed_) == [
        (-25, 0),
        (-15, 60),
    ]
    earned = events(rt, "Points Earned")
    assert sorted(e["properties"]["points"] for e in earned) == [40, 60, 100]
    assert sync(rt.db, ws, now=T0.replace(day=9)).refunds_reversed == 0


def _tier(rt: Runtime, cid: str) -> str:
    with rt.db.engine.connect() as conn:
        return str(
            conn.execute(
                sa.select(tier_states.c.tier).where(tier_states.c.customer_id == cid)
            ).scalar_one()
        )


def test_tiers_upgrade_at_once_and_downgrade_only_at_the_yearly_review(rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    ann = customer(rt, "ann", at=T0)
    rt.pipeline().ingest([order("ann", "o1", 300, at=T0), order("ann", "o2", 250, at=T0)])
    sync(rt.db, ws, now=T0.replace(day=4))
    assert _tier(rt, ann) == "Silver"  # 550 >= 500, at once
    # Six months later the rolling 12 months still hold 550: no change; after 13 months the
    # growth is 0 but the tier stays until the review, one year after the upgrade.
    sync(rt.db, ws, now=datetime(2027, 1, 20))
    assert _tier(rt, ann) == "Silver"
    report = sync(rt.db, ws, now=datetime(2027, 2, 5))
    assert report.tier_downgrades == 1
    assert _tier(rt, ann) == "Regular"
    with rt.db.engine.connect() as conn:
        rows = conn.execute(
            sa.select(tier_changes.c.from_tier, tier_changes.c.to_tier, tier_changes.c.rule)
            .where(tier_changes.c.customer_id == ann)
            .order_by(tier_changes.c.changed_at)
        ).all()
    assert [tuple(r) for r in rows] == [
        ("Regular", "Silver", "upgrade"),
        ("Silver", "Regular", "review"),
    ]
    changed = [e["properties"] for e in events(rt, "Member Tier Changed")]
    assert [(p["from_tier"], p["to_tier"]) for p in changed] == [
        ("Regular", "Silver"),
        ("Silver", "Regular"),
    ]


def test_three_months_in_a_row_at_the_monthly_target_upgrades(rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    cid = customer(rt, "cat", at=T0)
    # 120 a month (Silver's monthly target is 100) in Feb, Mar, Apr: 360 < 500 threshold.
    rt.pipeline().ingest([order("cat", f"m{m}", 120, at=datetime(2026, m, 10)) for m in (2, 3)])
    sync(rt.db, ws, now=datetime(2026, 4, 2))
    assert _tier(rt, cid) == "Regular"  # two months only
    rt.pipeline().ingest([order("cat", "m4", 120, at=datetime(2026, 4, 10))])
    report = sync(rt.db, ws, now=datetime(2026, 5, 1, 1))
    assert report.tier_upgrades == 1
    assert _tier(rt, cid) == "Silver"
    with rt.db.engine.connect() as conn:
        rule = conn.execute(sa.select(tier_changes.c.rule)).scalar_one()
    assert rule == "streak"
