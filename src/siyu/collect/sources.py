"""Sources: where events come from (a store, a marketplace, a website, a messaging channel).

Each source belongs to one workspace and has a write key (stored hashed) used by the tracking
API and webhooks.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import sqlalchemy as sa

from siyu.access.workspaces import utcnow
from siyu.errors import Conflict, InvalidInput, NotFound
from siyu.store import schema

SOURCE_KINDS = (
    "shopify",
    "amazon",
    "woocommerce",
    "tiktok_shop",
    "web",
    "mobile",
    "whatsapp",
    "instagram",
    "email",
    "sms",
    "line",
    "discord",
    "import",
    "other",
)


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
    write_key = "wk_" + secrets.token_urlsafe(24)
    conn.execute(
        s.insert().values(
            workspace_id=workspace_id,
            source_id=source.source_id,
            name=name,
            kind=kind,
            write_key_prefix=write_key[:10],
            write_key_hash=hashlib.sha256(write_key.encode()).hexdigest(),
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
