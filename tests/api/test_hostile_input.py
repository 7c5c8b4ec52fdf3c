"""Hostile input on the tracking API and webhooks: whatever the body, headers or encoding, the
answer is a success or an error envelope, never a 500.

Property-based (hypothesis): arbitrary JSON documents, arbitrary bytes, and Segment-shaped
messages with arbitrary field values. Schema-driven fuzzing of the whole OpenAPI document
(schemathesis) is to come once it is a dev dependency.
"""

from __future__ import annotations

import base64
import gzip
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siyu.collect.sources import create_source, set_webhook_secret
from siyu.runtime import Runtime

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = ("type", "userId", "anonymousId", "event", "messageId", "timestamp", "sentAt",
          "properties", "traits", "context", "name", "groupId", "previousId", "batch")  # fmt: skip
messages = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=8)
PATHS = ("/v1/track", "/v1/identify", "/v1/page", "/v1/alias", "/v1/batch", "/v1/import")
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def key(rt: Runtime) -> str:
    ws = rt.workspace()
    with rt.db.engine.begin() as conn:
        _, secret = create_source(conn, ws.workspace_id, "fuzz", "web")
        create_source(conn, ws.workspace_id, "shop", "shopify")
        set_webhook_secret(conn, ws.workspace_id, "shop", webhook_secret="s")
    return secret


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def _ok(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body = response.json()
        assert body["success"] is False
        assert body["error"]["code"]


@pytest.mark.parametrize("database_url", ["duckdb"], indirect=True)
@FUZZ
@given(path=st.sampled_from(PATHS), body=json_values)
def test_any_json_document(client: TestClient, key: str, path: str, body: Any) -> None:
    _ok(client.post(path, json=body, headers=_auth(key)))


@pytest.mark.parametrize("database_url", ["duckdb"], indirect=True)
@FUZZ
@given(path=st.sampled_from(PATHS), message=messages, batch=st.lists(messages, max_size=5))
def test_segment_shaped_messages(
    client: TestClient, key: str, path: str, message: dict[str, Any], batch: list[Any]
) -> None:
    body = {"batch": batch, "sentAt": message.get("sentAt")} if "batch" in path or (
        "import" in path) else message  # fmt: skip
    _ok(client.post(path, json=body, headers=_auth(key)))


@pytest.mark.parametrize("database_url", ["duckdb"], indirect=True)
@FUZZ
@given(
    path=st.sampled_from((*PATHS, "/webhooks/shopify/src_x", "/webhooks/whatsapp/src_x")),
    raw=st.binary(max_size=300),
    encoding=st.sampled_from(("", "gzip", "br", "deflate")),
    gzipped=st.booleans(),
    auth=st.sampled_from(("", "Basic", "Basic !!", "Basic " + base64.b64encode(b"\xff").decode())),
)
def test_any_bytes_and_headers(
    client: TestClient, key: str, path: str, raw: bytes, encoding: str, gzipped: bool, auth: str
) -> None:
    headers = {"Content-Encoding": encoding} if encoding else {}
    headers["Authorization"] = auth or _auth(key)["Authorization"]
    _ok(client.post(path, content=gzip.compress(raw) if gzipped else raw, headers=headers))
