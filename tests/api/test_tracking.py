"""The Segment-compatible tracking API (/v1/*) through the real app, on DuckDB and PostgreSQL."""

from __future__ import annotations

import base64
import gzip
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from siyu.access import Workspace
from siyu.collect.sources import create_source, revoke_source, rotate_write_key
from siyu.runtime import Runtime
from siyu.store import schema
from tests.api.envelope import assert_error

MakeSource = Callable[..., str]


@pytest.fixture
def make_source(rt: Runtime, workspace: Workspace) -> MakeSource:
    def make(name: str = "site", kind: str = "web") -> str:
        with rt.db.engine.begin() as conn:
            return create_source(conn, workspace.workspace_id, name, kind)[1]

    return make


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def track(mid: str, **extra: Any) -> dict[str, Any]:
    return {
        "userId": "u1",
        "event": "Product Viewed",
        "messageId": mid,
        "timestamp": "2025-03-01T10:00:00Z",
        "properties": {"product_id": "p1", "price": 12.5, "currency": "USD"},
        **extra,
    }


def settle(client: TestClient) -> None:
    """Store what the API acknowledged (it answers once records are durable in its spool)."""
    client.app.state.ingest_queue.flush()  # type: ignore[attr-defined]


def stored(rt: Runtime) -> dict[str, dict[str, Any]]:
    e = schema.events
    with rt.db.engine.connect() as conn:
        rows = conn.execute(sa.select(e.c.message_id, e.c.type, e.c.source_id, e.c.timestamp))
        return {r.message_id: dict(r._mapping) for r in rows}


def test_every_single_call_is_stored_with_basic_auth(
    client: TestClient, rt: Runtime, make_source: MakeSource
) -> None:
    key = make_source()
    calls = {
        "track": track("m-track"),
        "identify": {"userId": "u1", "traits": {"email": "a@example.com"}, "messageId": "m-id"},
        "page": {"anonymousId": "a1", "name": "Home", "messageId": "m-page"},
        "screen": {"anonymousId": "a1", "name": "Cart", "messageId": "m-screen"},
        "group": {"userId": "u1", "groupId": "g1", "messageId": "m-group"},
        "alias": {"userId": "u1", "previousId": "a1", "messageId": "m-alias"},
    }
    for call, body in calls.items():
        response = client.post(f"/v1/{call}", json=body, headers=basic(key))
        assert response.status_code == 200, response.text
        assert response.json() == {"success": True}
    settle(client)
    rows = stored(rt)
    assert {rows[f"m-{c if c != 'identify' else 'id'}"]["type"] for c in calls} == set(calls)


def test_write_key_in_body_gzip_and_batch_with_sent_at(
    client: TestClient, rt: Runtime, make_source: MakeSource
) -> None:
    key = make_source()
    body = {
        "writeKey": key,
        "sentAt": "2025-03-01T10:00:10Z",  # the sender's clock runs 10 s behind
        "batch": [{"type": "track", **track(f"b{i}")} for i in range(3)],
    }
    response = client.post(
        "/v1/batch",
        content=gzip.compress(orjson.dumps(body)),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True}
    settle(client)
    rows = stored(rt)
    assert {"b0", "b1", "b2"} <= set(rows)
    # timestamp = received_at - (sentAt - timestamp): 10 s before the server's receipt time.
    assert all(rows[m]["timestamp"].year >= 2026 for m in ("b0", "b1", "b2"))
    with rt.db.engine.connect() as conn:
        payloads = conn.execute(sa.select(schema.events.c.message_id)).all()
    assert len(payloads) == 3
    # Sending the same batch again stores nothing new; the alias endpoint /v1/import works.
    again = client.post("/v1/import", json=body)
    assert again.status_code == 200
    settle(client)
    assert len(stored(rt)) == 3


def test_invalid_single_call_is_400_naming_the_field_and_quarantined(
    client: TestClient, make_source: MakeSource, make_key: Callable[..., str]
) -> None:
    key = make_source()
    bad = track("bad-1", properties={"price": 1, "currency": "USD"})
    bad["event"] = "Order Completed"  # order_id is required
    error = assert_error(client.post("/v1/track", json=bad, headers=basic(key)), 400, "invalid")
    assert error["field"] == "properties.order_id"
    qid = error["details"]["quarantine_id"]
    settle(client)
    admin = {"Authorization": f"Bearer {make_key('read')}"}
    assert client.get(f"/api/quarantine/{qid}", headers=admin).json()["origin"] == ("api:/v1")


def test_invalid_message_in_a_batch_is_quarantined_and_the_batch_accepted(
    client: TestClient, rt: Runtime, make_source: MakeSource
) -> None:
    key = make_source()
    batch = [{"type": "track", **track("good")}, {"type": "track", "event": "X"}]
    response = client.post("/v1/batch", json={"batch": batch}, headers=basic(key))
    assert response.status_code == 200, response.text
    settle(client)
    assert set(stored(rt)) == {"good"}
    with rt.db.engine.connect() as conn:
        q = conn.execute(sa.select(schema.quarantine.c.position, schema.quarantine.c.origin)).all()
    assert [(r.position, r.origin) for r in q] == [(2, "api:/v1")]


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({}, {"userId": "u1", "event": "x"}),
        ({"Authorization": "Basic !!!"}, {"userId": "u1", "event": "x"}),
        ({}, {"writeKey": "wk_nonsense", "userId": "u1", "event": "x"}),
    ],
)
def test_missing_or_unknown_key_is_401(
    client: TestClient, headers: dict[str, str], body: dict[str, Any]
) -> None:
    assert_error(client.post("/v1/track", json=body, headers=headers), 401, "unauthorized")


