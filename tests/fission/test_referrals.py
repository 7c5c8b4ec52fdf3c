"""Referrals on both engines: states, two-sided held rewards, every fraud rule, review."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from siyu.errors import Conflict, InvalidInput, NotFound
from siyu.fission.events import publish
from siyu.fission.program import save_program
from siyu.fission.qualify import process_referrals
from siyu.fission.referrals import get_referral, invite_code, list_referrals, refer, review
from siyu.loyalty.tables import coupons
from siyu.runtime import Runtime
from tests.fission.helpers import T0, customer, events, ingest, order, refund

H = timedelta(hours=1)
D = timedelta(days=1)


def _state(rt: Runtime, referral_id: str) -> tuple[str, str | None]:
    with rt.db.engine.connect() as conn:
        r = get_referral(conn, rt.workspace().workspace_id, referral_id)
    return r["state"], r["reason"]


def _coupons(rt: Runtime) -> list[tuple[str, str]]:
    with rt.db.engine.connect() as conn:
        rows = conn.execute(sa.select(coupons.c.customer_id, coupons.c.spec)).all()
    return sorted((str(r[0]), str(r[1]["currency"]) + str(r[1]["amount"])) for r in rows)


def test_friend_first_order_qualifies_and_both_get_rewards_after_the_return_window(
    rt: Runtime,
) -> None:
    ws = rt.workspace().workspace_id
    alice, bob = customer(rt, "alice"), customer(rt, "bob")
    code = invite_code(rt.db, ws, alice)
    assert code.created
    assert len(code.code) == 8
    again = invite_code(rt.db, ws, alice)
    assert again.code == code.code
    assert not again.created
    assert code.link("https://shop.example/") == f"https://shop.example/r/{code.code}"

    ref, created = refer(rt.db, ws, code.code.lower(), bob, now=T0 + H)
    assert created
    assert ref["state"] == "pending"
    assert ref["referrer_id"] == alice
    # The same friend through the same or another code: the first referral stands.
    same, created = refer(rt.db, ws, code.code, bob, now=T0 + 2 * H)
    assert not created
    assert same["referral_id"] == ref["referral_id"]

    ingest(rt, order("bob", "o-bob-1", 3000, currency="JPY", at=T0 + 2 * D))
    report = process_referrals(rt.db, ws, now=T0 + 3 * D)
    assert report.qualified == 1
    with rt.db.engine.connect() as conn:
        stored = get_referral(conn, ws, ref["referral_id"])
    assert stored["state"] == "qualified"
    assert stored["order_id"] == "o-bob-1"
    assert stored["hold_until"] == T0 + 2 * D + 30 * D  # the return window

    # Held: nothing is granted before the return window closes.
    assert process_referrals(rt.db, ws, now=T0 + 31 * D).rewarded == 0
    assert _coupons(rt) == []
    assert process_referrals(rt.db, ws, now=T0 + 33 * D).rewarded == 1
    # A coupon worth 20 in the friend's currency for both sides.
    assert _coupons(rt) == sorted([(alice, "JPY20"), (bob, "JPY20")])
    # Running again (or a second processor) issues nothing more.
    assert process_referrals(rt.db, ws, now=T0 + 34 * D).rewarded == 0
    assert len(_coupons(rt)) == 2
    assert _state(rt, ref["referral_id"]) == ("rewarded", None)

    assert publish(rt.db, ws) == 3
    assert publish(rt.db, ws) == 0
    names = ["Referral Created", "Referral Qualified", "Referral Rewarded"]
    for name in names:
        (event,) = events(rt, name)
        assert event["referral_id"] == ref["referral_id"]
        assert event["customer_id"] == alice
    assert "Coupon" in events(rt, "Referral Rewarded")[0]["friend_reward"]


def test_rejections_with_reasons(rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    owner = customer(rt, "owner")
    code = invite_code(rt.db, ws, owner).code
    # Self-referral with one's own code.
    me, _ = refer(rt.db, ws, code, owner, now=T0)
    assert (me["state"], me["reason"]) == ("rejected", "self_referral")
    # A friend who has ordered before is not a new customer.
    customer(rt, "old")
    ingest(rt, order("old", "o-old", 50, at=T0 - 10 * D))
    old, _ = refer(rt.db, ws, code, customer(rt, "old"), now=T0)
    assert (old["state"], old["reason"]) == ("rejected", "existing_customer")
    # First order after the 30-day attribution window.
    late, _ = refer(rt.db, ws, code, customer(rt, "late"), now=T0)
    ingest(rt, order("late", "o-late", 50, at=T0 + 31 * D))
    # No order at all within the window.
    idle, _ = refer(rt.db, ws, code, customer(rt, "idle"), now=T0)
    # Refunded during the hold.
    back, _ = refer(rt.db, ws, code, customer(rt, "back"), now=T0)
    ingest(rt, order("back", "o-back", 80, at=T0 + D))
    # Below the programme's minimum.
    with rt.db.engine.begin() as conn:
        save_program(conn, ws, {"min_order_base": 30}, "EUR")
    small, _ = refer(rt.db, ws, code, customer(rt, "small"), now=T0)
    ingest(rt, order("small", "o-small", 10, at=T0 + D))

    report = process_referrals(rt.db, ws, now=T0 + 2 * D)
    assert report.qualified == 1  # back
    assert report.rejected == {"below_minimum": 1}
    ingest(rt, refund("back", "o-back", 80, at=T0 + 5 * D))
    report = process_referrals(rt.db, ws, now=T0 + 40 * D)
    assert report.rejected == {"attribution_expired": 2, "order_refunded": 1}
    assert _state(rt, late["referral_id"]) == ("rejected", "attribution_expired")
    assert _state(rt, idle["referral_id"]) == ("rejected", "attribution_expired")
    assert _state(rt, back["referral_id"]) == ("rejected", "order_refunded")
    assert _state(rt, small["referral_id"]) == ("rejected", "below_minimum")
    assert _coupons(rt) == []
    with rt.db.engine.connect() as conn:
        rejected = list_referrals(conn, ws, state="rejected")
        assert len(rejected) == 6
        with pytest.raises(InvalidInput, match="Unknown referral state"):
            list_referrals(conn, ws, state="done")
    with pytest.raises(NotFound, match="No invite code"):
        refer(rt.db, ws, "NOPE1234", customer(rt, "x"), now=T0)
    with pytest.raises(NotFound, match="No customer 'cus_missing'"):
        refer(rt.db, ws, code, "cus_missing", now=T0)
    with rt.db.engine.begin() as conn, pytest.raises(InvalidInput, match="attribution_days"):
        save_program(conn, ws, {"attribution_days": 0}, "EUR")
    with rt.db.engine.begin() as conn, pytest.raises(InvalidInput, match="not a reward kind"):
        save_program(conn, ws, {"friend_reward": {"kind": "cash"}}, "EUR")


def test_shared_device_address_or_payment_fingerprint_rejects(rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    ref_id = customer(
        rt,
        "ref",
        device="dev-1",
        address={"street": "1 Main St.", "postalCode": "10115", "country": "DE"},
    )
    code = invite_code(rt.db, ws, ref_id).code
    ingest(rt, order("ref", "o-ref", 40, at=T0 - 5 * D, payment="card-xyz"))
    friends = {
        "dev": customer(rt, "dev", device="dev-1"),
        "addr": customer(rt, "addr", address={"street": "1 MAIN ST", "postalCode": "10115"}),
        "pay": customer(rt, "pay"),
        "clean": customer(
            rt, "clean", device="dev-2", address={"street": "9 Side St", "postalCode": "10115"}
        ),
    }
    ids = {k: refer(rt.db, ws, code, v, now=T0)[0]["referral_id"] for k, v in friends.items()}
    ingest(
        rt,
        order("dev", "o-dev", 50, at=T0 + D),
        order("addr", "o-addr", 50, at=T0 + D),
        order("pay", "o-pay", 50, at=T0 + D, payment="card-xyz"),
        order("clean", "o-clean", 50, at=T0 + D, payment="card-abc"),
    )
    process_referrals(rt.db, ws, now=T0 + 2 * D)
    assert _state(rt, ids["dev"]) == ("rejected", "shared_device")
    assert _state(rt, ids["addr"]) == ("rejected", "shared_address")
    assert _state(rt, ids["pay"]) == ("rejected", "shared_payment")
    assert _state(rt, ids["clean"]) == ("qualified", None)


def test_self_referral_found_after_identity_resolution(rt: Runtime) -> None:
    """The referrer opens their own link in a private window: an anonymous visitor who later
    logs in as the referrer; One-ID merges the two and the referral becomes a self-referral."""
    from siyu.collect.rows import customer_key
    from siyu.identity import resolve_workspace

    ws = rt.workspace().workspace_id
    me = customer(rt, "me")
    code = invite_code(rt.db, ws, me).code
    ingest(
        rt,
        {
            "type": "page",
            "anonymousId": "anon-1",
            "messageId": "pg-1",
            "timestamp": (T0 + H).isoformat() + "Z",
            "name": "Invite",
        },
    )
    visitor = customer_key(ws, None, "anon-1")
    assert visitor is not None
    ref, _ = refer(rt.db, ws, code, visitor, now=T0 + H)
    assert ref["state"] == "pending"
    login = {
        "type": "identify",
        "userId": "me",
        "anonymousId": "anon-1",
        "messageId": "id-login",
        "timestamp": (T0 + 2 * H).isoformat() + "Z",
        "traits": {"email": "me@example.com"},
    }
    ingest(rt, login, order("me", "o-me", 50, at=T0 + D))
    with rt.db.engine.begin() as conn:
        resolve_workspace(conn, ws)
    process_referrals(rt.db, ws, now=T0 + 2 * D)
    assert _state(rt, ref["referral_id"]) == ("rejected", "self_referral")


def test_ip_burst_is_flagged_and_held_for_review(rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    code = invite_code(rt.db, ws, customer(rt, "koc")).code
    ids = []
    for i in range(8):
        ids.append(refer(rt.db, ws, code, customer(rt, f"f{i}"), now=T0)[0]["referral_id"])
    # Four referred purchases from one IP within a day: more than 3, flagged. Three from
    # another IP: not flagged. A fifth from the first IP 25 hours after the last: its window
    # holds only itself, not flagged.
    ingest(
        rt,
        *[order(f"f{i}", f"o{i}", 50, at=T0 + D + i * H, ip="203.0.113.7") for i in range(4)],
        *[order(f"f{i}", f"o{i}", 50, at=T0 + D, ip="198.51.100.1") for i in range(4, 7)],
        order("f7", "o7", 50, at=T0 + D + 28 * H, ip="203.0.113.7"),
    )
    report = process_referrals(rt.db, ws, now=T0 + 3 * D)
    assert (report.qualified, report.flagged) == (8, 4)
    assert process_referrals(rt.db, ws, now=T0 + 40 * D).rewarded == 4  # only the clean ones
    with rt.db.engine.connect() as conn:
        flags = {r["referral_id"]: r["flag"] for r in list_referrals(conn, ws)}
    assert [flags[i] for i in ids] == ["ip_burst"] * 4 + [None] * 4

    approved = review(rt.db, ws, ids[0], approve=True, now=T0 + 41 * D)
    assert approved["flag"] == "cleared"
    rejected = review(rt.db, ws, ids[1], approve=False, reason="fraud_ring", now=T0 + 41 * D)
    assert (rejected["state"], rejected["reason"]) == ("rejected", "fraud_ring")
    with pytest.raises(Conflict, match="already rejected"):
        review(rt.db, ws, ids[1], approve=True)
    assert process_referrals(rt.db, ws, now=T0 + 42 * D).rewarded == 1
    assert _state(rt, ids[0]) == ("rewarded", None)
    assert _state(rt, ids[2])[0] == "qualified"  # still held
    publish(rt.db, ws)
    assert [e["referral_id"] for e in events(rt, "Referral Approved")] == [ids[0]]
    assert len(events(rt, "Referral Flagged")) == 4


def test_order_placed_before_the_referral_but_received_later_is_an_existing_customer(
    rt: Runtime,
) -> None:
    ws = rt.workspace().workspace_id
    code = invite_code(rt.db, ws, customer(rt, "koc")).code
    ref, _ = refer(rt.db, ws, code, customer(rt, "late-sync"), now=T0)
    assert ref["state"] == "pending"
    # The store's export arrives after the referral, with an order from the week before.
    ingest(rt, order("late-sync", "o-old", 60, at=T0 - 7 * D))
    process_referrals(rt.db, ws, now=T0 + D)
    assert _state(rt, ref["referral_id"]) == ("rejected", "existing_customer")


def test_two_referred_identities_of_one_friend_keep_the_first_referral(rt: Runtime) -> None:
    """A friend used two invite codes, once anonymously and once logged in; One-ID merges the
    two identities and only the earliest referral can qualify (no double reward)."""
    from siyu.collect.rows import customer_key
    from siyu.identity import resolve_workspace

    ws = rt.workspace().workspace_id
    first_code = invite_code(rt.db, ws, customer(rt, "koc1")).code
    second_code = invite_code(rt.db, ws, customer(rt, "koc2")).code
    ingest(
        rt,
        {
            "type": "page",
            "anonymousId": "anon-9",
            "messageId": "pg-9",
            "timestamp": (T0 + H).isoformat() + "Z",
            "name": "Invite",
        },
    )
    visitor = customer_key(ws, None, "anon-9")
    assert visitor is not None
    early, _ = refer(rt.db, ws, first_code, visitor, now=T0 + H)
    late, _ = refer(rt.db, ws, second_code, customer(rt, "pat"), now=T0 + 2 * H)
    login = {
        "type": "identify",
        "userId": "pat",
        "anonymousId": "anon-9",
        "messageId": "id-pat-login",
        "timestamp": (T0 + 3 * H).isoformat() + "Z",
        "traits": {"email": "pat@example.com"},
    }
    ingest(rt, login, order("pat", "o-pat", 50, at=T0 + D))
    with rt.db.engine.begin() as conn:
        resolve_workspace(conn, ws)
    report = process_referrals(rt.db, ws, now=T0 + 2 * D)
    assert report.qualified == 1
    assert _state(rt, early["referral_id"]) == ("qualified", None)
    assert _state(rt, late["referral_id"]) == ("rejected", "duplicate_friend")


def test_many_referrals_move_in_one_set_based_statement(rt: Runtime) -> None:
    """Past 20 rows the updates and the state log go through staged Arrow tables."""
    ws = rt.workspace().workspace_id
    code = invite_code(rt.db, ws, customer(rt, "koc", device="koc-phone")).code
    ids = [
        refer(rt.db, ws, code, customer(rt, f"m{i}"), now=T0)[0]["referral_id"] for i in range(24)
    ]
    idle = [
        refer(rt.db, ws, code, customer(rt, f"n{i}"), now=T0)[0]["referral_id"] for i in range(22)
    ]
    ingest(
        rt,
        *[
            order(f"m{i}", f"om{i}", 30 + i, at=T0 + D + i * H, ip=f"198.51.100.{i}")
            for i in range(23)
        ],
        order("m23", "om23", 30, at=T0 + D, payment="shared-card"),
        order("koc", "o-koc", 30, at=T0 - D, payment="shared-card"),
    )
    report = process_referrals(rt.db, ws, now=T0 + 30 * D + H)
    assert report.qualified == 23
    assert report.rejected == {"shared_payment": 1, "attribution_expired": 22}
    with rt.db.engine.connect() as conn:
        rows = {r["referral_id"]: r for r in list_referrals(conn, ws, limit=1000)}
        logged = conn.execute(
            sa.text("SELECT state, count(*) FROM referral_changes GROUP BY state ORDER BY state")
        ).all()
    assert [(s, int(n)) for s, n in logged] == [
        ("created", 46),
        ("qualified", 23),
        ("rejected", 23),
    ]
    first = rows[ids[5]]
    assert (first["state"], first["order_id"], first["order_ip"]) == (
        "qualified",
        "om5",
        "198.51.100.5",
    )
    assert float(first["order_total"]) == 35
    assert first["hold_until"] == T0 + D + 5 * H + 30 * D
    assert (rows[ids[23]]["state"], rows[ids[23]]["reason"]) == ("rejected", "shared_payment")
    assert rows[ids[23]]["hold_until"] is None
    assert {rows[i]["reason"] for i in idle} == {"attribution_expired"}
    # A second run changes nothing (the staged updates are guarded by the state they leave).
    again = process_referrals(rt.db, ws, now=T0 + 30 * D + H)
    assert (again.qualified, sum(again.rejected.values())) == (0, 0)
