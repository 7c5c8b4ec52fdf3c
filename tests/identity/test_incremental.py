"""Incremental resolution, batch by batch in any arrival order, equals a full rebuild."""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siyu.collect.sources import ensure_source
from siyu.config import load_settings
from siyu.identity.extract import fetch_tuples
from siyu.identity.graph import resolve_new_events, resolve_workspace
from siyu.identity.held import HeldGraphs
from siyu.identity.quiet import quiet_rows
from siyu.runtime import Runtime
from siyu.store import schema
from tests.identity.helpers import (
    assert_held_matches,
    customers_of_events,
    identify,
    status,
    track,
)

SCENARIO: list[tuple[str, dict[str, Any]]] = [
    ("shopify", identify("6100000101", email="ann@mail.co", phone="+6281311110001", day=1)),
    ("shopify", identify("6100000102", email="bob@mail.co", phone="+6281311110001", day=2)),
    ("whatsapp", identify("6281311110001", email="ann@mail.co", day=3)),
    ("whatsapp", track("6281311110001", event="Message Received", day=4)),
    ("web", track(anonymous_id="tab", day=2)),
    ("web", track("6100000101", anonymous_id="tab", day=5)),
    ("web", track("6100000102", anonymous_id="tab", day=6)),
    ("web", identify(anonymous_id="b-ann", email="ann@mail.co", day=7)),
    ("web", track(anonymous_id="b-ann", day=8)),
    ("instagram", identify("17841400000000103", email="cy@mail.co", day=9)),
    ("web", identify("6100000103", anonymous_id="b-cy", email="cy@mail.co", day=10)),
    ("email", identify("bob@mail.co", email="bob@mail.co", day=11)),
    ("shopify", identify("6100000104", email="test@example.com", day=12)),
    # A browser that links an address to its typo'd copy (the corroborated join).
    ("shopify", identify("6100000105", email="dana.wells@mail.co", day=13)),
    ("web", identify(anonymous_id="b-dana", email="dana.wells@mail.co", day=14)),
    ("web", identify(anonymous_id="b-dana", email="dana.wells@mial.co", day=15)),
    # A delivery status siyu stores on the customer (not her act: not in her seen times), and
    # one for a number that only status callbacks ever carried (seen when they came).
    ("whatsapp", status("6281311110001", day=16)),
    ("whatsapp", status("6281311119999", day=17)),
]


def _snapshot(conn: sa.Connection) -> tuple[object, ...]:
    q = [
        "SELECT kind, value, customer_id, first_seen_at, last_seen_at FROM identities "
        "ORDER BY 1, 2",
        "SELECT message_id, customer_id FROM events ORDER BY 1",
        "SELECT customer_id, first_seen_at, last_seen_at FROM customers ORDER BY 1",
        "SELECT rule, kind, value, other_kind, other_value FROM identity_conflicts "
        "ORDER BY 1, 2, 3, 4, 5",
    ]
    return tuple(tuple(tuple(r) for r in conn.execute(sa.text(s))) for s in q)


def _messages() -> list[tuple[str, dict[str, Any]]]:
    return [(s, {**m, "messageId": f"msg-{i}"}) for i, (s, m) in enumerate(SCENARIO)]


Batch = list[tuple[str, dict[str, Any]]]


def _ingest(rt: Runtime, batch: Batch) -> None:
    """Ingest a batch, its messages per source, as the sources send them."""
    ws = rt.workspace()
    with rt.db.engine.begin() as conn:
        sources = {
            name: ensure_source(conn, ws.workspace_id, name, name).source_id
            for name in {name for name, _ in batch}
        }
    pipeline = rt.pipeline(ws)
    for source in sorted(sources):
        pipeline.ingest([m for s, m in batch if s == source], source_id=sources[source])


def _resolve(rt: Runtime, batch: Batch, held: HeldGraphs | None, since: bool) -> None:
    """Resolve a batch's events incrementally (``since``: read by their receipt time)."""
    ids = [m["messageId"] for _, m in batch]
    with rt.db.engine.begin() as conn:
        received = (
            conn.execute(
                sa.select(sa.func.min(schema.events.c.received_at)).where(
                    schema.events.c.message_id.in_(ids)
                )
            ).scalar()
            if since
            else None
        )
        resolve_new_events(
            conn, rt.workspace().workspace_id, ids, held=held, received_from=received
        )
    if held is not None:
        with rt.db.engine.connect() as conn:
            assert_held_matches(conn, held, rt.workspace().workspace_id)


