"""The identity graph on both engines: merges, refusals, split, explain."""

from __future__ import annotations

import sqlalchemy as sa

from siyu.identity.explain import explain
from siyu.identity.graph import resolve_workspace, split
from siyu.runtime import Runtime
from tests.identity.helpers import customers_of_events, identify, ingest, scalar, track


def _resolve(rt: Runtime) -> None:
    with rt.db.engine.begin() as conn:
        resolve_workspace(conn, rt.workspace().workspace_id)


def _conflicts(rt: Runtime) -> list[tuple[str, str, str]]:
    with rt.db.engine.connect() as conn:
        return [
            (r, k, v)
            for r, k, v in conn.execute(
                sa.text("SELECT rule, kind, value FROM identity_conflicts ORDER BY 1, 2, 3")
            )
        ]


def test_shared_email_merges_accounts_across_sources(rt: Runtime) -> None:
    ingest(
        rt, "shopify", [identify("6100000001", email="Ann.Lee@Shop.co", day=2), track("6100000001")]
    )
    ingest(
        rt,
        "whatsapp",
        [identify("6281234567890", email="ann.lee@shop.co ", day=5), track("6281234567890", day=6)],
    )
    before = set(customers_of_events(rt).values())
    assert len(before) == 2
    _resolve(rt)
    after = set(customers_of_events(rt).values())
    assert len(after) == 1
    # The survivor is the oldest provisional customer (the Shopify one, seen on day 2).
    survivor = scalar(
        rt,
        "SELECT customer_id FROM events WHERE source_id IN "
        "(SELECT source_id FROM sources WHERE name = 'shopify') LIMIT 1",
    )
    assert after == {survivor}
    assert scalar(rt, "SELECT count(*) FROM customers") == 1
    assert scalar(rt, "SELECT count(*) FROM identity_audit WHERE action = 'merge'") == 1
    assert scalar(rt, "SELECT phone FROM customers") is None


def test_family_sharing_one_phone_is_not_fused(rt: Runtime) -> None:
    ingest(
        rt,
        "shopify",
        [
            identify("6100000011", email="mum@family.co", phone="+6281311112222", day=1),
            identify(
                "6100000012", email="son@family.co", phone="0813-1111-2222", country="ID", day=3
            ),
        ],
    )
    _resolve(rt)
    assert len(set(customers_of_events(rt).values())) == 2
    rules = {r for r, _, _ in _conflicts(rt)}
    assert "limit:account" in rules
    # The phone went to whoever gave it first; the other account keeps its own email.
    mum = scalar(rt, "SELECT customer_id FROM identities WHERE value = 'mum@family.co'")
    phone = scalar(rt, "SELECT customer_id FROM identities WHERE value = '+6281311112222'")
    assert mum == phone


def test_a_disputed_family_phone_brings_no_other_account_along(rt: Runtime) -> None:
    ingest(
        rt,
        "shopify",
        [
            identify("6100000021", email="dad@family.co", phone="+6281311113333", day=1),
            identify("6100000022", email="kid@family.co", phone="+6281311113333", day=2),
        ],
    )
    # The kid's TikTok account shares only the family phone with anyone.
    ingest(rt, "tiktok_shop", [identify("7000000000000000022", phone="+6281311113333", day=3)])
    _resolve(rt)
    assert len(set(customers_of_events(rt).values())) == 3
    assert "disputed" in {r for r, _, _ in _conflicts(rt)}


def test_store_tablet_does_not_fuse_shoppers(rt: Runtime) -> None:
    shoppers = [f"61000002{i:02d}" for i in range(5)]
    ingest(
        rt, "shopify", [identify(s, email=f"shopper{i}@mail.co") for i, s in enumerate(shoppers)]
    )
    ingest(
        rt,
        "web",
        [track(anonymous_id="tablet-in-store", day=3)]
        + [track(s, anonymous_id="tablet-in-store", day=4 + i) for i, s in enumerate(shoppers)],
    )
    _resolve(rt)
    logged_in = scalar(
        rt, "SELECT count(DISTINCT customer_id) FROM events WHERE user_id IS NOT NULL"
    )
    assert logged_in == len(shoppers)
    assert ("shared_weak_identifier", "anonymous_id", "tablet-in-store") in _conflicts(rt)


