"""API keys and workspace isolation through the HTTP API, on DuckDB and PostgreSQL."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from siyu.access import Workspace, authenticate, create_key, create_workspace
from siyu.errors import Unauthorized
from siyu.runtime import Runtime
from siyu.store import schema
from tests.api.conftest import MakeKey, bearer
from tests.api.envelope import assert_error


def _track(mid: str, user: str = "u1") -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Product Viewed",
        "userId": user,
        "messageId": mid,
        "timestamp": "2025-03-01T10:00:00Z",
        "properties": {"product_id": "p1", "price": 12.5, "currency": "USD"},
    }


def _refund_of_unknown_order(mid: str) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Order Refunded",
        "userId": "u1",
        "messageId": mid,
        "timestamp": "2025-03-05T10:00:00Z",
        "properties": {"order_id": "no-such-order", "total": 5, "currency": "USD"},
    }


def _api_key_rows(rt: Runtime) -> list[dict[str, Any]]:
    with rt.db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(schema.api_keys))]


# -- keys ---------------------------------------------------------------------------------------


def test_keys_are_stored_hashed(client: TestClient, rt: Runtime, make_key: MakeKey) -> None:
    admin = make_key("admin")
    response = client.post(
        "/api/keys", headers=bearer(admin), json={"name": "ci", "scopes": ["write"]}
    )
    assert response.status_code == 201, response.text
    created = response.json()
    secret = created["key"]
    assert secret.startswith(f"sk_{created['prefix']}_")
    assert created["scopes"] == ["write"]

    rows = _api_key_rows(rt)
    assert len(rows) == 3  # the init key, the admin key above, the new one
    for secret_in_clear in (secret, admin):
        assert all(secret_in_clear not in str(value) for row in rows for value in row.values())
        # What is stored is the secret's SHA-256.
        digest = hashlib.sha256(secret_in_clear.encode()).hexdigest()
        assert sum(row["key_hash"] == digest for row in rows) == 1
    # Secrets are never listed either.
    listing = client.get("/api/keys", headers=bearer(admin))
    assert secret not in listing.text
    assert admin not in listing.text


def test_admin_lists_creates_and_revokes_keys(
    client: TestClient, rt: Runtime, make_key: MakeKey
) -> None:
    admin = make_key("admin", name="admin key")
    created = client.post(
        "/api/keys", headers=bearer(admin), json={"name": "reader", "scopes": ["read", "READ "]}
    ).json()
    assert created["scopes"] == ["read"]

    listed = {k["key_id"]: k for k in client.get("/api/keys", headers=bearer(admin)).json()}
    assert {k["name"] for k in listed.values()} == {"first admin key", "admin key", "reader"}
    reader = listed[created["key_id"]]
    assert reader == {
        "key_id": created["key_id"],
        "name": "reader",
        "prefix": created["prefix"],
        "scopes": ["read"],
        "created_at": reader["created_at"],
        "revoked_at": None,
    }
    assert client.get("/api/status", headers=bearer(created["key"])).status_code == 200

    # Revoke by prefix: the key stops working at once and is listed as revoked.
    revoked = client.delete(f"/api/keys/{created['prefix']}", headers=bearer(admin))
    assert revoked.status_code == 200, revoked.text
    assert revoked.json() == {"key_id": created["key_id"], "revoked": True}
    assert_error(client.get("/api/status", headers=bearer(created["key"])), 401, "unauthorized")
    listed = {k["key_id"]: k for k in client.get("/api/keys", headers=bearer(admin)).json()}
    assert listed[created["key_id"]]["revoked_at"] is not None
    with pytest.raises(Unauthorized):
        authenticate(rt.db.engine, created["key"])

    # Revoking again is harmless and keeps the first revocation time.
    first_time = listed[created["key_id"]]["revoked_at"]
    again = client.delete(f"/api/keys/{created['key_id']}", headers=bearer(admin))
    assert again.status_code == 200
    listed = {k["key_id"]: k for k in client.get("/api/keys", headers=bearer(admin)).json()}
    assert listed[created["key_id"]]["revoked_at"] == first_time


def test_read_key_cannot_create_keys_or_ingest(
    client: TestClient, rt: Runtime, make_key: MakeKey
) -> None:
    read = make_key("read")
    response = client.post(
        "/api/keys", headers=bearer(read), json={"name": "escalate", "scopes": ["admin"]}
    )
    assert_error(response, 403, "forbidden")
    assert_error(
        client.post("/api/events", headers=bearer(read), json={"batch": [_track("m1")]}),
        403,
        "forbidden",
    )
    assert_error(client.delete("/api/keys/anything", headers=bearer(read)), 403, "forbidden")
    assert len(_api_key_rows(rt)) == 2
    assert client.get("/api/status", headers=bearer(read)).json()["counts"]["events"] == 0


def test_write_key_ingests_but_cannot_manage_keys(client: TestClient, make_key: MakeKey) -> None:
    write = make_key("write")
    response = client.post(
        "/api/events", headers=bearer(write), json={"batch": [_track("m1"), _track("m2")]}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    assert (body["read"], body["stored"], body["quarantined"]) == (2, 2, 0)
    # A resend stores nothing twice.
    again = client.post("/api/events", headers=bearer(write), json={"batch": [_track("m1")]})
    assert (again.json()["stored"], again.json()["duplicates"]) == (0, 1)
    # write implies read
    assert client.get("/api/status", headers=bearer(write)).json()["counts"]["events"] == 2
    assert_error(client.get("/api/keys", headers=bearer(write)), 403, "forbidden")


# -- isolation between workspaces --------------------------------------------------------------


@pytest.fixture
def other_workspace(rt: Runtime) -> tuple[Workspace, str]:
    """Workspace B with its own admin key."""
    with rt.db.engine.begin() as conn:
        ws = create_workspace(
            conn, "brand-b", name="Brand B", base_currency="EUR", default_region="DE"
        )
        _, secret = create_key(conn, ws.workspace_id, "b admin", frozenset({"admin"}))
    return ws, secret


def test_workspaces_never_see_each_other(
    client: TestClient,
    rt: Runtime,
    make_key: MakeKey,
    other_workspace: tuple[Workspace, str],
) -> None:
    ws_b, key_b = other_workspace
    key_a = make_key("admin", name="a admin")

    # Workspace A ingests events, one of which is quarantined.
    batch = [_track("a-1"), _track("a-2", user="u2"), _refund_of_unknown_order("a-3")]
    ingested = client.post("/api/events", headers=bearer(key_a), json={"batch": batch}).json()
    assert (ingested["stored"], ingested["quarantined"]) == (2, 1)
    [quarantine_id_a] = ingested["quarantine_ids"]

    status_a = client.get("/api/status", headers=bearer(key_a)).json()
    assert status_a["workspace"] == "default"
    assert status_a["counts"]["events"] == 2
    assert status_a["counts"]["quarantine"] == 1
    assert [
        q["quarantine_id"] for q in client.get("/api/quarantine", headers=bearer(key_a)).json()
    ] == [quarantine_id_a]
    shown = client.get(f"/api/quarantine/{quarantine_id_a}", headers=bearer(key_a)).json()
    assert shown["reason_code"] == "refund_unknown_order"

    # Workspace B sees none of it.
    status_b = client.get("/api/status", headers=bearer(key_b)).json()
    assert status_b["workspace"] == ws_b.slug
    assert status_b["counts"]["events"] == 0
    assert status_b["counts"]["customers"] == 0
    assert status_b["counts"]["products"] == 0
    assert status_b["counts"]["quarantine"] == 0
    assert status_b["counts"]["api_keys"] == 1
    assert status_b["problems"] == []
    assert client.get("/api/quarantine", headers=bearer(key_b)).json() == []
    assert (
        client.get("/api/quarantine?reason=refund_unknown_order", headers=bearer(key_b)).json()
        == []
    )
    assert_error(
        client.get(f"/api/quarantine/{quarantine_id_a}", headers=bearer(key_b)), 404, "not_found"
    )

    # B lists only its own keys, and cannot revoke A's, neither by id nor by prefix.
    keys_b = client.get("/api/keys", headers=bearer(key_b)).json()
    assert [k["name"] for k in keys_b] == ["b admin"]
    keys_a = {k["name"]: k for k in client.get("/api/keys", headers=bearer(key_a)).json()}
    assert "b admin" not in keys_a
    target = keys_a["a admin"]
    for ident in (target["key_id"], target["prefix"]):
        assert_error(client.delete(f"/api/keys/{ident}", headers=bearer(key_b)), 404, "not_found")
    assert client.get("/api/status", headers=bearer(key_a)).status_code == 200

    # B's own ingestion lands in B and only B (same messageIds as A: no cross-tenant dedup).
    ingested_b = client.post(
        "/api/events", headers=bearer(key_b), json={"batch": [_track("a-1")]}
    ).json()
    assert (ingested_b["stored"], ingested_b["duplicates"]) == (1, 0)
    assert client.get("/api/status", headers=bearer(key_b)).json()["counts"]["events"] == 1
    assert client.get("/api/status", headers=bearer(key_a)).json()["counts"]["events"] == 2
    with rt.db.engine.connect() as conn:
        per_ws = dict(
            conn.execute(
                sa.select(schema.events.c.workspace_id, sa.func.count()).group_by(
                    schema.events.c.workspace_id
                )
            ).all()
        )
    assert per_ws == {rt.workspace().workspace_id: 2, ws_b.workspace_id: 1}