def test_revoked_and_rotated_keys_are_refused(
    client: TestClient, rt: Runtime, workspace: Workspace, make_source: MakeSource
) -> None:
    key = make_source()
    with rt.db.engine.begin() as conn:
        revoke_source(conn, workspace.workspace_id, "site")
    error = assert_error(
        client.post("/v1/track", json=track("r1"), headers=basic(key)), 401, "unauthorized"
    )
    assert "revoked" in error["message"]
    with rt.db.engine.begin() as conn:
        _, new = rotate_write_key(conn, workspace.workspace_id, "site")
    assert_error(
        client.post("/v1/track", json=track("r2"), headers=basic(key)), 401, "unauthorized"
    )
    assert client.post("/v1/track", json=track("r3"), headers=basic(new)).status_code == 200


def test_size_limits_before_parsing(client: TestClient, make_source: MakeSource) -> None:
    key = make_source()
    big = b'{"userId": "u1", "event": "x", "properties": {"p": "' + b"a" * 40_000 + b'"}}'
    assert_error(client.post("/v1/track", content=big, headers=basic(key)), 413, "too_large")
    # Not JSON at all, but over the batch limit: refused for its size, never parsed.
    huge = b"[" * 600_000
    assert_error(client.post("/v1/batch", content=huge, headers=basic(key)), 413, "too_large")
    # A gzip bomb: small on the wire, over the limit inflated.
    bomb = gzip.compress(b'{"batch": [' + b" " * 5_000_000 + b"]}")
    assert len(bomb) < 100_000
    response = client.post(
        "/v1/batch", content=bomb, headers={**basic(key), "Content-Encoding": "gzip"}
    )
    assert_error(response, 413, "too_large")


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b"{not json", "body"),
        (b"[1, 2]", "body"),
        (b'{"properties": ' + b'{"a": ' * 40 + b"1" + b"}" * 41, "body"),
    ],
)
def test_malformed_bodies_are_400(
    client: TestClient, make_source: MakeSource, content: bytes, field: str
) -> None:
    key = make_source()
    error = assert_error(
        client.post("/v1/track", content=content, headers=basic(key)), 400, "invalid"
    )
    assert error["field"] == field


def test_batch_needs_a_list(client: TestClient, make_source: MakeSource) -> None:
    key = make_source()
    error = assert_error(
        client.post("/v1/batch", json={"batch": {"a": 1}}, headers=basic(key)), 400, "invalid"
    )
    assert error["field"] == "batch"
    bad_gzip = {**basic(key), "Content-Encoding": "gzip"}
    assert_error(client.post("/v1/batch", content=b"plain", headers=bad_gzip), 400, "invalid")


def test_rate_limit_answers_429_with_retry_after(
    rt: Runtime, make_source: MakeSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    from siyu.api import create_app

    limited = rt.settings.model_copy(update={"tracking_rate_limit": 0.01, "tracking_rate_burst": 2})
    monkeypatch.setattr(rt, "settings", limited)
    key = make_source()
    with TestClient(create_app(limited, rt)) as client:
        codes = [
            client.post("/v1/track", json=track(f"l{i}"), headers=basic(key)).status_code
            for i in range(2)
        ]
        assert codes == [200, 200]
        response = client.post("/v1/track", json=track("l3"), headers=basic(key))
        assert_error(response, 429, "rate_limited")
        assert int(response.headers["Retry-After"]) >= 1


def test_revocation_applies_once_the_auth_cache_entry_expires(
    client: TestClient,
    rt: Runtime,
    workspace: Workspace,
    make_source: MakeSource,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from siyu.api.routers import tracking

    monkeypatch.setattr(tracking, "AUTH_TTL", 0.0)  # entries expire at once
    key = make_source()
    assert client.post("/v1/track", json=track("c1"), headers=basic(key)).status_code == 200
    with rt.db.engine.begin() as conn:
        revoke_source(conn, workspace.workspace_id, "site")
    assert_error(
        client.post("/v1/track", json=track("c2"), headers=basic(key)), 401, "unauthorized"
    )


def test_the_spool_is_drained_when_the_app_stops(
    settings: Any, rt: Runtime, make_source: MakeSource
) -> None:
    from siyu.api import create_app

    app = create_app(settings, rt)
    key = make_source()
    with TestClient(app) as client:
        assert client.post("/v1/track", json=track("q1"), headers=basic(key)).status_code == 200
        ingest = app.state.ingest_queue
        thread = ingest._thread
        assert thread is not None
        assert thread.is_alive()
    assert not thread.is_alive()
    assert "q1" in stored(rt)
    assert ingest.spool.status()["pending_records"] == 0
