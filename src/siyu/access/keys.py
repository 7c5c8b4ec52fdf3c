"""Workspace API keys with scopes.

A key is shown once, when created; only its SHA-256 is stored, so a database leak does not leak
keys. Keys look like ``sk_<prefix>_<secret>``: the prefix identifies the key in lists and logs.
Scopes: ``admin`` (everything, including keys), ``write`` (ingest and change data), ``read``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa

from siyu.access.workspaces import utcnow
from siyu.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from siyu.store import schema

Scope = Literal["admin", "write", "read"]
SCOPES: tuple[Scope, ...] = ("admin", "write", "read")
# What each scope also grants.
IMPLIES: dict[str, set[str]] = {"admin": {"admin", "write", "read"}, "write": {"write", "read"}}


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    workspace_id: str
    name: str
    prefix: str
    scopes: frozenset[str]
    created_at: datetime
    revoked_at: datetime | None

    def allows(self, scope: str) -> bool:
        return any(scope in IMPLIES.get(s, {s}) for s in self.scopes)

    def require(self, scope: str) -> None:
        if not self.allows(scope):
            raise Forbidden(
                f"This API key ({self.prefix}) lacks the '{scope}' scope.",
                hint=f"Create a key with --scope {scope}: siyu keys create NAME --scope {scope}.",
            )


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_scopes(scopes: list[str] | tuple[str, ...]) -> frozenset[str]:
    chosen = frozenset(s.strip().lower() for s in scopes if s.strip())
    unknown = chosen - set(SCOPES)
    if unknown or not chosen:
        raise InvalidInput(
            f"Unknown or missing scope: {', '.join(sorted(unknown)) or '(none)'}.",
            hint=f"Scopes are: {', '.join(SCOPES)}.",
            field="scopes",
        )
    return chosen


def create_key(
    conn: sa.Connection, workspace_id: str, name: str, scopes: frozenset[str]
) -> tuple[ApiKey, str]:
    """Create a key; return it and the secret (the only time the secret exists in clear)."""
    prefix = secrets.token_hex(4)
    secret = f"sk_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(
        key_id="key_" + secrets.token_hex(8),
        workspace_id=workspace_id,
        name=name,
        prefix=prefix,
        scopes=scopes,
        created_at=utcnow(),
        revoked_at=None,
    )
    conn.execute(
        schema.api_keys.insert().values(
            workspace_id=workspace_id,
            key_id=key.key_id,
            name=name,
            prefix=prefix,
            key_hash=hash_key(secret),
            scopes=",".join(sorted(scopes)),
            created_at=key.created_at,
        )
    )
    return key, secret


def _row_to_key(row: Any) -> ApiKey:
    key_id, ws, name, prefix, scopes, created, revoked = row
    return ApiKey(key_id, ws, name, prefix, frozenset(scopes.split(",")), created, revoked)


_COLS = (
    schema.api_keys.c.key_id,
    schema.api_keys.c.workspace_id,
    schema.api_keys.c.name,
    schema.api_keys.c.prefix,
    schema.api_keys.c.scopes,
    schema.api_keys.c.created_at,
    schema.api_keys.c.revoked_at,
)


def list_keys(engine: sa.Engine, workspace_id: str) -> list[ApiKey]:
    k = schema.api_keys
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(*_COLS).where(k.c.workspace_id == workspace_id).order_by(k.c.created_at)
        )
        return [_row_to_key(r) for r in rows]


def revoke_key(engine: sa.Engine, workspace_id: str, key_or_prefix: str) -> ApiKey:
    k = schema.api_keys
    match = sa.or_(k.c.key_id == key_or_prefix, k.c.prefix == key_or_prefix)
    with engine.begin() as conn:
        row = conn.execute(sa.select(*_COLS).where(k.c.workspace_id == workspace_id, match)).first()
        if row is None:
            raise NotFound(
                f"No API key {key_or_prefix!r} in this workspace.",
                hint="List keys with 'siyu keys list'.",
            )
        conn.execute(
            k.update()
            .where(k.c.key_id == row[0], k.c.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
    return _row_to_key(row)


def authenticate(engine: sa.Engine, secret: str) -> ApiKey:
    """The active key for ``secret``; Unauthorized when unknown or revoked.

    The lookup is by hash (an index probe, not a comparison of secrets); the final equality is
    checked in constant time as well.
    """
    if not secret.startswith("sk_"):
        raise Unauthorized("The API key is malformed.")
    digest = hash_key(secret)
    k = schema.api_keys
    with engine.connect() as conn:
        row = conn.execute(sa.select(*_COLS, k.c.key_hash).where(k.c.key_hash == digest)).first()
    if row is None or not hmac.compare_digest(str(row[-1]), digest):
        raise Unauthorized("The API key is not known.")
    key = _row_to_key(row[:-1])
    if key.revoked_at is not None:
        raise Unauthorized(f"The API key {key.prefix} was revoked.")
    return key
