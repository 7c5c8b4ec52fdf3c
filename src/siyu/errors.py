"""One error hierarchy for siyu.

Every error carries a stable machine-readable ``code``, the HTTP status it maps to, a message that
says what is wrong, and a ``hint`` that says what to do about it. The API turns any ``SiyuError``
into the one JSON envelope (see :func:`SiyuError.envelope`); the CLI prints message and hint and
exits non-zero, without a traceback.
"""

from __future__ import annotations

from typing import Any, ClassVar


class SiyuError(Exception):
    """Base of every error siyu raises on purpose."""

    code: ClassVar[str] = "error"
    status: ClassVar[int] = 500
    default_hint: ClassVar[str] = "This is a bug in siyu; please report it with the log."

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        field: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint or self.default_hint
        self.field = field
        self.details = details or {}

    def envelope(self) -> dict[str, Any]:
        """The JSON error body: the same shape for every API error."""
        error: dict[str, Any] = {"code": self.code, "message": self.message, "hint": self.hint}
        if self.field is not None:
            error["field"] = self.field
        if self.details:
            error["details"] = self.details
        return {"success": False, "error": error}

    def __str__(self) -> str:
        return self.message


class InvalidInput(SiyuError, ValueError):
    """A request or record does not follow the documented format.

    Also a ValueError, so that Pydantic validators may raise it and keep its message.
    """

    code = "invalid"
    status = 400
    default_hint = "Correct the named field and send the request again."


class Unauthorized(SiyuError):
    """No credentials, or credentials that are unknown or revoked."""

    code = "unauthorized"
    status = 401
    default_hint = (
        "Send a valid API key as 'Authorization: Bearer <key>' (create one: siyu keys create)."
    )


class Forbidden(SiyuError):
    """The credentials are valid but lack the scope for this action."""

    code = "forbidden"
    status = 403
    default_hint = "Use a key with the required scope (siyu keys create --scope ...)."


class NotFound(SiyuError):
    """The named thing does not exist (in this workspace)."""

    code = "not_found"
    status = 404
    default_hint = "Check the identifier; list what exists with the matching 'list' command."


class Conflict(SiyuError):
    """The request contradicts what is already stored."""

    code = "conflict"
    status = 409
    default_hint = "Look at the stored record and send a consistent update."


class PayloadTooLarge(SiyuError):
    """A body or event exceeds its size limit."""

    code = "too_large"
    status = 413
    default_hint = "Split the data into smaller batches (at most 32 KB per event, 500 KB a batch)."


class RateLimited(SiyuError):
    """Too many requests in the current window."""

    code = "rate_limited"
    status = 429
    default_hint = "Wait for the number of seconds in the Retry-After header, then retry."


class ConfigError(SiyuError):
    """A setting is missing, malformed or unsafe."""

    code = "config"
    status = 500
    default_hint = "Fix the setting (see 'siyu config' and docs/settings.md)."


class DatabaseUnavailable(SiyuError):
    """The configured database cannot be reached or opened."""

    code = "database_unavailable"
    status = 503
    default_hint = "Check SIYU_DATABASE_URL and that the database server is running."


class NotInitialised(SiyuError):
    """The database has no siyu schema or no workspace yet."""

    code = "not_initialised"
    status = 503
    default_hint = "Run 'siyu init' first."


ALL_ERRORS: tuple[type[SiyuError], ...] = (
    SiyuError,
    InvalidInput,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    PayloadTooLarge,
    RateLimited,
    ConfigError,
    DatabaseUnavailable,
    NotInitialised,
)
