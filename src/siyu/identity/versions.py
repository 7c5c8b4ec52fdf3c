"""The version of a workspace's stored identity graph (``identity_graph_versions``).

Every run that writes the graph tables stores a new random version in its transaction, so that
a process holding the graph in memory (:mod:`siyu.identity.held`) can tell whether its copy is
still what the database holds: another process's run, a full rebuild, a split and a rolled-back
transaction all leave a version the copy does not have.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import sqlalchemy as sa

from siyu.identity import tables as t


def current_version(conn: sa.Connection, workspace_id: str) -> str | None:
    v = t.identity_graph_versions
    found = conn.execute(sa.select(v.c.version).where(v.c.workspace_id == workspace_id)).scalar()
    return None if found is None else str(found)


def stamp_version(
    conn: sa.Connection, workspace_id: str, expected: str | None = None
) -> str | None:
    """Give the workspace's stored graph a new version (every run that writes it calls this).

    With ``expected`` (the version a held copy matched), the new version is only written if
    the stored one is still ``expected``; None is returned when it was not (another writer
    committed in between: the copy no longer matches and is dropped).
    """
    v = t.identity_graph_versions
    new = secrets.token_hex(16)
    now = datetime.now(UTC).replace(tzinfo=None)
    if expected is not None:
        done = conn.execute(
            v.update()
            .where(v.c.workspace_id == workspace_id, v.c.version == expected)
            .values(version=new, changed_at=now)
        )
        return new if done.rowcount == 1 else None
    conn.execute(v.delete().where(v.c.workspace_id == workspace_id))
    conn.execute(v.insert().values(workspace_id=workspace_id, version=new, changed_at=now))
    return new
