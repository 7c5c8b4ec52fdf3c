"""The tracking API's acknowledgement through its durable spool, through the real app on DuckDB
and PostgreSQL: answered once durable, stored afterwards; invalid single calls still 400 at
once; storage-time refusals quarantined after the 200; a full disk answers 503 with
Retry-After; the spool lives where ``tracking_spool_dir`` says; the status route."""

from __future__ import annotations

import base64
import errno
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from siyu.api import create_app
from siyu.collect.sources import create_source
from siyu.config import Settings
from siyu.runtime import Runtime
from siyu.store import schema
from tests.api.conftest import MakeKey, bearer
from tests.api.envelope import assert_error


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "my-spool"


@pytest.fixture
def app_client(settings: Settings, rt: Runtime, spool_dir: Path) -> Iterator[TestClient]:
    configured = settings.model_copy(update={"tracking_spool_dir": str(spool_dir)})
    rt.settings = configured
    with TestClient(create_app(configured, rt)) as client:
        client.app.state.ingest_queue.drain_delay = 3600  # type: ignore[attr-defined]
        yield client


@pytest.fixture
def auth(rt: Runtime) -> dict[str, str]:
    with rt.db.engine.begin() as conn:
        key = create_source(conn, rt.workspace().workspace_id, "site", "web")[1]
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def _flush(client: TestClient) -> None:
    client.app.state.ingest_queue.flush()  # type: ignore[attr-defined]


def _events(rt: Runtime) -> set[str]:
    with rt.db.engine.connect() as conn:
        return {r[0] for r in conn.execute(sa.select(schema.events.c.message_id))}


def _quarantine(rt: Runtime) -> list[dict[str, Any]]:
    q = schema.quarantine
    with rt.db.engine.connect() as conn:
        rows = conn.execute(sa.select(q.c.quarantine_id, q.c.reason_code, q.c.field, q.c.position))
        return [dict(r._mapping) for r in rows]


def test_acknowledged_when_durable_and_stored_afterwards(
    app_client: TestClient, rt: Runtime, auth: dict[str, str], spool_dir: Path
) -> None:
    body = {"userId": "u1", "event": "Page Viewed", "messageId": "m1"}
    response = app_client.post("/v1/track", json=body, headers=auth)
    assert response.status_code == 200
    assert response.json() == {"success": True}
    assert "m1" not in _events(rt)  # durable in the spool, not stored yet
    assert list(spool_dir.glob("*.seg"))  # where tracking_spool_dir says
    _flush(app_client)
    assert "m1" in _events(rt)


def test_an_invalid_single_call_is_answered_400_before_any_storage(
    app_client: TestClient, rt: Runtime, auth: dict[str, str], make_key: MakeKey
) -> None:
    bad = {"userId": "u1", "event": "Order Completed", "properties": {"total": 5}}
    error = assert_error(app_client.post("/v1/track", json=bad, headers=auth), 400, "invalid")
    assert error["field"] == "properties.order_id"
    qid = error["details"]["quarantine_id"]
    assert _quarantine(rt) == []  # the answer did not wait for the database
    _flush(app_client)
    [row] = _quarantine(rt)
    assert (row["quarantine_id"], row["field"]) == (qid, "properties.order_id")
    shown = app_client.get(f"/api/quarantine/{qid}", headers=bearer(make_key("read")))
    assert shown.json()["origin"] == "api:/v1"


def test_a_refusal_only_storage_can_find_is_quarantined_after_the_200(
    app_client: TestClient, rt: Runtime, auth: dict[str, str]
) -> None:
    refund = {
        "userId": "u1",
        "event": "Order Refunded",
        "messageId": "r1",
        "properties": {"order_id": "never-seen", "total": 5, "currency": "USD"},
    }
    response = app_client.post("/v1/track", json=refund, headers=auth)
    assert response.status_code == 200  # valid by itself: the order is checked when stored
    _flush(app_client)
    assert "r1" not in _events(rt)
    assert [r["reason_code"] for r in _quarantine(rt)] == ["refund_unknown_order"]


def test_a_full_disk_answers_503_with_retry_after(
    app_client: TestClient, rt: Runtime, auth: dict[str, str]
) -> None:
    spool = app_client.app.state.ingest_queue.spool  # type: ignore[attr-defined]

    def full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    spool._os_write = full
    body = {"batch": [{"type": "track", "userId": "u1", "event": "X", "messageId": "d1"}]}
    response = app_client.post("/v1/batch", json=body, headers=auth)
    error = assert_error(response, 503, "unavailable")
    assert "disk is full" in error["message"]
    assert int(response.headers["Retry-After"]) >= 1
    del spool._os_write
    assert app_client.post("/v1/batch", json=body, headers=auth).status_code == 200
    _flush(app_client)
    assert _events(rt) == {"d1"}


def test_the_spool_status_route(
    app_client: TestClient, auth: dict[str, str], make_key: MakeKey
) -> None:
    admin = bearer(make_key("admin"))
    assert_error(
        app_client.get("/api/tracking/spool", headers=bearer(make_key("read"))), 403, "forbidden"
    )
    body = {"batch": [{"type": "track", "userId": "u", "event": "X"} for _ in range(3)]}
    assert app_client.post("/v1/batch", json=body, headers=auth).status_code == 200
    status = app_client.get("/api/tracking/spool", headers=admin).json()
    assert status["pending_records"] == 3
    assert status["pending_bytes"] > 0
    assert status["write_error"] is None
    assert status["drain_error"] is None
    _flush(app_client)
    assert app_client.get("/api/tracking/spool", headers=admin).json()["pending_records"] == 0


def test_the_routes_answer_alike_without_the_fast_path(
    settings: Settings, rt: Runtime, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The FastAPI routes stay the reference (OpenAPI, apps without the middleware)."""
    from siyu.api.routers.tracking import FastPath

    def unused(*args: Any) -> None:
        raise AssertionError("the fast path should not be in this app")

    monkeypatch.setattr(FastPath, "__call__", unused)
    app = create_app(settings, rt)
    app.user_middleware = [m for m in app.user_middleware if m.cls is not FastPath]
    with TestClient(app) as client:
        ok = {"userId": "u1", "event": "Page Viewed", "messageId": "r-1"}
        assert client.post("/v1/track", json=ok, headers=auth).json() == {"success": True}
        batch = {"batch": [{"type": "track", "userId": "u2", "event": "X", "messageId": "r-2"}]}
        assert client.post("/v1/import", json=batch, headers=auth).status_code == 200
        bad = {"event": "Page Viewed"}
        error = assert_error(client.post("/v1/page", json=bad, headers=auth), 400, "invalid")
        assert error["details"]["quarantine_id"].startswith("q_")
        assert_error(client.post("/v1/track", json=ok), 401, "unauthorized")
        _flush(client)
    assert {"r-1", "r-2"} <= _events(rt)
