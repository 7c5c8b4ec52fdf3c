"""Sources: where events come from (a store, a marketplace, a website, a messaging channel).

Each source belongs to one workspace and has a write key (stored hashed) used by the tracking
API and webhooks.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from siyu.access.workspaces import utcnow
from siyu.collect import tables
from siyu.collect.kinds import SOURCE_KINDS
from siyu.errors import Conflict, InvalidInput, NotFound, Unauthorized
from siyu.store import schema


@dataclass(frozen=True)
class Source:
    source_id: str
    workspace_id: str
    name: str
    kind: str


def create_source(
    conn: sa.Connection, workspace_id: str, name: str, kind: str
) -> tuple[Source, str]:
    """Create a source; return it and its write key (shown once, stored hashed)."""
    if kind not in SOURCE_KINDS:
        raise InvalidInput(
            f"Unknown source kind {kind!r}.",
            hint=f"Use one of: {', '.join(SOURCE_KINDS)}.",
            field="kind",
        )
    s = schema.sources
    if conn.execute(
        sa.select(s.c.source_id).where(s.c.workspace_id == workspace_id, s.c.name == name)
    ).first():
        raise Conflict(f"Source {name!r} already exists.", hint="Choose another name.")
    source = Source("src_" + secrets.token_hex(8), workspace_id, name, kind)
    write_key, prefix, digest = _new_write_key()
    conn.execute(
        s.insert().values(
            workspace_id=workspace_id,
            source_id=source.source_id,
            name=name,
            kind=kind,
            write_key_prefix=prefix,
            write_key_hash=digest,
            created_at=utcnow(),
        )
    )
    return source, write_key


def get_source(conn: sa.Connection, workspace_id: str, name: str) -> Source:
    s = schema.sources
    row = conn.execute(
        sa.select(s.c.source_id, s.c.workspace_id, s.c.name, s.c.kind).where(
            s.c.workspace_id == workspace_id, s.c.name == name
        )
    ).first()
    if row is None:
        raise NotFound(f"No source {name!r}.", hint="Create it with 'siyu sources add'.")
    return Source(*row)


def ensure_source(conn: sa.Connection, workspace_id: str, name: str, kind: str) -> Source:
    try:
        return get_source(conn, workspace_id, name)
    except NotFound:
        return create_source(conn, workspace_id, name, kind)[0]


# -- write keys: list, rotate, revoke, authenticate ---------------------------------------------


@dataclass(frozen=True)
class SourceInfo:
    """A source as listed (never its key or secrets)."""

    source_id: str
    name: str
    kind: str
    write_key_prefix: str | None
    created_at: datetime
    revoked_at: datetime | None
    has_webhook_secret: bool


def _new_write_key() -> tuple[str, str, str]:
    """(key, prefix, SHA-256 hex). Keys are 32 random bytes: a fast hash is enough."""
    key = "wk_" + secrets.token_urlsafe(24)
    return key, key[:10], hashlib.sha256(key.encode()).hexdigest()


def list_sources(conn: sa.Connection, workspace_id: str) -> list[SourceInfo]:
    s, sec = schema.sources, tables.source_secrets
    rows = conn.execute(
        sa.select(
            s.c.source_id,
            s.c.name,
            s.c.kind,
            s.c.write_key_prefix,
            s.c.created_at,
            s.c.revoked_at,
            sec.c.webhook_secret.is_not(None),
        )
        .select_from(s.outerjoin(sec, sec.c.source_id == s.c.source_id))
        .where(s.c.workspace_id == workspace_id)
        .order_by(s.c.name)
    )
    return [SourceInfo(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6])) for r in rows]


def rotate_write_key(conn: sa.Connection, workspace_id: str, name: str) -> tuple[Source, str]:
    """Give a source a new write key; the old one stops working at once. Un-revokes it."""
    source = get_source(conn, workspace_id, name)
    key, prefix, digest = _new_write_key()
    conn.execute(
        schema.sources.update()
        .where(schema.sources.c.source_id == source.source_id)
        .values(write_key_prefix=prefix, write_key_hash=digest, revoked_at=None)
    )
    return source, key


def revoke_source(conn: sa.Connection, workspace_id: str, name: str) -> Source:
    """Revoke a source's write key: the tracking API and webhooks refuse it from now on."""
    source = get_source(conn, workspace_id, name)
    conn.execute(
        schema.sources.update()
        .where(schema.sources.c.source_id == source.source_id)
        .values(revoked_at=utcnow())
    )
    return source