def test_blocked_values_are_dropped_with_a_reason(rt: Runtime) -> None:
    ingest(
        rt,
        "shopify",
        [
            identify("6100000031", email="test@example.com", phone="0000000"),
            identify("6100000032", email="test@example.com", phone="0000000"),
        ],
    )
    _resolve(rt)
    assert len(set(customers_of_events(rt).values())) == 2
    found = _conflicts(rt)
    assert ("blocked", "email", "test@example.com") in found
    assert scalar(rt, "SELECT count(*) FROM identities WHERE kind = 'email'") == 0


def test_merge_then_split_returns_the_earlier_state(rt: Runtime) -> None:
    ingest(
        rt,
        "shopify",
        [
            identify("6100000041", email="kim@mail.co", day=2),
            track("6100000041", event="Order Completed"),
        ],
    )
    ingest(rt, "instagram", [identify("17841400000000041", email="kim@mail.co", day=4)])
    ingest(rt, "web", [identify(anonymous_id="browser-41", email="kim@mail.co", day=6)])
    events_before = customers_of_events(rt)
    customers_before = scalar(rt, "SELECT count(*) FROM customers")
    _resolve(rt)
    assert len(set(customers_of_events(rt).values())) == 1
    ws = rt.workspace().workspace_id
    with rt.db.engine.begin() as conn:
        split(conn, ws, "email:kim@mail.co", "test")
    assert customers_of_events(rt) == events_before
    assert scalar(rt, "SELECT count(*) FROM customers") == customers_before
    assert scalar(rt, "SELECT count(*) FROM identity_audit WHERE action = 'split'") == 1


def test_explain_shows_identifiers_and_evidence(rt: Runtime) -> None:
    ingest(rt, "shopify", [identify("6100000051", email="lee@mail.co", phone="+12025550143")])
    _resolve(rt)
    ws = rt.workspace().workspace_id
    with rt.db.engine.connect() as conn:
        found = explain(conn, ws, "email:LEE@mail.co")
    kinds = {(r["kind"], r["value"]) for r in found.identifiers}
    assert kinds == {
        ("shopify_customer_id", "6100000051"),
        ("email", "lee@mail.co"),
        ("phone", "+12025550143"),
    }
    assert len(found.links) == 2
    assert all(link["rule"] == "same_event" and link["message_id"] for link in found.links)


def test_a_merge_keeps_the_newest_said_traits_not_the_last_seen_row(rt: Runtime) -> None:
    """The WhatsApp account was active last (day 9) but its name was said on day 2; the Shopify
    account's name on day 5 is newer, so the merged customer keeps it (and its time)."""
    ingest(
        rt,
        "shopify",
        [identify("6100000031", email="kim@shop.co", firstName="Kimberly", day=5)],
    )
    ingest(
        rt,
        "whatsapp",
        [
            identify("6281234500031", email="kim@shop.co", firstName="Kim", day=2),
            track("6281234500031", day=9),
        ],
    )
    _resolve(rt)
    assert scalar(rt, "SELECT count(*) FROM customers") == 1
    assert scalar(rt, "SELECT first_name FROM customers") == "Kimberly"
    assert str(scalar(rt, "SELECT traits_at FROM customers"))[:10] == "2025-01-05"