def _ingest_and_resolve(
    rt: Runtime,
    batches: list[Batch],
    times: int = 1,
    held: HeldGraphs | None = None,
    since: bool = False,
) -> None:
    """Ingest each batch and resolve its events incrementally, ``times`` times each (2: a
    batch resolved again); ``held``: with the graph held in memory, as ``siyu serve``
    resolves (the copy must stay what the database holds); ``since``: each batch read by its
    receipt time, as the server's passes read it (records are then re-pointed by the senders
    that moved, not all of the run's)."""
    for batch in batches:
        _ingest(rt, batch)
        for _ in range(times):
            _resolve(rt, batch, held, since)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    order=st.permutations(list(range(len(SCENARIO)))),
    cuts=st.lists(st.integers(1, len(SCENARIO) - 1), max_size=4),
    hold=st.booleans(),
    since=st.booleans(),
)
def test_incremental_equals_full(
    order: list[int], cuts: list[int], hold: bool, since: bool
) -> None:
    messages = _messages()
    bounds = [0, *sorted(set(cuts)), len(order)]
    with tempfile.TemporaryDirectory() as tmp:
        url = f"duckdb:///{Path(tmp) / 'p.duckdb'}"
        with Runtime(load_settings(database_url=url, env="test")) as rt:
            rt.init()
            batches = [[messages[i] for i in order[lo:hi]] for lo, hi in itertools.pairwise(bounds)]
            _ingest_and_resolve(rt, batches, held=HeldGraphs() if hold else None, since=since)
            with rt.db.engine.begin() as conn:
                incremental = _snapshot(conn)
                resolve_workspace(conn, rt.workspace().workspace_id)
                full = _snapshot(conn)
    assert incremental == full
    owners = {v: c for k, v, c, *_ in full[0] if k == "email" and v.startswith("dana.wells@")}
    assert len(owners) == 2
    assert len(set(owners.values())) == 1  # the typo'd copy joined, whatever the order


@pytest.mark.parametrize("since", [False, True], ids=["by-id", "by-receipt"])
@pytest.mark.parametrize("hold", [False, True], ids=["tables", "held"])
def test_incremental_on_both_engines(rt: Runtime, hold: bool, since: bool) -> None:
    """A fixed adversarial order (storefront ids before the store's, the tablet first) on
    every engine: incremental batches end where a full rebuild does, with the graph read
    from the tables or held in memory, the batches read by id or by receipt time."""
    messages = _messages()
    ws = rt.workspace()
    order = [4, 5, 6, 10, 7, 8, 2, 3, 0, 1, 9, 11, 12]
    bounds = itertools.pairwise([0, 3, 6, 9, len(order)])
    batches = [[messages[i] for i in order[lo:hi]] for lo, hi in bounds]
    _ingest_and_resolve(rt, batches, held=HeldGraphs() if hold else None, since=since)
    with rt.db.engine.begin() as conn:
        incremental = _snapshot(conn)
        resolve_workspace(conn, ws.workspace_id)
        assert _snapshot(conn) == incremental


@pytest.mark.parametrize("hold", [False, True], ids=["tables", "held"])
def test_a_late_event_splits_a_customer_and_its_events_follow_each_sender(
    rt: Runtime, hold: bool
) -> None:
    """An older event that arrives late changes which link the one-userId-per-source limit
    keeps: a customer's senders then go different ways (one stays, one joins another
    customer). Each sender's events follow it, the batch read by its receipt time as the
    server reads it, and the result is a full rebuild's."""
    first: Batch = [
        ("shopify", identify("6100000201", email="eve@mail.co", day=2, message_id="s-1")),
        ("shopify", identify("6100000202", email="eve@mail.co", day=3, message_id="s-2")),
        ("web", identify(anonymous_id="b-eve", email="eve@mail.co", day=4, message_id="s-3")),
        ("web", track(anonymous_id="b-eve", day=5, message_id="s-4")),
        ("shopify", track("6100000201", day=6, message_id="s-5")),
    ]
    late: Batch = [
        ("shopify", identify("6100000202", email="eve@mail.co", day=1, message_id="s-6")),
    ]
    held = HeldGraphs() if hold else None
    _ingest_and_resolve(rt, [first], held=held, since=True)
    before = customers_of_events(rt)
    assert before["s-3"] == before["s-4"] == before["s-1"] == before["s-5"] != before["s-2"]
    _ingest_and_resolve(rt, [late], held=held, since=True)
    after = customers_of_events(rt)
    # The browser went with the address to the account now first linked to it; the first
    # account stays on its own, and kept its customer id.
    assert after["s-3"] == after["s-4"] == after["s-2"] == after["s-6"] != after["s-1"]
    assert after["s-1"] == after["s-5"] == before["s-1"]
    with rt.db.engine.begin() as conn:
        incremental = _snapshot(conn)
        resolve_workspace(conn, rt.workspace().workspace_id)
        assert _snapshot(conn) == incremental