def authenticate_write_key(conn: sa.Connection, write_key: str) -> Source:
    """The active source whose write key this is, or Unauthorized.

    Candidates are found by the stored prefix (indexable, not secret); the hashes are then
    compared with ``hmac.compare_digest`` so the comparison time does not reveal how much of a
    guessed key matched.
    """
    s = schema.sources
    digest = hashlib.sha256(write_key.encode("utf-8", "replace")).hexdigest()
    rows = conn.execute(
        sa.select(
            s.c.source_id, s.c.workspace_id, s.c.name, s.c.kind, s.c.write_key_hash, s.c.revoked_at
        ).where(s.c.write_key_prefix == write_key[:10])
    ).all()
    for row in rows:
        if row.write_key_hash and hmac.compare_digest(row.write_key_hash, digest):
            if row.revoked_at is not None:
                raise Unauthorized(
                    f"The write key of source {row.name!r} was revoked.",
                    hint="Use the source's current key (siyu sources rotate NAME issues one).",
                )
            return Source(row.source_id, row.workspace_id, row.name, row.kind)
    raise Unauthorized(
        "Unknown write key.",
        hint="Send the source's write key as the HTTP Basic user name, or as 'writeKey' in the "
        "body (create one: siyu sources add NAME --kind web).",
    )


# -- webhook secrets ----------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookSecrets:
    """What a webhook sender shares with siyu: the HMAC secret and (Meta) the verify token."""

    source: Source
    revoked: bool
    webhook_secret: str | None
    verify_token: str | None


def set_webhook_secret(
    conn: sa.Connection,
    workspace_id: str,
    name: str,
    *,
    webhook_secret: str | None = None,
    verify_token: str | None = None,
) -> Source:
    """Store the secret Shopify/Meta sign webhooks with (and the WhatsApp verify token)."""
    source = get_source(conn, workspace_id, name)
    sec = tables.source_secrets
    current = conn.execute(
        sa.select(sec.c.webhook_secret, sec.c.verify_token).where(
            sec.c.source_id == source.source_id
        )
    ).first()
    values = {
        "webhook_secret": webhook_secret or (current[0] if current else None),
        "verify_token": verify_token or (current[1] if current else None),
        "updated_at": utcnow(),
    }
    if current is None:
        conn.execute(
            sec.insert().values(workspace_id=workspace_id, source_id=source.source_id, **values)
        )
    else:
        conn.execute(sec.update().where(sec.c.source_id == source.source_id).values(**values))
    return source


def webhook_secrets(conn: sa.Connection, source_id: str) -> WebhookSecrets:
    """A source (by id, as in webhook URLs) with its secrets; NotFound if there is none."""
    s, sec = schema.sources, tables.source_secrets
    row = conn.execute(
        sa.select(
            s.c.source_id,
            s.c.workspace_id,
            s.c.name,
            s.c.kind,
            s.c.revoked_at,
            sec.c.webhook_secret,
            sec.c.verify_token,
        )
        .select_from(s.outerjoin(sec, sec.c.source_id == s.c.source_id))
        .where(s.c.source_id == source_id)
    ).first()
    if row is None:
        raise NotFound(
            f"No source {source_id!r}.",
            hint="Use the source id printed by 'siyu sources add' in the webhook URL.",
        )
    return WebhookSecrets(Source(*row[:4]), row[4] is not None, row[5], row[6])
