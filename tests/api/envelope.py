"""The one JSON error envelope, asserted in one place."""

from __future__ import annotations

from typing import Any

import httpx

ERROR_KEYS = {"code", "message", "hint"}
OPTIONAL_ERROR_KEYS = {"field", "details"}


def assert_envelope(body: Any) -> dict[str, Any]:
    """Assert ``body`` is exactly {"success": false, "error": {code, message, hint[, field][,
    details]}} with non-empty strings; return the error object."""
    assert isinstance(body, dict), body
    assert set(body) == {"success", "error"}, body
    assert body["success"] is False
    error = body["error"]
    assert isinstance(error, dict), body
    assert ERROR_KEYS <= set(error) <= ERROR_KEYS | OPTIONAL_ERROR_KEYS, error
    for key in ERROR_KEYS:
        assert isinstance(error[key], str), error
        assert error[key].strip(), f"empty {key}: {error}"
    if "field" in error:
        assert isinstance(error["field"], str), error
        assert error["field"], error
    if "details" in error:
        assert isinstance(error["details"], dict), error
        assert error["details"], error
    return error


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert an error response: status, JSON content type, envelope shape and code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    error = assert_envelope(response.json())
    assert error["code"] == code, error
    return error
