"""Loyalty and referral tags over the programmes' tables, on DuckDB and PostgreSQL.

The rows are written as those slices store them (ledger lines, tier states, memberships,
referrals, group-buy seats, assists), so the test pins the contract between the tables and the
tag attributes; an empty programme must tag nobody and break nothing.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from siyu.fission.tables import assists, group_buy_members, referrals
from siyu.loyalty.tables import memberships, points_ledger, tier_states
from siyu.runtime import Runtime
from siyu.segments.catalogue import builtin_tags
from siyu.segments.tagging import run_tags
from tests.segments.test_tagging import _members
from tests.segments.test_tiers_rfm import AS_OF, view

LOYALTY_TAGS = [t.tag_id for t in builtin_tags() if t.family == "loyalty"]


def _ids(rt: Runtime) -> dict[str, str]:
    with rt.db.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT user_id, customer_id FROM customers").fetchall()
    return {r[0]: r[1] for r in rows}


def _ledger(ws: str, key: str, customer: str, amount: int, days_ago: float) -> dict[str, Any]:
    return {
        "workspace_id": ws,
        "idempotency_key": key,
        "line_no": 0,
        "customer_id": customer,
        "kind": "earn" if amount > 0 else "redeem",
        "amount": amount,
        "contra_account": "earned",
        "reason": "order",
        "shortfall": 0,
        "created_at": AS_OF - timedelta(days=days_ago),
    }


def _referral(ws: str, n: int, referrer: str, friend: str, state: str) -> dict[str, Any]:
    return {
        "workspace_id": ws,
        "referral_id": f"ref{n}",
        "code": "CODE",
        "referrer_id": referrer,
        "friend_id": friend,
        "friend_key": f"fk{n}",
        "state": state,
        "created_at": AS_OF - timedelta(days=5),
        "updated_at": AS_OF - timedelta(days=5),
    }


def test_empty_programmes_tag_nobody(rt: Runtime) -> None:
    rt.pipeline().ingest([view("ann", 3), view("bob", 4)])
    report = run_tags(rt.db, rt.workspace(), as_of=AS_OF)
    assert len(LOYALTY_TAGS) == 12
    assert all(report.counts[tag] == 0 for tag in LOYALTY_TAGS)


def test_loyalty_and_referral_tags(rt: Runtime) -> None:
    users = ["ann", "bob", "cy", "dee"]
    rt.pipeline().ingest([view(u, 3, i) for i, u in enumerate(users)])
    ws = rt.workspace().workspace_id
    ids = _ids(rt)
    ann, bob, cy, dee = (ids[u] for u in users)
    day = AS_OF - timedelta(days=10)
    with rt.db.engine.begin() as conn:
        conn.execute(
            points_ledger.insert(),
            [
                _ledger(ws, "k1", ann, 6000, 20),
                _ledger(ws, "k2", ann, -500, 2),  # 5,500 left
                _ledger(ws, "k3", bob, 1200, 20),
                _ledger(ws, "k4", cy, 800, 1),
                _ledger(ws, "k5", dee, 900, -1),  # after as_of: not counted
            ],
        )
        conn.execute(
            tier_states.insert(),
            [
                {
                    "workspace_id": ws,
                    "customer_id": c,
                    "tier": tier,
                    "since": day,
                    "review_at": AS_OF + timedelta(days=300),
                    "growth_value": 0,
                    "updated_at": day,
                }
                for c, tier in ((ann, "Black"), (bob, "Gold"), (cy, "Silver"))
            ],
        )
        conn.execute(
            memberships.insert(),
            [
                {
                    "workspace_id": ws,
                    "customer_id": c,
                    "plan_id": "plus",
                    "status": status,
                    "started_at": day,
                    "ends_at": ends,
                    "auto_renew": True,
                    "updated_at": day,
                }
                for c, status, ends in (
                    (ann, "active", AS_OF + timedelta(days=20)),
                    (bob, "active", AS_OF - timedelta(days=1)),  # lapsed by as_of
                    (cy, "cancelled", AS_OF + timedelta(days=20)),
                )
            ],
        )
        conn.execute(
            referrals.insert(),
            [
                _referral(ws, 1, ann, bob, "rewarded"),
                _referral(ws, 2, ann, cy, "qualified"),
                _referral(ws, 3, bob, dee, "rejected"),
                _referral(ws, 4, cy, "someone", "pending"),
            ],
        )
        conn.execute(
            group_buy_members.insert(),
            [
                {
                    "workspace_id": ws,
                    "group_id": "g1",
                    "seat": seat,
                    "customer_id": c,
                    "member_key": f"m{seat}",
                    "paid_price": 10,
                    "currency": "USD",
                    "joined_at": day,
                    "status": status,
                }
                for seat, (c, status) in enumerate(((bob, "confirmed"), (dee, "voided")))
            ],
        )
        conn.execute(
            assists.insert(),
            [
                {
                    "workspace_id": ws,
                    "campaign_id": "a1",
                    "target_key": "t",
                    "helper_key": "h",
                    "target_id": ann,
                    "helper_id": dee,
                    "local_day": day.date(),
                    "slot": 0,
                    "created_at": day,
                }
            ],
        )
    run_tags(rt.db, rt.workspace(), as_of=AS_OF)
    expected = {
        "points_holder": {"ann", "bob", "cy"},
        "points_1000": {"ann", "bob"},
        "points_5000": {"ann"},
        "member_silver": {"cy"},
        "member_gold": {"bob"},
        "member_black": {"ann"},
        "paid_subscriber": {"ann"},
        "referred_customer": {"bob", "cy"},
        "successful_inviter": {"ann"},
        "super_inviter": set(),
        "group_buy_participant": {"bob"},
        "assist_helper": {"dee"},
    }
    assert set(expected) == set(LOYALTY_TAGS)
    assert {tag: _members(rt, tag) for tag in expected} == expected
    with rt.db.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(points_ledger)).scalar() == 5
