"""Fission metrics over one month, against values computed by hand (both engines).

The month is March 2026. ann and bob invite; cat and dan are ann's qualified friends (cat
rewarded, dan qualified), eve's referral by bob was rejected, gus's is pending, hal was referred
by ann in February and rewarded in March. eve, fay and ivy are organic newcomers.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from siyu.collect.rows import customer_key
from siyu.errors import InvalidInput
from siyu.fission.metrics import Cohort, Inviter, fission_metrics
from siyu.fission.tables import referral_codes, referrals
from siyu.predict.tables import customer_scores
from siyu.runtime import Runtime
from tests.loyalty.helpers import iso, order

SINCE = datetime(2026, 3, 1)
UNTIL = datetime(2026, 4, 1)


def _d(month: int, day: int, hour: int = 12) -> datetime:
    return datetime(2026, month, day, hour)


def _event(name: str, n: int, at: datetime, code: str, user: str | None) -> dict[str, Any]:
    who = {"userId": user} if user else {"anonymousId": f"visitor-{n}"}
    return {
        "type": "track",
        "event": name,
        "messageId": f"{name[:14]}-{n}",
        "timestamp": iso(at),
        "properties": {"referral_code": code, "channel": "whatsapp"},
        **who,
    }


def _referral(
    ws: str, rid: str, referrer: str, friend: str, state: str, created: datetime, **extra: Any
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "workspace_id": ws,
        "referral_id": rid,
        "code": "?",
        "referrer_id": referrer,
        "friend_id": friend,
        "friend_key": friend,
        "state": state,
        "created_at": created,
        "updated_at": created,
    }
    optional = ("reason", "order_placed_at", "order_total", "fx_rate", "qualified_at")
    blank = dict.fromkeys((*optional, "rewarded_at", "reward_cost_base"))
    return {**row, **blank, **extra}


def _seed(rt: Runtime) -> dict[str, str]:
    ws = rt.workspace().workspace_id
    names = ("ann", "bob", "cat", "dan", "eve", "fay", "gus", "hal", "ivy")
    ids = {n: customer_key(ws, n, None) or "" for n in names}
    orders = [
        order("ann", "a1", 10, at=_d(2, 10)),
        order("ann", "a2", 10, at=_d(3, 5)),
        order("cat", "c1", 50, at=_d(3, 10)),
        order("cat", "c2", 20, at=_d(3, 25)),  # within 30 days: retained
        order("dan", "d1", 30, at=_d(3, 12)),
        order("eve", "e1", 15, at=_d(3, 15)),
        order("eve", "e2", 15, at=_d(4, 5)),  # after the range but within 30 days: retained
        order("fay", "f1", 25, at=_d(3, 20)),
        order("fay", "f2", 25, at=_d(5, 1)),  # 42 days later: not retained
        order("hal", "h1", 40, at=_d(2, 3)),
        order("ivy", "i1", 12, at=_d(3, 30)),
    ]
    shared = "Referral Link Shared"
    clicked = "Referral Link Clicked"
    events = [
        _event(shared, 1, _d(2, 28), "ANNCODE1", "ann"),  # before the range
        _event(shared, 2, _d(3, 1, 0), "ANNCODE1", "ann"),
        _event(shared, 3, _d(3, 2), "ANNCODE1", "ann"),
        _event(shared, 4, _d(3, 3), "ANNCODE1", "ann"),
        _event(shared, 5, _d(3, 4), "BOBCODE1", "bob"),
        _event(clicked, 6, _d(3, 1), "ANNCODE1", None),
        _event(clicked, 7, _d(3, 2), "anncode1", None),
        _event(clicked, 8, _d(3, 3), "ANN-CODE1", None),  # normalised like an invite code
        _event(clicked, 9, _d(3, 9), "ANNCODE1", None),
        _event(clicked, 10, _d(3, 5), "BOBCODE1", None),
        _event(clicked, 11, _d(3, 6), "BOBCODE1", None),
        _event(clicked, 12, datetime(2026, 4, 1), "BOBCODE1", None),  # until is excluded
    ]
    rt.pipeline().ingest(orders + events)
    a, b = ids["ann"], ids["bob"]
    rows = [
        _referral(ws, "r1", a, ids["cat"], "rewarded", _d(3, 9), order_placed_at=_d(3, 10),
                  order_total=Decimal(50), fx_rate=Decimal("1.1"), qualified_at=_d(3, 11),
                  rewarded_at=_d(3, 20), reward_cost_base=Decimal(40)),
        _referral(ws, "r2", a, ids["dan"], "qualified", _d(3, 11), order_placed_at=_d(3, 12),
                  order_total=Decimal(30), fx_rate=Decimal(1), qualified_at=_d(3, 13)),
        _referral(ws, "r3", b, ids["eve"], "rejected", _d(3, 14), reason="self_referral"),
        _referral(ws, "r4", b, ids["gus"], "pending", _d(3, 28)),
        _referral(ws, "r5", a, ids["hal"], "rewarded", _d(2, 1), order_placed_at=_d(2, 3),
                  order_total=Decimal(40), fx_rate=Decimal(1), qualified_at=_d(2, 4),
                  rewarded_at=_d(3, 5), reward_cost_base=Decimal(20)),
    ]  # fmt: skip
    scores = {"cat": 120.0, "dan": 80.0, "eve": 60.0, "ivy": 30.0, "hal": 500.0}
    with rt.db.engine.begin() as conn:
        conn.execute(
            referral_codes.insert(),
            [
                {"workspace_id": ws, "code": "ANNCODE1", "customer_id": a, "created_at": _d(1, 1)},
                {"workspace_id": ws, "code": "BOBCODE1", "customer_id": b, "created_at": _d(1, 1)},
            ],
        )
        conn.execute(referrals.insert(), rows)
        conn.execute(
            customer_scores.insert(),
            [{"workspace_id": ws, "customer_id": ids[n], "clv_12m": v} for n, v in scores.items()],
        )
    return ids


def test_metrics_of_one_month_match_the_hand_computed_values(rt: Runtime) -> None:
    ids = _seed(rt)
    m = fission_metrics(rt.db, rt.workspace().workspace_id, SINCE, UNTIL)
    assert (m.invites_sent, m.sharers, m.visits) == (4, 2, 6)
    assert m.fission_coefficient == pytest.approx(1.5)
    assert (m.referrals_created, m.referred_customers) == (4, 2)  # r1..r4; r1, r2 converted
    assert m.invite_conversion == pytest.approx(0.5)
    assert m.active_customers == 6  # ann, cat, dan, eve, fay and ivy ordered in March
    assert m.invites_per_customer == pytest.approx(4 / 6)
    assert m.k_factor == pytest.approx(4 / 6 * 0.5)
    # New in March: cat, dan (referred); eve (rejected referral), fay, ivy (organic).
    assert m.referred == Cohort(2, 1, 0.5, 2, 100.0)
    assert m.organic.customers == 3
    assert m.organic.retained_30d == 1
    assert m.organic.retention_30d == pytest.approx(1 / 3)
    assert (m.organic.scored, m.organic.avg_clv_12m) == (2, pytest.approx(45.0))
    assert (m.reward_cost_base, m.rewarded_referrals) == (60.0, 2)  # r1 and r5 in March
    assert m.cost_per_referred_customer == pytest.approx(30.0)
    assert m.top_inviters == [
        Inviter(ids["ann"], 3, 4, 2, 2, 85.0),  # 50 x 1.1 + 30
        Inviter(ids["bob"], 1, 2, 2, 0, 0.0),
    ]
    out = m.to_dict()
    assert out["since"] == "2026-03-01T00:00:00"
    assert out["referred"]["avg_clv_12m"] == 100.0
    assert out["top_inviters"][0]["referred_revenue_base"] == 85.0
    top1 = fission_metrics(rt.db, rt.workspace().workspace_id, SINCE, UNTIL, top=1)
    assert [i.customer_id for i in top1.top_inviters] == [ids["ann"]]


def test_an_empty_range_has_counts_of_zero_and_no_ratios(rt: Runtime) -> None:
    _seed(rt)
    m = fission_metrics(
        rt.db, rt.workspace().workspace_id, datetime(2025, 1, 1), datetime(2025, 2, 1)
    )
    assert (m.invites_sent, m.visits, m.referred_customers, m.active_customers) == (0, 0, 0, 0)
    assert (m.fission_coefficient, m.invite_conversion, m.k_factor) == (None, None, None)
    assert m.referred == Cohort(0, 0, None, 0, None)
    assert m.cost_per_referred_customer is None
    assert m.top_inviters == []
    with pytest.raises(InvalidInput, match="before it starts"):
        fission_metrics(rt.db, rt.workspace().workspace_id, UNTIL, SINCE)


def test_the_referred_group_follows_the_referrals_friend_id(rt: Runtime) -> None:
    # friend_id follows One-ID merges (friend_key never changes); the cohort joins on friend_id,
    # so a referral re-keyed to another customer moves that customer into the referred group.
    ids = _seed(rt)
    ws = rt.workspace().workspace_id
    with rt.db.engine.begin() as conn:
        conn.execute(
            sa.update(referrals).where(referrals.c.referral_id == "r2").values(friend_id=ids["fay"])
        )
    m = fission_metrics(rt.db, ws, SINCE, UNTIL)
    assert m.referred.customers == 2  # cat and fay
    assert m.referred.retained_30d == 1
    assert m.referred.avg_clv_12m == pytest.approx(120.0)  # fay has no score
    assert m.organic.customers == 3  # dan, eve, ivy
