"""Friend assists (助力) on both engines: thresholds, daily cap in the helper's local day, once
per target, new users only, each reward exactly once (also after a crash)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from siyu.errors import InvalidInput
from siyu.fission.assists import AssistRefused, assist, create_campaign, progress, sync_rewards
from siyu.fission.events import publish
from siyu.fission.tables import assist_rewards
from siyu.loyalty import ledger
from siyu.loyalty.tables import coupons
from siyu.runtime import Runtime
from tests.fission.helpers import T0, customer, events, ingest, order

H = timedelta(hours=1)
D = timedelta(days=1)
SAMPLE = {"kind": "coupon", "amount": 5, "currency": "USD"}
FULL = {"kind": "points", "points": 100}


def _campaign(rt: Runtime, **kw: Any) -> str:
    args: dict[str, Any] = {
        "name": "Unlock the serum",
        "thresholds": [{"helpers": 2, "reward": SAMPLE}, {"helpers": 3, "reward": FULL}],
        "base_currency": "USD",
        "now": T0,
    }
    args.update(kw)
    with rt.db.engine.begin() as conn:
        return str(create_campaign(conn, rt.workspace().workspace_id, **args)["campaign_id"])


def _rewards_of(rt: Runtime, cid: str) -> tuple[int, int]:
    """(coupons held, points balance) of one customer."""
    ws = rt.workspace().workspace_id
    with rt.db.engine.connect() as conn:
        held = conn.execute(
            sa.select(sa.func.count()).select_from(coupons).where(coupons.c.customer_id == cid)
        ).scalar_one()
        points = ledger.balances(conn, ws, [cid])[cid]
    return int(held), int(points)


def test_thresholds_unlock_each_reward_exactly_once(rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    target = customer(rt, "target")
    helpers = [customer(rt, f"h{i}") for i in range(4)]
    cid = _campaign(rt)
    first = assist(rt.db, ws, cid, target, helpers[0], now=T0 + H)
    assert (first["assists"], first["unlocked"]) == (1, [])
    second = assist(rt.db, ws, cid, target, helpers[1], now=T0 + H)
    assert [u["threshold"] for u in second["unlocked"]] == [2]
    assert "Coupon" in second["unlocked"][0]["reward"]
    third = assist(rt.db, ws, cid, target, helpers[2], now=T0 + H)
    assert [u["threshold"] for u in third["unlocked"]] == [3]
    fourth = assist(rt.db, ws, cid, target, helpers[3], now=T0 + H)
    assert (fourth["assists"], fourth["unlocked"]) == (4, [])
    assert _rewards_of(rt, target) == (1, 100)
    # Once per target.
    with pytest.raises(AssistRefused, match="already assisted"):
        assist(rt.db, ws, cid, target, helpers[0], now=T0 + 2 * H)
    with pytest.raises(AssistRefused, match="themselves"):
        assist(rt.db, ws, cid, target, target, now=T0 + 2 * H)
    # A crash after the grant and before its record: the repair records without issuing again.
    with rt.db.engine.begin() as conn:
        conn.execute(sa.delete(assist_rewards).where(assist_rewards.c.threshold == 3))
    assert sync_rewards(rt.db, ws, now=T0 + 3 * H) == 1
    assert sync_rewards(rt.db, ws, now=T0 + 3 * H) == 0
    assert _rewards_of(rt, target) == (1, 100)
    with rt.db.engine.connect() as conn:
        status = progress(conn, ws, cid, target)
    assert status["assists"] == 4
    assert [r["threshold"] for r in status["rewards"]] == [2, 3]

    # Publishing one object's events reads only that object's rows.
    assert publish(rt.db, ws, scope={"campaign_id": cid, "target_id": helpers[0]}) == 0
    assert publish(rt.db, ws, scope={"group_id": "grp_none"}) == 0
    assert publish(rt.db, ws, scope={"campaign_id": cid, "target_id": target}) == 6
    assert publish(rt.db, ws) == 0
    assert len(events(rt, "Assist Given")) == 4
    unlocked = events(rt, "Assist Reward Unlocked")
    assert sorted(e["threshold"] for e in unlocked) == [2, 3]
    assert {e["customer_id"] for e in unlocked} == {target}


def test_daily_cap_counts_in_the_helpers_local_day(rt: Runtime) -> None:
    """Tokyo is UTC+9: 15:00 UTC is midnight there, so a fourth assist at 15:30 UTC opens a
    new day; in Los Angeles (UTC-8) 15:30 UTC is still the same morning and is refused."""
    ws = rt.workspace().workspace_id
    tokyo = customer(rt, "tokyo", timezone="Asia/Tokyo")
    la = customer(rt, "la", timezone="America/Los_Angeles")
    targets = [customer(rt, f"t{i}") for i in range(5)]
    cid = _campaign(rt, daily_cap=3)
    for helper in (tokyo, la):
        for i, hour in enumerate((12, 13, 14)):
            assist(rt.db, ws, cid, targets[i], helper, now=T0.replace(hour=hour))
    for helper in (tokyo, la):
        with pytest.raises(AssistRefused, match="used all 3 assists"):
            assist(rt.db, ws, cid, targets[3], helper, now=T0.replace(hour=14, minute=30))
    assert assist(rt.db, ws, cid, targets[3], tokyo, now=T0.replace(hour=15, minute=30))
    with pytest.raises(AssistRefused, match="their local day"):
        assist(rt.db, ws, cid, targets[3], la, now=T0.replace(hour=15, minute=30))
    # Los Angeles' next day starts at 08:00 UTC on the following day.
    assist(rt.db, ws, cid, targets[3], la, now=T0.replace(hour=8) + D)
    with rt.db.engine.connect() as conn:
        days = conn.execute(
            sa.text(
                "SELECT helper_id, local_day, count(*) FROM assists "
                "GROUP BY helper_id, local_day ORDER BY helper_id, local_day"
            )
        ).all()
    assert [(h, str(d), n) for h, d, n in days] == sorted(
        [
            (la, "2026-03-02", 3),
            (la, "2026-03-03", 1),
            (tokyo, "2026-03-02", 3),
            (tokyo, "2026-03-03", 1),
        ]
    )


def test_new_users_only(rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    target = customer(rt, "target", at=T0 - 30 * D)
    veteran = customer(rt, "veteran", at=T0 - 30 * D)  # seen before the campaign started
    buyer = customer(rt, "buyer", at=T0 + H)
    ingest(rt, order("buyer", "o-buyer", 20, at=T0 + 2 * H))
    fresh = customer(rt, "fresh", at=T0 + H)
    cid = _campaign(rt, new_users_only=True)
    for helper in (veteran, buyer):
        with pytest.raises(AssistRefused, match="new users only"):
            assist(rt.db, ws, cid, target, helper, now=T0 + 3 * H)
    assert assist(rt.db, ws, cid, target, fresh, now=T0 + 3 * H)["assists"] == 1


def test_campaign_rules_are_checked(rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    with pytest.raises(InvalidInput, match="at least one threshold"):
        _campaign(rt, thresholds=[])
    with pytest.raises(InvalidInput, match="must increase"):
        _campaign(rt, thresholds=[{"helpers": 3, "reward": FULL}, {"helpers": 2, "reward": FULL}])
    with pytest.raises(InvalidInput, match="positive whole number"):
        _campaign(rt, thresholds=[{"helpers": 0, "reward": FULL}])
    with pytest.raises(InvalidInput, match="not a reward kind"):
        _campaign(rt, thresholds=[{"helpers": 1, "reward": {"kind": "cash"}}])
    cid = _campaign(rt, starts_at=T0 + D)
    a, b = customer(rt, "a"), customer(rt, "b")
    with pytest.raises(AssistRefused, match="not running"):
        assist(rt.db, ws, cid, a, b, now=T0)
