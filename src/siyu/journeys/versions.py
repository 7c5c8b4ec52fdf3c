"""Publishing and reading journeys: each publish stores a new immutable version.

Enrollments keep the version they entered with; only new entries get the latest version. A
publish whose definition is identical to the latest version creates nothing (same checksum).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa

from siyu.errors import InvalidInput, NotFound
from siyu.journeys.checks import publish_problems
from siyu.journeys.definition import Definition, from_data
from siyu.journeys.tables import journey_versions, journeys
from siyu.store.database import Database


@dataclass(frozen=True)
class JourneyInfo:
    journey_id: str
    name: str
    status: str
    version: int
    updated_at: datetime


@dataclass(frozen=True)
class PublishResult:
    journey_id: str
    version: int
    created: bool  # False: the definition equals the latest version, nothing new stored


def checksum(definition: Definition) -> str:
    body = json.dumps(definition.model_dump(mode="json", by_alias=True), sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


def publish(
    db: Database, workspace_id: str, definition: Definition, *, now: datetime
) -> PublishResult:
    """Check the definition against the workspace (templates, channels, rewards); store it."""
    problems = publish_problems(db, workspace_id, definition)
    if problems:
        raise InvalidInput(
            f"Journey '{definition.id}' cannot be published: " + "; ".join(problems),
            hint="Fix the named steps (create the missing templates, correct the reward specs).",
            details={"problems": problems},
        )
    digest = checksum(definition)
    j, v = journeys, journey_versions
    with db.engine.begin() as conn:
        query = sa.select(j.c.version).where(
            j.c.workspace_id == workspace_id, j.c.journey_id == definition.id
        )
        if db.kind == "postgres":  # two publishes of one journey queue up (DuckDB: one writer)
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is not None:
            latest = conn.execute(
                sa.select(v.c.checksum).where(
                    v.c.workspace_id == workspace_id,
                    v.c.journey_id == definition.id,
                    v.c.version == row.version,
                )
            ).scalar_one()
            if latest == digest:
                return PublishResult(definition.id, row.version, False)
        version = 1 if row is None else row.version + 1
        conn.execute(
            v.insert().values(
                workspace_id=workspace_id,
                journey_id=definition.id,
                version=version,
                definition=definition.model_dump(mode="json", by_alias=True),
                checksum=digest,
                published_at=now,
            )
        )
        if row is None:
            conn.execute(
                j.insert().values(
                    workspace_id=workspace_id,
                    journey_id=definition.id,
                    name=definition.name,
                    status="active",
                    version=version,
                    trigger_cursor=now,
                    created_at=now,
                    updated_at=now,
                )
            )
        else:
            conn.execute(
                j.update()
                .where(j.c.workspace_id == workspace_id, j.c.journey_id == definition.id)
                .values(name=definition.name, version=version, updated_at=now)
            )
    return PublishResult(definition.id, version, True)


def set_status(
    db: Database, workspace_id: str, journey_id: str, status: str, *, now: datetime
) -> None:
    """Pause (no new entries, no steps run; due steps wait) or resume a journey."""
    with db.engine.begin() as conn:
        changed = conn.execute(
            journeys.update()
            .where(journeys.c.workspace_id == workspace_id, journeys.c.journey_id == journey_id)
            .values(status=status, updated_at=now)
        ).rowcount
    if not changed:
        raise NotFound(
            f"No journey '{journey_id}' in this workspace.",
            hint="List journeys with 'siyu journeys list'.",
        )


def list_journeys(db: Database, workspace_id: str) -> list[JourneyInfo]:
    j = journeys
    with db.engine.connect() as conn:
        rows = conn.execute(
            sa.select(j.c.journey_id, j.c.name, j.c.status, j.c.version, j.c.updated_at)
            .where(j.c.workspace_id == workspace_id)
            .order_by(j.c.journey_id)
        ).all()
    return [JourneyInfo(*row) for row in rows]


def get_journey(db: Database, workspace_id: str, journey_id: str) -> JourneyInfo:
    for info in list_journeys(db, workspace_id):
        if info.journey_id == journey_id:
            return info
    raise NotFound(
        f"No journey '{journey_id}' in this workspace.",
        hint="List journeys with 'siyu journeys list', or publish it first.",
    )


@lru_cache(maxsize=512)
def _parsed(text: str) -> Definition:
    return from_data(json.loads(text))


def load_version(
    conn: sa.Connection, workspace_id: str, journey_id: str, version: int
) -> Definition:
    """A published version (parsed once per process: versions never change)."""
    v = journey_versions
    doc: Any = conn.execute(
        sa.select(v.c.definition).where(
            v.c.workspace_id == workspace_id, v.c.journey_id == journey_id, v.c.version == version
        )
    ).scalar_one_or_none()
    if doc is None:
        raise NotFound(f"Journey '{journey_id}' has no version {version}.")
    if isinstance(doc, str):
        doc = json.loads(doc)
    return _parsed(json.dumps(doc, sort_keys=True))