def test_a_sender_an_older_alias_named_joins_it(rt: Runtime) -> None:
    """An alias stored before the sender its previousId names (read then as a user_id of the
    alias's source): when that sender arrives in a later batch, the incremental run links
    them as a full rebuild does, and leaves no stale node behind (on every engine)."""
    ws = rt.workspace()
    tiktok_id = "7156185556595598065"
    first = [
        ("shopify", identify("6100000201", email="dee@mail.co", day=1, message_id="al-1")),
        (
            "shopify",
            {
                "type": "alias",
                "userId": "6100000201",
                "previousId": tiktok_id,
                "messageId": "al-2",
                "timestamp": "2025-01-02T10:00:00Z",
            },
        ),
    ]
    later: Batch = [("tiktok_shop", identify(tiktok_id, day=3, message_id="al-3"))]
    _ingest_and_resolve(rt, [first, later])
    with rt.db.engine.begin() as conn:
        incremental = _snapshot(conn)
        resolve_workspace(conn, ws.workspace_id)
        assert _snapshot(conn) == incremental
    with rt.db.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT kind, customer_id FROM identities")).all()
    assert "tiktok_user_id" in {str(kind) for kind, _ in rows}
    assert len({str(customer) for _, customer in rows}) == 1  # one customer


def _tuples_read(conn: sa.Connection) -> list[tuple[object, ...]]:
    """identity_tuples as an incremental run reads them (several rows of a tuple aggregated)."""
    columns = "sender, source_id, user_id, anonymous_id, previous_id, email, phone, country"
    return [
        tuple(r)
        for r in conn.execute(
            sa.text(
                f"SELECT {columns}, min(first_seen), max(last_seen), min(message_id) "
                f"FROM identity_tuples GROUP BY {columns} ORDER BY 2, 3, 4, 5, 6, 7, 8"
            )
        )
    ]


def _row_ids(conn: sa.Connection) -> set[str]:
    rid = "rowid" if conn.dialect.name == "duckdb" else "ctid"
    return {str(r) for (r,) in conn.execute(sa.text(f"SELECT {rid} FROM identity_tuples"))}


def test_a_full_run_refreshes_the_tuples_writing_only_what_differs(rt: Runtime) -> None:
    """After batches (a row per batch that saw a tuple), a full run leaves one row per tuple,
    read exactly as the batches' rows read; a second full run writes nothing; a deleted
    event's tuple goes (both engines)."""
    messages = _messages()
    messages.append(("web", track(anonymous_id="b-ann", day=12) | {"messageId": "msg-late"}))
    ws = rt.workspace()
    bounds = itertools.pairwise([0, 5, 9, len(messages)])
    _ingest_and_resolve(rt, [messages[lo:hi] for lo, hi in bounds])
    with rt.db.engine.begin() as conn:
        before = _tuples_read(conn)
        rows_before = int(
            conn.execute(sa.text("SELECT count(*) FROM identity_tuples")).scalar_one()
        )
        resolve_workspace(conn, ws.workspace_id)
        assert _tuples_read(conn) == before
        rows = conn.execute(sa.text("SELECT count(*) FROM identity_tuples")).scalar()
        assert rows == len(before) < rows_before  # b-ann's two batches: one row now
    with rt.db.engine.begin() as conn:
        kept = _row_ids(conn)  # (committed: DuckDB renumbers a transaction's own rows)
        resolve_workspace(conn, ws.workspace_id)
        assert _row_ids(conn) == kept
        assert _tuples_read(conn) == before
        conn.execute(sa.text("DELETE FROM events WHERE message_id = 'msg-12'"))
        resolve_workspace(conn, ws.workspace_id)
        after = _tuples_read(conn)
    assert len(after) == len(before) - 1
    assert "test@example.com" not in {r[5] for r in after}


