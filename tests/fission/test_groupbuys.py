"""Group buys (拼团) on both engines: join, full group confirms, expiry voids, tiers refund."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from siyu.errors import InvalidInput, NotFound
from siyu.fission.events import publish
from siyu.fission.groupbuys import (
    GroupBuyRefused,
    close_due,
    create_campaign,
    get_group,
    join_group,
    list_groups,
    open_group,
)
from siyu.runtime import Runtime
from tests.fission.helpers import T0, customer, events

H = timedelta(hours=1)


def _campaign(rt: Runtime, **kw: object) -> str:
    args: dict[str, object] = {
        "name": "Serum trio",
        "product_id": "serum-30ml",
        "currency": "USD",
        "list_price": Decimal(100),
        "group_size": 3,
        "discount_pct": Decimal(30),
        "time_limit_hours": 24,
        "now": T0,
    }
    args.update(kw)
    with rt.db.engine.begin() as conn:
        campaign = create_campaign(conn, rt.workspace().workspace_id, **args)  # type: ignore[arg-type]
    return str(campaign["campaign_id"])


def test_full_group_confirms_every_member_at_the_group_price(rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    lead, a, b, c = (customer(rt, u) for u in ("lead", "a", "b", "c"))
    cid = _campaign(rt)
    group = open_group(rt.db, ws, cid, lead, order_id="o-lead", now=T0 + H)
    assert (group["status"], group["members"], group["size"]) == ("open", 1, 3)
    assert group["expires_at"] == T0 + 25 * H
    gid = group["group_id"]
    assert join_group(rt.db, ws, gid, a, now=T0 + 2 * H)["members"] == 2
    with pytest.raises(GroupBuyRefused, match="already in group"):
        join_group(rt.db, ws, gid, a, now=T0 + 2 * H)
    done = join_group(rt.db, ws, gid, b, now=T0 + 3 * H)
    assert done["status"] == "completed"
    assert done["final_price"] == Decimal("70.00")
    assert [m["seat"] for m in done["member_list"]] == [1, 2, 3]
    assert {m["status"] for m in done["member_list"]} == {"confirmed"}
    assert {m["confirmed_price"] for m in done["member_list"]} == {Decimal("70.00")}
    assert {m["refund_amount"] for m in done["member_list"]} == {Decimal(0)}
    # The group is full: the next friend is refused, the group stays at its size.
    with pytest.raises(GroupBuyRefused, match="completed"):
        join_group(rt.db, ws, gid, c, now=T0 + 4 * H)
    with rt.db.engine.connect() as conn:
        assert get_group(conn, ws, gid)["members"] == 3
    # Settling later changes nothing.
    assert close_due(rt.db, ws, now=T0 + 48 * H) == {"completed": 0, "expired": 0}

    assert publish(rt.db, ws) == 6
    assert publish(rt.db, ws) == 0
    (opened,) = events(rt, "Group Buy Opened")
    assert opened["customer_id"] == lead
    assert opened["paid_price"] == 70
    assert opened["order_id"] == "o-lead"
    assert [e["seat"] for e in events(rt, "Group Buy Joined")] == [2, 3]
    completed = events(rt, "Group Buy Completed")
    assert sorted(e["customer_id"] for e in completed) == sorted([lead, a, b])
    assert {e["confirmed_price"] for e in completed} == {70}


def test_expired_group_is_voided_and_refunded(rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    lead, a, late = (customer(rt, u) for u in ("lead", "a", "late"))
    cid = _campaign(rt, price=Decimal("69.90"), discount_pct=None, time_limit_hours=2)
    gid = open_group(rt.db, ws, cid, lead, now=T0)["group_id"]
    join_group(rt.db, ws, gid, a, now=T0 + H)
    # Not due yet.
    assert close_due(rt.db, ws, now=T0 + H) == {"completed": 0, "expired": 0}
    # After the time limit nobody can join, even before the settlement ran.
    with pytest.raises(GroupBuyRefused, match="expired"):
        join_group(rt.db, ws, gid, late, now=T0 + 2 * H)
    assert close_due(rt.db, ws, now=T0 + 2 * H) == {"completed": 0, "expired": 1}
    assert close_due(rt.db, ws, now=T0 + 3 * H) == {"completed": 0, "expired": 0}
    with rt.db.engine.connect() as conn:
        group = get_group(conn, ws, gid)
        assert [g["group_id"] for g in list_groups(conn, ws, status="expired")] == [gid]
    assert group["status"] == "expired"
    assert group["final_price"] is None
    assert {m["status"] for m in group["member_list"]} == {"voided"}
    assert {m["refund_amount"] for m in group["member_list"]} == {Decimal("69.90")}
    publish(rt.db, ws)
    expired = events(rt, "Group Buy Expired")
    assert sorted(e["customer_id"] for e in expired) == sorted([lead, a])
    assert {e["refund_amount"] for e in expired} == {69.9}


def test_tiered_group_confirms_at_the_tier_reached_and_refunds_the_difference(
    rt: Runtime,
) -> None:
    ws = rt.workspace().workspace_id
    people = [customer(rt, f"p{i}") for i in range(6)]
    tiers = [{"members": 2, "price": 80}, {"members": 3, "price": 70}, {"members": 5, "price": 60}]
    cid = _campaign(rt, group_size=5, discount_pct=None, tiers=tiers)
    # Group one: three members when time runs out -> 70 each, 10 back (they paid 80).
    g1 = open_group(rt.db, ws, cid, people[0], now=T0)["group_id"]
    for p in people[1:3]:
        assert join_group(rt.db, ws, g1, p, now=T0 + H)["status"] == "open"
    # Group two: full (5) -> completes at once at 60, 20 back each.
    g2 = open_group(rt.db, ws, cid, people[5], now=T0)["group_id"]
    for p in people[:4]:
        last = join_group(rt.db, ws, g2, p, now=T0 + H)
    assert last["status"] == "completed"
    assert {m["refund_amount"] for m in last["member_list"]} == {Decimal(20)}
    # Group three: only the leader -> below the smallest tier -> voided, full refund.
    g3 = open_group(rt.db, ws, cid, people[4], now=T0)["group_id"]
    assert close_due(rt.db, ws, now=T0 + 24 * H) == {"completed": 1, "expired": 1}
    with rt.db.engine.connect() as conn:
        one, three = get_group(conn, ws, g1), get_group(conn, ws, g3)
    assert (one["status"], one["final_price"]) == ("completed", Decimal(70))
    assert {m["paid_price"] for m in one["member_list"]} == {Decimal(80)}
    assert {m["refund_amount"] for m in one["member_list"]} == {Decimal(10)}
    assert three["status"] == "expired"
    assert [m["refund_amount"] for m in three["member_list"]] == [Decimal(80)]


def test_campaign_rules_are_checked(rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    lead = customer(rt, "lead")
    with pytest.raises(InvalidInput, match="either tiers or one price"):
        _campaign(rt, tiers=[{"members": 2, "price": 80}])
    with pytest.raises(InvalidInput, match="one of them"):
        _campaign(rt, discount_pct=None)
    with pytest.raises(InvalidInput, match="fall as tiers grow"):
        _campaign(
            rt,
            discount_pct=None,
            tiers=[{"members": 2, "price": 60}, {"members": 3, "price": 70}],
        )
    with pytest.raises(InvalidInput, match="group_size"):
        _campaign(rt, group_size=1)
    with pytest.raises(InvalidInput, match="at most the list price"):
        _campaign(rt, price=Decimal(120), discount_pct=None)
    cid = _campaign(rt, starts_at=T0 + 24 * H)
    with pytest.raises(GroupBuyRefused, match="not running now"):
        open_group(rt.db, ws, cid, lead, now=T0)
    with pytest.raises(NotFound, match="No group-buy campaign"):
        open_group(rt.db, ws, "gbc_missing", lead, now=T0)
    with pytest.raises(NotFound, match="No group"):
        join_group(rt.db, ws, "grp_missing", lead, now=T0)


def test_the_serve_worker_pass_settles_expired_groups(rt: Runtime) -> None:
    """What 'siyu serve' runs every fission_every_seconds: no cron needed for refunds."""
    from siyu.fission.schedule import _pass

    ws = rt.workspace().workspace_id
    lead = customer(rt, "lead")
    cid = _campaign(rt, time_limit_hours=1)
    gid = open_group(rt.db, ws, cid, lead, now=T0)["group_id"]
    _pass(rt)
    with rt.db.engine.connect() as conn:
        assert get_group(conn, ws, gid)["status"] == "expired"
    assert [e["customer_id"] for e in events(rt, "Group Buy Expired")] == [lead]
