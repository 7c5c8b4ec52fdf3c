"""Incremental resolution wired to ingestion: in the chunk's transaction, or in the background."""

from __future__ import annotations

from siyu.config import Settings
from siyu.identity.hook import resolve_all_pending, resolve_pending
from siyu.runtime import Runtime
from tests.identity.helpers import customers_of_events, identify, ingest, scalar


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