def test_a_full_run_collapses_a_batch_resolved_twice(rt: Runtime) -> None:
    """A batch resolved twice (inline, then by a background pass without a watermark) stores
    its tuples twice; the next full run leaves one row per tuple, as a rewrite would (both
    engines)."""
    ws = rt.workspace()
    _ingest_and_resolve(rt, [_messages()], times=2)
    count = "SELECT count(*) FROM identity_tuples"
    distinct = "SELECT count(*) FROM (SELECT DISTINCT * FROM identity_tuples) d"
    with rt.db.engine.begin() as conn:
        doubled = conn.execute(sa.text(count)).scalar_one()
        assert doubled == 2 * conn.execute(sa.text(distinct)).scalar_one()
        before = _tuples_read(conn)
        resolve_workspace(conn, ws.workspace_id)
        assert conn.execute(sa.text(count)).scalar_one() == len(before) == doubled // 2
        assert conn.execute(sa.text(distinct)).scalar_one() == len(before)
        assert _tuples_read(conn) == before


def _quiet_in(rt: Runtime, held: HeldGraphs, batch: Batch) -> set[str]:
    """The userIds and anonymousIds of the batch's quiet senders (after it is ingested)."""
    ws = rt.workspace().workspace_id
    graph = held.get(ws)
    assert graph is not None
    with rt.db.engine.connect() as conn:
        tuples = fetch_tuples(conn, ws, [m["messageId"] for _, m in batch])
    hushed = tuples.filter(pa.array(quiet_rows(graph, tuples)))
    return {v for c in ("user_id", "anonymous_id") for v in hushed.column(c).to_pylist() if v}


def test_quiet_senders_move_only_seen_times_and_end_where_a_full_run_does(rt: Runtime) -> None:
    """Known senders repeating known identifiers later (the server's common case) are not
    rebuilt: only their identifiers' last seen times move and their new events point at their
    customer. Whatever mix a batch holds (only quiet senders; quiet beside new evidence; a
    late event, which is not quiet; a delivery status, not an own act), held batches read by
    receipt time end exactly where a full rebuild does."""

    def at(day: int, hour: int) -> str:
        return f"2025-01-{day:02d}T{hour:02d}:00:00Z"

    def ident(mid: str, user: str | None, day: int, **kw: Any) -> dict[str, Any]:
        return {**identify(user, day=day, message_id=mid, **kw), "timestamp": at(day, 10)}

    def view(mid: str, user: str | None, day: int, **kw: Any) -> dict[str, Any]:
        return {**track(user, day=day, message_id=mid, **kw), "timestamp": at(day, 11)}

    first: Batch = [
        ("shopify", ident("q-01", "6100000301", 1, email="ann@mail.co", phone="+6281311112222")),
        ("web", ident("q-02", None, 2, anonymous_id="b-ann", email="ann@mail.co")),
        ("web", view("q-03", None, 3, anonymous_id="b-ann")),
        ("shopify", ident("q-04", "6100000302", 2, email="bob@mail.co")),
        ("whatsapp", status("6281311113333", day=2, message_id="q-05")),
    ]
    only_quiet: Batch = [
        ("web", view("q-06", None, 5, anonymous_id="b-ann")),
        ("shopify", ident("q-07", "6100000301", 6, email="ann@mail.co", phone="+6281311112222")),
    ]
    mixed: Batch = [
        ("web", view("q-08", None, 7, anonymous_id="b-ann")),
        ("shopify", view("q-09", "6100000302", 7)),  # bob's first tuple without his address
        ("whatsapp", status("6281311113333", day=8, message_id="q-10")),  # not an own act
        ("web", ident("q-11", None, 8, anonymous_id="b-cy", email="bob@mail.co")),
    ]
    late: Batch = [("web", view("q-00", None, 1, anonymous_id="b-ann"))]  # older than stored
    held = HeldGraphs()
    _ingest_and_resolve(rt, [first], held=held, since=True)
    for batch, expected in (
        (only_quiet, {"b-ann", "6100000301"}),
        (mixed, {"b-ann"}),
        (late, set()),
    ):
        _ingest(rt, batch)
        assert _quiet_in(rt, held, batch) == expected
        _resolve(rt, batch, held, since=True)
    with rt.db.engine.begin() as conn:
        incremental = _snapshot(conn)
        resolve_workspace(conn, rt.workspace().workspace_id)
        full = _snapshot(conn)
    assert incremental == full
    seen = {(k, v): last for k, v, _, _, last in full[0]}
    assert str(seen[("anonymous_id", "b-ann")]).startswith("2025-01-07")
    assert str(seen[("email", "ann@mail.co")]).startswith("2025-01-06")
