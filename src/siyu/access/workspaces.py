"""Workspaces: a brand or store group; every row of every table belongs to one."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from siyu.errors import Conflict, InvalidInput, NotFound, NotInitialised
from siyu.money import require_currency
from siyu.store import schema

SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class Workspace:
    workspace_id: str
    slug: str
    name: str
    base_currency: str
    default_region: str


def utcnow() -> datetime:
    """Naive UTC now: the storage convention for timestamps."""
    return datetime.now(UTC).replace(tzinfo=None)


def create_workspace(
    conn: sa.Connection, slug: str, *, name: str | None, base_currency: str, default_region: str
) -> Workspace:
    if not SLUG.match(slug):
        raise InvalidInput(
            f"Workspace slug {slug!r} is not valid.",
            hint="Use lower-case letters, digits, '-' and '_' (at most 64 characters).",
            field="slug",
        )
    ws = schema.workspaces
    if conn.execute(sa.select(ws.c.workspace_id).where(ws.c.slug == slug)).first():
        raise Conflict(f"Workspace {slug!r} already exists.", hint="Choose another slug.")
    workspace = Workspace(
        workspace_id="ws_" + secrets.token_hex(8),
        slug=slug,
        name=name or slug,
        base_currency=require_currency(base_currency, "base_currency"),
        default_region=default_region.upper(),
    )
    conn.execute(
        ws.insert().values(
            workspace_id=workspace.workspace_id,
            slug=workspace.slug,
            name=workspace.name,
            base_currency=workspace.base_currency,
            default_region=workspace.default_region,
            created_at=utcnow(),
        )
    )
    return workspace


def get_workspace(engine: sa.Engine, slug: str) -> Workspace:
    ws = schema.workspaces
    cols = (ws.c.workspace_id, ws.c.slug, ws.c.name, ws.c.base_currency, ws.c.default_region)
    try:
        with engine.connect() as conn:
            row = conn.execute(sa.select(*cols).where(ws.c.slug == slug)).first()
    except sa.exc.ProgrammingError as exc:  # tables missing
        raise NotInitialised("The database has no siyu schema yet.") from exc
    except sa.exc.DBAPIError as exc:
        if "workspaces" in str(exc):
            raise NotInitialised("The database has no siyu schema yet.") from exc
        raise
    if row is None:
        raise NotFound(
            f"No workspace {slug!r}.",
            hint="Run 'siyu init' to create the default workspace, or pass --workspace.",
        )
    return Workspace(*row)


def get_workspace_by_id(conn: sa.Connection, workspace_id: str) -> Workspace:
    ws = schema.workspaces
    cols = (ws.c.workspace_id, ws.c.slug, ws.c.name, ws.c.base_currency, ws.c.default_region)
    row = conn.execute(sa.select(*cols).where(ws.c.workspace_id == workspace_id)).first()
    if row is None:
        raise NotFound(f"No workspace with id {workspace_id!r}.")
    return Workspace(*row)