def test_raw_values_map_to_their_nodes_built_once_per_graph(rt: Runtime) -> None:
    """``evaluate`` looks every truth value up in ``raw_nodes``: rebuilt on each access, the
    50K demo's evaluation did not finish."""
    from siyu.identity.extract import build_graph, fetch_tuples

    ingest(rt, "shopify", [identify("6100000095", email=" Ada@Mail.co")])
    ws = rt.workspace()
    with rt.db.engine.connect() as conn:
        graph = build_graph(ws.workspace_id, fetch_tuples(conn, ws.workspace_id), "US")
    nodes = graph.raw_nodes[" Ada@Mail.co"]
    assert [graph.keys[n] for n in nodes] == ["email\x1fada@mail.co"]
    assert graph.raw_nodes is graph.raw_nodes


def _browser_and_two_emails(rt: Runtime, second: str, account: str | None = None) -> None:
    """A Shopify customer at checkout in one browser, then a second address in that browser
    (the newsletter form), optionally also a Shopify account of its own."""
    ingest(rt, "shopify", [identify("6100000061", email="maria.lopez@gmail.com", day=1)])
    if account:
        ingest(rt, "shopify", [identify(account, email=second, day=2)])
    ingest(
        rt,
        "web",
        [
            identify(anonymous_id="browser-61", email="maria.lopez@gmail.com", day=3),
            identify(anonymous_id="browser-61", email=second, day=4),
        ],
    )
    _resolve(rt)


def test_a_shared_browser_and_a_typod_email_are_one_person(rt: Runtime) -> None:
    """Two independent signs: the same browser and an address one slip of a key away."""
    _browser_and_two_emails(rt, "maria.lopez@gmial.com")
    assert len(set(customers_of_events(rt).values())) == 1
    assert not [c for c in _conflicts(rt) if c[0] == "shared_weak_identifier"]
    rules = scalar(rt, "SELECT rule FROM identity_audit WHERE action = 'merge'")
    assert "typo_email" in rules.split("+")
    with rt.db.engine.connect() as conn:
        found = explain(conn, rt.workspace().workspace_id, "email:maria.lopez@gmial.com")
    assert {(r["kind"], r["value"]) for r in found.identifiers} == {
        ("shopify_customer_id", "6100000061"),
        ("email", "maria.lopez@gmail.com"),
        ("email", "maria.lopez@gmial.com"),
        ("anonymous_id", "browser-61"),
    }
    assert any("typo_email" in str(r["rule"]) for r in found.audit)


def test_a_shared_computer_without_a_typo_keeps_people_apart(rt: Runtime) -> None:
    _browser_and_two_emails(rt, "jorge.lopez@gmail.com")
    # Every event names Maria or Jorge (the browser, refused as a bridge, is on its own).
    assert len(set(customers_of_events(rt).values())) == 2
    assert ("shared_weak_identifier", "anonymous_id", "browser-61") in _conflicts(rt)


def test_a_typo_join_that_would_break_a_limit_is_not_made(rt: Runtime) -> None:
    """The second address belongs to another Shopify account: one account per source."""
    _browser_and_two_emails(rt, "maria.lopez@gmial.com", account="6100000062")
    accounts = "SELECT count(DISTINCT customer_id) FROM identities WHERE kind = :k"
    assert scalar(rt, accounts, k="shopify_customer_id") == 2
    assert ("shared_weak_identifier", "anonymous_id", "browser-61") in _conflicts(rt)


def test_links_rank_their_evidence_by_message_id_sorted_or_not() -> None:
    """Read in message-id order (a full run), the rank is the row; otherwise a sort."""
    import numpy as np
    import pyarrow as pa

    from siyu.identity.extract import _message_rank

    ordered = pa.array(["m-1", "m-2", "m-3"])
    assert _message_rank(ordered).tolist() == [0, 1, 2]
    shuffled = _message_rank(pa.array(["m-3", "m-1", "m-2", "m-10"]))
    assert np.argsort(shuffled).tolist() == [1, 3, 2, 0]  # code-point order: m-10 < m-2
    assert _message_rank(pa.array(["m-1", "m-1", "m-2"])).tolist()[:2] == [1, 1]  # not strict
