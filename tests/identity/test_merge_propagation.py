"""Merge propagation: every slice's per-customer rows and consents follow a merge, and a split
puts back exactly the earlier state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa

from siyu.collect.rows import customer_key
from siyu.identity.follow import TableFollower
from siyu.identity.graph import resolve_workspace, split
from siyu.loyalty.ledger import balances, earn
from siyu.registry import registry
from siyu.runtime import Runtime
from siyu.segments.tables import customer_tags
from tests.identity.helpers import identify, ingest, track

T0 = datetime(2025, 1, 10)


def consent(user_id: str, status: str, day: int, channel: str = "email") -> dict[str, Any]:
    msg = track(user_id, day=day, event="Consent Updated")
    msg["properties"] = {"purpose": "marketing", "channel": channel, "status": status}
    return msg


def order(user_id: str, order_id: str, day: int) -> dict[str, Any]:
    msg = track(user_id, day=day, event="Order Completed")
    msg["properties"] = {"order_id": order_id, "total": 25, "currency": "USD"}
    return msg


def _load(rt: Runtime) -> tuple[str, str]:
    """Mia on Shopify (older) and Instagram, sharing an email; different consent histories."""
    ingest(
        rt,
        "shopify",
        [
            identify("6100000071", email="mia@mail.co", day=1),
            consent("6100000071", "granted", 2),
            order("6100000071", "S-1", 3),
            consent("6100000071", "granted", 8),  # latest overall: a grant
            consent("6100000071", "denied", 4, channel="sms"),
        ],
    )
    ingest(
        rt,
        "instagram",
        [
            identify("17841400000000071", email="mia@mail.co", day=5),
            consent("17841400000000071", "withdrawn", 6),  # stricter, but older
            order("17841400000000071", "I-1", 7),
        ],
    )
    ws = rt.workspace().workspace_id
    shop = str(customer_key(ws, "6100000071", None))
    insta = str(customer_key(ws, "17841400000000071", None))
    with rt.db.engine.begin() as conn:
        tags = [("vip", shop), ("vip", insta), ("night_owl", insta)]
        for tag, customer in tags:
            conn.execute(
                sa.text(
                    "INSERT INTO customer_tags (workspace_id, tag_id, customer_id, since) "
                    "VALUES (:ws, :t, :c, :s)"
                ),
                {"ws": ws, "t": tag, "c": customer, "s": T0},
            )
        conn.execute(
            sa.text(
                "INSERT INTO customer_scores (workspace_id, customer_id, model_version, as_of, "
                "scored_at, p_alive, expected_orders_12m, expected_order_value, clv_12m) "
                "VALUES (:ws, :c, 'bgnbd-1', :t, :t, 0.8, 1.5, 30.0, 45.0)"
            ),
            {"ws": ws, "c": insta, "t": T0},
        )
    # Points on both accounts, through the loyalty ledger: two lots for Shopify, one for Instagram.
    for customer, points, key in ((shop, 120, "s-1"), (shop, 30, "s-2"), (insta, 50, "i-1")):
        earn(rt.db, ws, customer, points, key=key, reason="order", now=T0)
    return shop, insta


def _state(rt: Runtime) -> dict[str, set[tuple[Any, ...]]]:
    queries = {
        "events": "SELECT message_id, customer_id FROM events",
        "orders": "SELECT order_id, customer_id FROM orders",
        "consents": "SELECT consent_id, customer_id, status, timestamp FROM consents",
        "tags": "SELECT tag_id, customer_id, since FROM customer_tags",
        "scores": "SELECT customer_id, clv_12m FROM customer_scores",
        "customers": "SELECT customer_id, email FROM customers",
        "points": "SELECT idempotency_key, line_no, customer_id, amount, lot_id, expires_at "
        "FROM points_ledger",
        "accounts": "SELECT customer_id FROM loyalty_accounts",
    }
    with rt.db.engine.connect() as conn:
        return {k: {tuple(r) for r in conn.execute(sa.text(q))} for k, q in queries.items()}


def _latest_consent(rt: Runtime, customer: str, channel: str) -> tuple[str, Any]:
    with rt.db.engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT status, evidence FROM consents WHERE customer_id = :c "
                "AND purpose = 'marketing' AND channel = :ch "
                "ORDER BY timestamp DESC, consent_id DESC LIMIT 1"
            ),
            {"c": customer, "ch": channel},
        ).one()
    return str(row[0]), row[1]


def test_merge_moves_every_record_and_split_puts_it_back(rt: Runtime) -> None:
    shop, insta = _load(rt)
    before = _state(rt)
    seen: list[set[tuple[str, str]]] = []

    def spy(conn: sa.Connection, workspace_id: str, moves: str) -> int:
        seen.append({tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {moves}"))})
        return 0

    registry.merge_followers.register("test_spy", spy)
    # The segments slice registers its own follower of customer_tags; a plain one stands in
    # here so this test does not depend on it (whichever runs first moves the rows).
    registry.merge_followers.register("test_tags", TableFollower(customer_tags))
    ws = rt.workspace().workspace_id
    try:
        with rt.db.engine.begin() as conn:
            report = resolve_workspace(conn, ws)
    finally:
        registry.merge_followers._items.pop("test_spy")
        registry.merge_followers._items.pop("test_tags")
    assert seen == [{(insta, shop)}]  # the oldest customer survives
    assert report.repointed["table:customer_scores"] == 1

    merged = _state(rt)
    assert {c for _, c in merged["events"]} == {shop}
    assert {c for _, c in merged["orders"]} == {shop}
    # Tags: the survivor's own 'vip' wins the collision; Instagram's 'night_owl' moves over.
    assert merged["tags"] == {("vip", shop, T0), ("night_owl", shop, T0)}
    assert merged["scores"] == {(shop, 45.0)}
    assert merged["customers"] == {(shop, "mia@mail.co")}
    # Consent: the Instagram account's latest state (withdrawn) beats Shopify's later grant.
    status, evidence = _latest_consent(rt, shop, "email")
    assert status == "withdrawn"
    doc = evidence if isinstance(evidence, dict) else __import__("json").loads(evidence)
    assert doc["rule"] == "identity_merge"
    assert _latest_consent(rt, shop, "sms")[0] == "denied"  # one record only: unchanged
    # Points: the whole ledger moves, so the survivor's balance is the sum of both accounts.
    with rt.db.engine.connect() as conn:
        assert balances(conn, ws, [shop, insta]) == {shop: 200, insta: 0}
    assert merged["accounts"] == {(shop,)}

    with rt.db.engine.begin() as conn:
        split(conn, ws, "email:mia@mail.co", "test")
    assert _state(rt) == before
    with rt.db.engine.connect() as conn:
        assert balances(conn, ws, [shop, insta]) == {shop: 150, insta: 50}


def test_a_later_explicit_grant_wins_over_the_merge_state(rt: Runtime) -> None:
    shop, _ = _load(rt)
    ws = rt.workspace().workspace_id
    with rt.db.engine.begin() as conn:
        resolve_workspace(conn, ws)
    ingest(rt, "shopify", [consent("6100000071", "granted", 20)])
    with rt.db.engine.begin() as conn:
        resolve_workspace(conn, ws)  # nothing merges anew: the merge row stays as it was
    assert _latest_consent(rt, shop, "email")[0] == "granted"


@pytest.mark.parametrize("per_round", [1, 2, 50_000])
def test_customers_fold_the_same_in_rounds_of_any_size(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch, per_round: int
) -> None:
    """Survivors are folded FOLD_TARGETS at a time (bounded memory at 1M customers): the rows,
    the archive and a split back do not depend on the round size."""
    from siyu.identity import store

    monkeypatch.setattr(store, "FOLD_TARGETS", per_round)
    people = [(f"61000001{i:02d}", f"178414000001{i:02d}", f"p{i}@mail.co") for i in range(5)]
    ingest(rt, "shopify", [identify(s, email=e, firstName=f"S{i}", day=1)
                           for i, (s, _, e) in enumerate(people)])  # fmt: skip
    ingest(rt, "instagram", [identify(g, email=e, lastName=f"G{i}", day=3)
                             for i, (_, g, e) in enumerate(people)])  # fmt: skip
    before = _state(rt)
    ws = rt.workspace().workspace_id
    with rt.db.engine.begin() as conn:
        report = resolve_workspace(conn, ws)
    assert report.repointed["customers_merged"] == 5
    with rt.db.engine.connect() as conn:
        rows = set(
            conn.execute(sa.text("SELECT customer_id, email, first_name, last_name FROM customers"))
        )
        archived = set(
            conn.execute(sa.text("SELECT customer_id, merged_into FROM identity_customer_archive"))
        )
    shops = {str(customer_key(ws, s, None)): (e, i) for i, (s, _, e) in enumerate(people)}
    assert rows == {(c, e, f"S{i}", f"G{i}") for c, (e, i) in shops.items()}
    assert archived == {
        (str(customer_key(ws, g, None)), str(customer_key(ws, s, None))) for s, g, _ in people
    }
    with rt.db.engine.begin() as conn:
        for _, _, e in people:
            split(conn, ws, f"email:{e}", "test")
    assert _state(rt) == before
