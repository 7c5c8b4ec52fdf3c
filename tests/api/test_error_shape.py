"""One JSON error envelope for every API error, locked here (after datasette's test_error_shape).

``{"success": false, "error": {"code", "message", "hint"[, "field"][, "details"]}}`` — for siyu
errors, request validation, unknown routes, wrong methods and unexpected failures alike.
"""

from __future__ import annotations

import inspect

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from siyu import errors
from siyu.api import create_app
from siyu.config import Settings
from siyu.errors import ALL_ERRORS, SiyuError
from siyu.runtime import Runtime
from tests.api.conftest import MakeKey, bearer
from tests.api.envelope import assert_envelope, assert_error

# The documented contract (docs/api.md): error class -> (code, HTTP status).
DOCUMENTED: dict[type[SiyuError], tuple[str, int]] = {
    errors.SiyuError: ("error", 500),
    errors.InvalidInput: ("invalid", 400),
    errors.Unauthorized: ("unauthorized", 401),
    errors.Forbidden: ("forbidden", 403),
    errors.NotFound: ("not_found", 404),
    errors.Conflict: ("conflict", 409),
    errors.PayloadTooLarge: ("too_large", 413),
    errors.RateLimited: ("rate_limited", 429),
    errors.ConfigError: ("config", 500),
    errors.DatabaseUnavailable: ("database_unavailable", 503),
    errors.NotInitialised: ("not_initialised", 503),
}


def _error_id(cls: type[SiyuError]) -> str:
    return cls.__name__


# -- the error classes themselves --------------------------------------------------------------


def test_all_errors_lists_every_error_class() -> None:
    defined = {
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, SiyuError) and obj.__module__ == errors.__name__
    }
    assert set(ALL_ERRORS) == defined
    assert set(ALL_ERRORS) == set(DOCUMENTED), "a new error class needs a documented status"


def test_error_codes_are_unique() -> None:
    codes = [cls.code for cls in ALL_ERRORS]
    assert len(codes) == len(set(codes)), codes


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=_error_id)
def test_error_class_has_documented_code_status_and_hint(cls: type[SiyuError]) -> None:
    assert (cls.code, cls.status) == DOCUMENTED[cls]
    assert cls.default_hint.strip()


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=_error_id)
def test_envelope_has_exactly_the_documented_keys(cls: type[SiyuError]) -> None:
    plain = assert_envelope(cls("Something is wrong.").envelope())
    assert set(plain) == {"code", "message", "hint"}
    assert plain == {"code": cls.code, "message": "Something is wrong.", "hint": cls.default_hint}

    full = assert_envelope(
        cls("Bad value.", hint="Do this.", field="a.b", details={"n": 1}).envelope()
    )
    assert full == {
        "code": cls.code,
        "message": "Bad value.",
        "hint": "Do this.",
        "field": "a.b",
        "details": {"n": 1},
    }


# -- every error class through the real app -----------------------------------------------------


def _raising_app(settings: Settings, rt: Runtime) -> FastAPI:
    """The real app plus one route that raises a named error class."""
    app = create_app(settings, rt)
    by_name = {cls.__name__: cls for cls in ALL_ERRORS}

    @app.get("/_raise/{name}")
    def _raise(name: str) -> None:
        cls = by_name[name]
        details = {"retry_after": 7} if cls is errors.RateLimited else None
        raise cls(f"{name} raised on purpose.", field="thing", details=details)

    @app.get("/_crash")
    def _crash() -> None:
        raise RuntimeError("secret internal detail")

    return app


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=_error_id)
def test_api_maps_each_error_to_its_status(
    cls: type[SiyuError], settings: Settings, rt: Runtime
) -> None:
    with TestClient(_raising_app(settings, rt)) as client:
        response = client.get(f"/_raise/{cls.__name__}")
    code, status = DOCUMENTED[cls]
    error = assert_error(response, status, code)
    assert error["message"] == f"{cls.__name__} raised on purpose."
    assert error["hint"] == cls.default_hint
    assert error["field"] == "thing"
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
    if cls is errors.RateLimited:
        assert response.headers["retry-after"] == "7"
        assert error["details"] == {"retry_after": 7}


def test_unexpected_exception_is_a_500_envelope_without_internals(
    settings: Settings, rt: Runtime
) -> None:
    with TestClient(_raising_app(settings, rt), raise_server_exceptions=False) as client:
        response = client.get("/_crash")
    error = assert_error(response, 500, "internal")
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text
    assert "field" not in error


# -- the real endpoints -------------------------------------------------------------------------


def test_unknown_route_is_404(client: TestClient) -> None:
    assert_error(client.get("/api/no-such-thing"), 404, "not_found")


def test_wrong_method_is_405(client: TestClient) -> None:
    assert_error(client.delete("/health"), 405, "method_not_allowed")
    assert_error(client.put("/api/keys"), 405, "method_not_allowed")


