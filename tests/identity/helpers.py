"""Small Segment messages for One-ID tests, ingested through the real pipeline."""

from __future__ import annotations

from itertools import count
from typing import Any

import sqlalchemy as sa

from siyu.collect.sources import ensure_source
from siyu.identity.held import HeldGraph, HeldGraphs, HeldTable
from siyu.identity.versions import current_version
from siyu.runtime import Runtime

_seq = count()


def identify(
    user_id: str | None = None,
    *,
    anonymous_id: str | None = None,
    day: int = 1,
    message_id: str | None = None,
    **traits: Any,
) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "type": "identify",
        "messageId": message_id or f"m-{next(_seq)}",
        "timestamp": f"2025-01-{day:02d}T10:00:00Z",
        "traits": traits,
    }
    if user_id:
        msg["userId"] = user_id
    if anonymous_id:
        msg["anonymousId"] = anonymous_id
    return msg


def track(
    user_id: str | None = None,
    *,
    anonymous_id: str | None = None,
    day: int = 1,
    event: str = "Product Viewed",
    message_id: str | None = None,
) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "type": "track",
        "event": event,
        "messageId": message_id or f"m-{next(_seq)}",
        "timestamp": f"2025-01-{day:02d}T11:00:00Z",
        "properties": {},
    }
    if user_id:
        msg["userId"] = user_id
    if anonymous_id:
        msg["anonymousId"] = anonymous_id
    return msg


def status(
    user_id: str, *, day: int = 1, event: str = "Message Delivered", message_id: str | None = None
) -> dict[str, Any]:
    """A WhatsApp delivery status as siyu stores it on the recipient: an event about her, not
    one she did (``SYSTEM_EVENTS``)."""
    msg = track(user_id, day=day, event=event, message_id=message_id)
    msg["properties"] = {"channel": "whatsapp", "message_id": f"wamid.{msg['messageId']}"}
    return msg


def ingest(rt: Runtime, source: str, records: list[dict[str, Any]]) -> None:
    """Ingest records as coming from a source named and kinded ``source``."""
    ws = rt.workspace()
    with rt.db.engine.begin() as conn:
        source_id = ensure_source(conn, ws.workspace_id, source, source).source_id
    rt.pipeline(ws).ingest(records, source_id=source_id, origin=f"test:{source}")


def customers_of_events(rt: Runtime) -> dict[str, str]:
    with rt.db.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT message_id, customer_id FROM events")).all()
    return {str(m): str(c) for m, c in rows}


def scalar(rt: Runtime, sql: str, **params: Any) -> Any:
    with rt.db.engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


def assert_held_matches(conn: sa.Connection, held: HeldGraphs, workspace_id: str) -> None:
    """The held copy of the graph is exactly what the database holds, row for row (and the
    version it matches is the stored one)."""
    graph = held.get(workspace_id)
    assert graph is not None
    assert graph.version == current_version(conn, workspace_id)
    fresh = HeldGraph.load(conn, workspace_id)
    for name in ("identities", "identity_links", "identity_anchors", "identity_tuples"):
        mine, stored = graph.table(name), fresh.table(name)
        assert mine is not None
        assert stored is not None
        assert _rows(mine) == _rows(stored), name


def _rows(table: HeldTable) -> list[tuple[object, ...]]:
    live = table.live
    return sorted((tuple(r.values()) for r in live.to_pylist()), key=lambda r: tuple(map(str, r)))
