"""Paid membership, bonuses with the local-day check-in cap, merges (both engines)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from siyu.errors import Conflict
from siyu.identity.follow import staged_moves
from siyu.loyalty import membership
from siyu.loyalty.bonuses import award
from siyu.loyalty.ledger import balances, earn
from siyu.loyalty.plugin import follow_merges
from siyu.loyalty.summary import member_summary
from siyu.loyalty.sync import sync
from siyu.runtime import Runtime
from siyu.store import schema
from tests.loyalty.helpers import customer, events

NOW = datetime(2026, 3, 31, 12, 0)


def test_membership_start_renew_lapse_and_profile(rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    cid = customer(rt, "ann", at=NOW)
    with rt.db.engine.begin() as conn:
        membership.create_plan(
            conn,
            ws,
            "plus",
            name="Plus",
            price="49",
            currency="EUR",
            period_months=1,
            grace_days=3,
            benefits=["free shipping", "double points days"],
            now=NOW,
        )
    m = membership.start(rt.db, ws, cid, "plus", key="pay-1", now=NOW, reference="order-9")
    assert m.ends_at == datetime(2026, 4, 30, 12, 0)  # one month, last day of April
    assert not membership.start(rt.db, ws, cid, "plus", key="pay-1", now=NOW).created
    with pytest.raises(Conflict, match="is a member \\(plus\\) until 2026-04-30"):
        membership.start(rt.db, ws, cid, "plus", key="pay-2", now=NOW)
    # Paying early never loses days: the new period starts at the old end.
    r = membership.renew(rt.db, ws, cid, key="pay-3", now=datetime(2026, 4, 20))
    assert r.ends_at == datetime(2026, 5, 30, 12, 0)
    with rt.db.engine.connect() as conn:
        summary = member_summary(conn, ws, cid)
    assert summary is not None
    assert summary["membership"]["status"] == "active"
    assert summary["membership"]["benefits"] == ["free shipping", "double points days"]
    # Inside the grace period nothing lapses; after it, the sweep lapses it once.
    assert sync(rt.db, ws, now=datetime(2026, 6, 1)).memberships_lapsed == 0
    assert sync(rt.db, ws, now=datetime(2026, 6, 3)).memberships_lapsed == 1
    assert sync(rt.db, ws, now=datetime(2026, 6, 4)).memberships_lapsed == 0
    with pytest.raises(Conflict, match="past the 3-day grace period"):
        membership.renew(rt.db, ws, cid, key="pay-4", now=datetime(2026, 6, 4))
    names = sorted(
        e["properties"].get("plan_id") and e["customer_id"] for e in events(rt, "Membership Lapsed")
    )
    assert names == [cid]
    assert len(events(rt, "Membership Started")) == 1
    assert len(events(rt, "Membership Renewed")) == 1
    again = membership.start(rt.db, ws, cid, "plus", key="pay-5", now=datetime(2026, 6, 4))
    assert again.status == "active"


def test_checkin_cap_follows_the_customers_local_day(rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    tokyo = customer(rt, "tk", at=NOW)
    la = customer(rt, "la", at=NOW)
    with rt.db.engine.begin() as conn:
        for cid, tz in ((tokyo, "Asia/Tokyo"), (la, "America/Los_Angeles")):
            conn.execute(
                schema.customers.update()
                .where(schema.customers.c.customer_id == cid)
                .values(timezone=tz)
            )
    # 14:30 UTC is 23:30 in Tokyo; 15:30 UTC is already the next day there.
    late = datetime(2026, 3, 31, 14, 30)
    award(rt.db, ws, tokyo, "checkin", now=late)
    with pytest.raises(Conflict, match="already checked in 1 time\\(s\\) on 2026-03-31"):
        award(rt.db, ws, tokyo, "checkin", now=late + timedelta(minutes=20))
    award(rt.db, ws, tokyo, "checkin", now=late + timedelta(hours=1))  # 2026-04-01 in Tokyo
    # For Los Angeles (UTC-7) both moments are the same morning of March 31.
    award(rt.db, ws, la, "checkin", now=late)
    with pytest.raises(Conflict, match="on 2026-03-31"):
        award(rt.db, ws, la, "checkin", now=late + timedelta(hours=1))
    with rt.db.engine.connect() as conn:
        assert balances(conn, ws, [tokyo, la]) == {tokyo: 10, la: 5}
    review = award(rt.db, ws, la, "review", now=NOW, reference="rev-1")
    assert review.points == 50
    assert not award(rt.db, ws, la, "review", now=NOW, reference="rev-1").created
    with pytest.raises(Conflict, match="is not the birthday"):
        award(rt.db, ws, la, "birthday", now=NOW)


def test_merge_moves_points_to_the_survivor(rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    earn(rt.db, ws, "old", 30, key="a", reason="signup", now=NOW)
    earn(rt.db, ws, "new", 12, key="b", reason="signup", now=NOW)
    with rt.db.engine.begin() as conn, staged_moves(conn, [("old", "new")]) as moves:
        assert follow_merges(conn, ws, moves) >= 1
    with rt.db.engine.connect() as conn:
        assert balances(conn, ws, ["old", "new"]) == {"old": 0, "new": 42}
        accounts = conn.execute(sa.text("SELECT customer_id FROM loyalty_accounts")).scalars().all()
    assert accounts == ["new"]
