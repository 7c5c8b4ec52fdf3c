"""Events siyu emits about a resolved customer land on that customer at once (both engines)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from siyu.collect.rows import customer_key
from siyu.identity.graph import resolve_workspace
from siyu.identity.hook import resolve_pending
from siyu.identity.subject import Sender, senders_of
from siyu.loyalty.sync import sync
from siyu.runtime import Runtime
from tests.identity.helpers import identify, ingest, scalar
from tests.loyalty.helpers import order


def _points_events(rt: Runtime) -> list[tuple[str, str, str | None, str | None]]:
    with rt.db.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT message_id, customer_id, user_id, anonymous_id FROM events "
                "WHERE event = 'Points Earned' ORDER BY message_id"
            )
        ).all()
    return [(str(m), str(c), u, a) for m, c, u, a in rows]


def test_loyalty_events_of_a_merged_customer_need_no_resolution(rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    # The anonymous visitor is seen first, so the merged customer keeps the visitor's id, while
    # the customer row's userId is the store's: sent as that userId, the pipeline would put the
    # events on the store customer's provisional id (a row One-ID had folded away).
    ingest(rt, "web", [identify(anonymous_id="tab-90", email="ivy@mail.co", day=1)])
    ingest(rt, "shopify", [identify("6100000090", email="ivy@mail.co", day=2)])
    ingest(rt, "shopify", [order("6100000090", "o-90", 120, at=datetime(2025, 1, 3, 9))])
    with rt.db.engine.begin() as conn:
        resolve_workspace(conn, ws)
    visitor = customer_key(ws, None, "tab-90")
    store = customer_key(ws, "6100000090", None)
    assert scalar(rt, "SELECT customer_id FROM customers") == visitor
    assert scalar(rt, "SELECT user_id FROM customers") == "6100000090"

    with rt.db.engine.connect() as conn:  # an anonymousId is not namespaced by source
        assert senders_of(conn, ws, [visitor]) == {visitor: Sender(None, None, "tab-90")}

    assert sync(rt.db, ws, now=datetime(2025, 1, 5)).events >= 1
    stored = _points_events(rt)
    assert [(c, a) for _, c, _, a in stored] == [(visitor, "tab-90")]
    assert scalar(rt, "SELECT count(*) FROM customers") == 1
    assert scalar(rt, "SELECT count(*) FROM customers WHERE customer_id = :c", c=store) == 0

    # The background resolver and a full rebuild agree: nothing moves, no customer appears.
    with rt.db.engine.begin() as conn:
        assert resolve_pending(conn, ws) >= 1
    with rt.db.engine.begin() as conn:
        resolve_workspace(conn, ws)
    assert _points_events(rt) == stored
    assert scalar(rt, "SELECT count(*) FROM customers") == 1


def test_a_customer_before_one_id_is_sent_as_its_row(rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    ingest(rt, "shopify", [identify("6100000091", email="max@mail.co", day=1)])
    ingest(rt, "web", [identify(anonymous_id="tab-91", day=1)])
    user = customer_key(ws, "6100000091", None)
    anonymous = customer_key(ws, None, "tab-91")
    assert user is not None
    assert anonymous is not None
    with rt.db.engine.connect() as conn:
        found = senders_of(conn, ws, [user, anonymous, "cus_gone"])
    assert found == {
        user: Sender(None, "6100000091", None),
        anonymous: Sender(None, None, "tab-91"),
        "cus_gone": Sender(None, None, "siyu:cus_gone"),
    }
    # Sent under those senders, the pipeline's provisional customer is the customer itself.
    assert customer_key(ws, found[user].user_id, None) == user
    assert customer_key(ws, None, found[anonymous].anonymous_id) == anonymous
