"""Incremental resolution wired to ingestion: in the chunk's transaction, or in the background."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from siyu.collect.importers import run_import
from siyu.collect.sources import ensure_source
from siyu.config import Settings
from siyu.identity.graph import resolve_workspace
from siyu.identity.hook import resolve_all_pending, resolve_pending
from siyu.registry import registry
from siyu.runtime import Runtime
from tests.collect.shopify_export import write_shopify_orders
from tests.identity.helpers import customers_of_events, identify, ingest, scalar, track


def test_ingest_mode_resolves_each_chunk(settings: Settings) -> None:
    with Runtime(settings.model_copy(update={"identity_resolve": "ingest"})) as rt:
        rt.init()
        ingest(rt, "shopify", [identify("6100000081", email="noa@mail.co", day=1)])
        ingest(rt, "instagram", [identify("17841400000000081", email="noa@mail.co", day=2)])
        assert len(set(customers_of_events(rt).values())) == 1
        assert scalar(rt, "SELECT count(*) FROM customers") == 1
        assert scalar(rt, "SELECT count(*) FROM identity_audit WHERE action = 'merge'") == 1


def test_background_mode_resolves_what_arrived_since_the_watermark(rt: Runtime) -> None:
    assert rt.settings.identity_resolve == "background"
    ingest(rt, "shopify", [identify("6100000082", email="eli@mail.co", day=1)])
    ingest(rt, "instagram", [identify("17841400000000082", email="eli@mail.co", day=2)])
    assert len(set(customers_of_events(rt).values())) == 2  # ingest did not resolve
    ws = rt.workspace().workspace_id
    with rt.db.engine.begin() as conn:
        assert resolve_pending(conn, ws) == 2
    assert len(set(customers_of_events(rt).values())) == 1
    with rt.db.engine.begin() as conn:
        assert resolve_pending(conn, ws) == 0  # nothing new
    ingest(rt, "web", [identify(anonymous_id="tab-82", email="eli@mail.co", day=3)])
    assert resolve_all_pending(rt) == 1
    assert len(set(customers_of_events(rt).values())) == 1


def _record_handed_events(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The message ids handed to the incremental resolver from now on (it still runs)."""
    import siyu.identity.graph as graph

    handed: list[str] = []
    real = graph.resolve_new_events

    def spy(conn: sa.Connection, workspace_id: str, ids: Sequence[str], **kw: Any) -> object:
        handed.extend(ids)
        return real(conn, workspace_id, ids, **kw)

    monkeypatch.setattr(graph, "resolve_new_events", spy)
    return handed


