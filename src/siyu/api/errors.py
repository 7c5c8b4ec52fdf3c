"""One JSON error envelope for every API error.

``{"success": false, "error": {"code", "message", "hint", ["field"], ["details"]}}`` — siyu
errors, request validation errors, unknown routes and unexpected failures all use it (locked by
``tests/api/test_error_shape.py``).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from siyu.errors import SiyuError

log = logging.getLogger("siyu.api")

_HTTP_CODES = {
    400: "invalid",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def error_response(
    status: int, code: str, message: str, hint: str, field: str | None = None
) -> JSONResponse:
    error: dict[str, object] = {"code": code, "message": message, "hint": hint}
    if field:
        error["field"] = field
    return JSONResponse({"success": False, "error": error}, status_code=status)


def install(app: FastAPI) -> None:
    @app.exception_handler(SiyuError)
    async def _siyu(request: Request, exc: SiyuError) -> JSONResponse:
        headers = {}
        if exc.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        if "retry_after" in exc.details:
            headers["Retry-After"] = str(exc.details["retry_after"])
        return JSONResponse(exc.envelope(), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        first: dict[str, Any] = dict(exc.errors()[0]) if exc.errors() else {"msg": "invalid"}
        if first.get("type") == "json_invalid":
            cause = dict(first.get("ctx") or {}).get("error", "")
            return error_response(
                400,
                "invalid",
                f"The request body is not valid JSON: {cause}",
                "Send a JSON document (Content-Type: application/json).",
                "body",
            )
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        field = ".".join(loc) or None
        return error_response(
            400,
            "invalid",
            f"{field + ': ' if field else ''}{first.get('msg', 'invalid request')}",
            "Correct the named field and send the request again.",
            field,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        hint = {
            404: "Check the URL; the API reference is at /docs.",
            405: "Check the HTTP method; the API reference is at /docs.",
        }.get(exc.status_code, "See the API reference at /docs.")
        return error_response(exc.status_code, code, str(exc.detail), hint)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(
            500,
            "internal",
            "siyu failed unexpectedly while handling this request.",
            "This is a bug; the server log has the details. Retrying is safe.",
        )