def test_missing_auth_is_401_with_www_authenticate(client: TestClient) -> None:
    response = client.get("/api/status")
    error = assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    assert "siyu keys create" in error["hint"]


@pytest.mark.parametrize(
    "header",
    [
        "Bearer sk_00000000_not-a-real-key",
        "Bearer not-even-the-format",
        "Basic dXNlcjpwYXNz",
        "Bearer ",
    ],
)
def test_bad_key_is_401(client: TestClient, header: str) -> None:
    response = client.get("/api/status", headers={"Authorization": header})
    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


def test_revoked_key_is_401(client: TestClient, make_key: MakeKey) -> None:
    admin = make_key("admin")
    victim = make_key("read", name="to revoke")
    assert client.get("/api/status", headers=bearer(victim)).status_code == 200
    key_id = next(
        k["key_id"]
        for k in client.get("/api/keys", headers=bearer(admin)).json()
        if k["name"] == "to revoke"
    )
    assert client.delete(f"/api/keys/{key_id}", headers=bearer(admin)).status_code == 200

    response = client.get("/api/status", headers=bearer(victim))
    error = assert_error(response, 401, "unauthorized")
    assert "revoked" in error["message"]
    assert response.headers["www-authenticate"] == "Bearer"


def test_insufficient_scope_is_403(client: TestClient, make_key: MakeKey) -> None:
    read = make_key("read")
    error = assert_error(client.get("/api/keys", headers=bearer(read)), 403, "forbidden")
    assert "admin" in error["message"]
    assert "--scope admin" in error["hint"]


def test_validation_error_is_400_naming_the_field(client: TestClient, make_key: MakeKey) -> None:
    admin = make_key("admin")
    response = client.post("/api/keys", headers=bearer(admin), json={"name": "ci"})
    error = assert_error(response, 400, "invalid")
    assert error["field"] == "scopes"
    assert "scopes" in error["message"]


def test_unknown_scope_is_400_naming_the_field(client: TestClient, make_key: MakeKey) -> None:
    admin = make_key("admin")
    response = client.post(
        "/api/keys", headers=bearer(admin), json={"name": "ci", "scopes": ["superuser"]}
    )
    error = assert_error(response, 400, "invalid")
    assert error["field"] == "scopes"
    assert "superuser" in error["message"]


def test_query_parameter_validation_error_is_400(client: TestClient, make_key: MakeKey) -> None:
    read = make_key("read")
    response = client.get("/api/quarantine?limit=lots", headers=bearer(read))
    error = assert_error(response, 400, "invalid")
    assert error["field"] == "limit"


def test_body_of_wrong_type_is_400(client: TestClient, make_key: MakeKey) -> None:
    write = make_key("write")
    response = client.post("/api/events", headers=bearer(write), json=[{"type": "track"}])
    assert_error(response, 400, "invalid")
    response = client.post("/api/events", headers=bearer(write), json={"batch": "nope"})
    assert assert_error(response, 400, "invalid")["field"] == "batch"


def test_malformed_json_body_is_400(client: TestClient, make_key: MakeKey) -> None:
    write = make_key("write")
    response = client.post(
        "/api/events",
        headers={**bearer(write), "Content-Type": "application/json"},
        content=b'{"batch": [',
    )
    error = assert_error(response, 400, "invalid")
    assert "JSON" in error["message"]


def test_malformed_json_body_names_no_bogus_field(client: TestClient, make_key: MakeKey) -> None:
    write = make_key("write")
    response = client.post(
        "/api/events",
        headers={**bearer(write), "Content-Type": "application/json"},
        content=b"{not json",
    )
    error = assert_error(response, 400, "invalid")
    assert error.get("field") in (None, "body"), error
    assert not error["message"].split(":")[0].strip().isdigit(), error


def test_unknown_quarantine_id_is_404(client: TestClient, make_key: MakeKey) -> None:
    read = make_key("read")
    response = client.get("/api/quarantine/q_00000000000000000000", headers=bearer(read))
    error = assert_error(response, 404, "not_found")
    assert "q_00000000000000000000" in error["message"]


def test_unknown_key_id_on_revoke_is_404(client: TestClient, make_key: MakeKey) -> None:
    admin = make_key("admin")
    response = client.delete("/api/keys/key_nope", headers=bearer(admin))
    assert_error(response, 404, "not_found")


def test_batch_over_max_batch_bytes_is_413(
    client: TestClient, make_key: MakeKey, settings: Settings
) -> None:
    write = make_key("write")
    per_event = settings.max_event_bytes // 2
    n = settings.max_batch_bytes // per_event + 2
    batch = [
        {
            "type": "track",
            "event": "Product Viewed",
            "userId": "u1",
            "messageId": f"big-{i}",
            "timestamp": "2025-03-01T10:00:00Z",
            "properties": {"blob": "x" * per_event},
        }
        for i in range(n)
    ]
    response = client.post("/api/events", headers=bearer(write), json={"batch": batch})
    assert_error(response, 413, "too_large")