def test_background_passes_resolve_each_event_once(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The look-back window is re-read on every pass (late commits), yet an event already
    resolved is never handed to the resolver again, and a late one inside the window is."""
    handed = _record_handed_events(monkeypatch)
    ws = rt.workspace().workspace_id
    ingest(rt, "shopify", [identify("6100000083", email="ida@mail.co", day=1, message_id="w-1")])
    ingest(rt, "instagram", [identify("17841400000000083", email="ida@mail.co", message_id="w-2")])
    with rt.db.engine.begin() as conn:
        assert resolve_pending(conn, ws) == 2
        assert resolve_pending(conn, ws) == 0  # the window holds w-1 and w-2: both skipped
    assert sorted(handed) == ["w-1", "w-2"]
    ingest(rt, "web", [identify(anonymous_id="tab-83", email="ida@mail.co", message_id="w-3")])
    ingest(rt, "web", [track(anonymous_id="tab-83", message_id="w-4")])
    mark = scalar(rt, "SELECT resolved_until FROM identity_state")
    with rt.db.engine.begin() as conn:
        # w-4 committed late: stamped before the watermark, but inside the look-back window.
        conn.execute(
            sa.text("UPDATE events SET received_at = :t WHERE message_id = 'w-4'"),
            {"t": mark - timedelta(minutes=1)},
        )
        assert resolve_pending(conn, ws) == 2
        assert resolve_pending(conn, ws) == 0
    assert sorted(handed) == ["w-1", "w-2", "w-3", "w-4"]
    assert len(set(customers_of_events(rt).values())) == 1
    # Recorded events that fell out of the window are forgotten as the watermark moves on.
    with rt.db.engine.begin() as conn:
        for table in ("events", "identity_resolved"):
            conn.execute(
                sa.text(f"UPDATE {table} SET received_at = received_at - INTERVAL '1 hour'")
            )
    ingest(rt, "web", [track(anonymous_id="tab-83", message_id="w-5")])
    with rt.db.engine.begin() as conn:
        assert resolve_pending(conn, ws) == 1
    assert handed[-1] == "w-5"
    assert scalar(rt, "SELECT message_id FROM identity_resolved") == "w-5"


def test_ingest_mode_resolves_an_imported_export_as_a_full_rebuild_does(
    settings: Settings, tmp_path: Path
) -> None:
    """The column store's slices (plain orders) go through the same hook as messages, with
    their receipt time, and end with the customers a full rebuild gives."""
    path = write_shopify_orders(tmp_path / "orders.csv", 40)
    spec = registry.importers.get("shopify-orders")
    with Runtime(settings.model_copy(update={"identity_resolve": "ingest"})) as rt:
        rt.init()
        summary = run_import(rt.pipeline(), spec, path, batch_rows=16)  # several slices
        assert summary.stored > 0
        assert scalar(rt, "SELECT count(*) FROM identities") > 0
        incremental = _partition(customers_of_events(rt))
        with rt.db.engine.begin() as conn:
            resolve_workspace(conn, rt.workspace().workspace_id)
        assert _partition(customers_of_events(rt)) == incremental


def _partition(customer_of: dict[str, str]) -> list[list[str]]:
    """Events grouped by customer, without the customer ids (a rebuild may rename them)."""
    groups: dict[str, list[str]] = {}
    for message, customer in customer_of.items():
        groups.setdefault(customer, []).append(message)
    return sorted(sorted(g) for g in groups.values())


def test_a_full_rebuild_moves_the_watermark_so_nothing_is_resolved_again(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After ``siyu identity resolve`` (or the demo's), the background passes start after the
    events the rebuild read: at the 1M demo they re-resolved all 31M events, 50,000 at a time,
    while the API waited. Events arriving later are resolved, each once."""
    handed = _record_handed_events(monkeypatch)
    ingest(rt, "shopify", [identify("6100000087", email="ivy@mail.co", day=1)])
    ingest(rt, "instagram", [identify("17841400000000087", email="ivy@mail.co", day=2)])
    ws = rt.workspace().workspace_id
    with rt.db.engine.begin() as conn:
        resolve_workspace(conn, ws)
    assert resolve_all_pending(rt) == 0
    assert handed == []
    ingest(rt, "web", [identify(anonymous_id="tab-87", email="ivy@mail.co", day=3)])
    assert resolve_all_pending(rt) == 1
    assert resolve_all_pending(rt) == 0
    assert len(handed) == 1
    assert len(set(customers_of_events(rt).values())) == 1


def test_a_rebuild_of_old_history_records_nothing_and_moves_the_watermark_to_its_read(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events received more than the look-back window before the rebuild read them were all
    committed then: none is recorded as resolved (after a bulk load that was every event of
    the workspace), the watermark moves to the read's clock, and nothing is resolved again."""
    handed = _record_handed_events(monkeypatch)
    ingest(rt, "shopify", [identify("6100000089", email="ada@mail.co", day=1)])
    ingest(rt, "instagram", [identify("17841400000000089", email="ada@mail.co", day=2)])
    with rt.db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE events SET received_at = received_at - INTERVAL '1 hour'"))
    ws = rt.workspace().workspace_id
    before = datetime.now(UTC).replace(tzinfo=None)
    with rt.db.engine.begin() as conn:
        resolve_workspace(conn, ws)
    assert scalar(rt, "SELECT count(*) FROM identity_resolved") == 0
    assert scalar(rt, "SELECT resolved_until FROM identity_state") >= before
    assert resolve_all_pending(rt) == 0
    assert handed == []
    ingest(rt, "web", [identify(anonymous_id="tab-89", email="ada@mail.co", day=3)])
    assert resolve_all_pending(rt) == 1
    assert resolve_all_pending(rt) == 0
    assert len(handed) == 1
    assert len(set(customers_of_events(rt).values())) == 1


def test_an_event_committed_while_a_rebuild_runs_is_resolved_by_the_next_pass(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer commits an event stamped before the rebuild's newest event, after the
    rebuild read the events: the rebuild did not see it, so it must not be recorded as
    resolved (PostgreSQL's read-committed statements would see it if the window were
    recorded after the read); the next pass resolves it."""
    import siyu.identity.graph as graph

    handed = _record_handed_events(monkeypatch)
    ingest(rt, "shopify", [identify("6100000091", email="eve@mail.co", day=1)])
    ws = rt.workspace()
    newest = scalar(rt, "SELECT max(received_at) FROM events")
    real = graph.build_graph
    late: list[str] = []

    def commit_late_then_build(*args: Any, **kw: Any) -> object:
        if not late:  # the first build of the rebuild: its read is done
            late.append("late-91")
            with rt.db.engine.begin() as conn:
                source_id = ensure_source(conn, ws.workspace_id, "web", "web").source_id
            rt.pipeline(ws).ingest(
                [identify(anonymous_id="tab-91", email="eve@mail.co", message_id="late-91")],
                source_id=source_id,
                received_at=newest - timedelta(seconds=1),
            )
        return real(*args, **kw)

    monkeypatch.setattr(graph, "build_graph", commit_late_then_build)
    with rt.db.engine.begin() as conn:
        resolve_workspace(conn, ws.workspace_id)
    assert late == ["late-91"]
    assert scalar(rt, "SELECT count(*) FROM identity_resolved WHERE message_id = 'late-91'") == 0
    assert resolve_all_pending(rt) == 1
    assert handed == ["late-91"]
    assert len(set(customers_of_events(rt).values())) == 1
