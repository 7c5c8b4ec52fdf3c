"""A full run gives PostgreSQL's planner statistics before its bulk joins: without them the
planner took every equality filter for one row in 200 and re-pointed the 50k demo's events by
a nested loop that had not finished after 19 minutes (26.6 s with them)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from siyu.config import load_settings
from siyu.identity.graph import resolve_new_events, resolve_workspace
from siyu.runtime import Runtime
from tests.identity.helpers import identify, ingest

GRAPH = ("identities", "identity_links", "identity_anchors")


@pytest.mark.postgres
def test_a_full_run_analyses_the_tables_it_joins(
    pg_schema_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with Runtime(load_settings(database_url=pg_schema_url, env="test")) as rt:
        rt.init()
        ws = rt.workspace().workspace_id
        people = [identify(f"61000001{i:02d}", email=f"p{i}@mail.co", day=1) for i in range(40)]
        ingest(rt, "shopify", people)
        browsers = [identify(anonymous_id=f"b-{i}", email=f"p{i}@mail.co") for i in range(40)]
        ingest(rt, "web", browsers)
        with rt.db.engine.begin() as conn:
            resolve_workspace(conn, ws)
            # Inside the run's own transaction: autovacuum cannot have seen these rows.
            estimated = dict(
                conn.execute(
                    sa.text(
                        "SELECT relname, reltuples FROM pg_class WHERE relnamespace = "
                        "current_schema()::regnamespace AND relname IN :names"
                    ).bindparams(sa.bindparam("names", expanding=True)),
                    {"names": [*GRAPH, "events"]},
                ).all()
            )
            counted = {
                name: conn.execute(sa.text(f"SELECT count(*) FROM {name}")).scalar()
                for name in estimated
            }
    assert estimated == {name: float(n) for name, n in counted.items()}
    assert counted["identity_anchors"] == 80


@pytest.mark.postgres
def test_a_batch_re_points_its_recent_events_without_a_nested_loop(
    pg_schema_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch's events are newer than the statistics (the planner takes them for one row):
    their re-pointing runs with nested loops off, which is restored after the statement."""
    monkeypatch.chdir(tmp_path)
    with Runtime(load_settings(database_url=pg_schema_url, env="test")) as rt:
        rt.init()
        ws = rt.workspace().workspace_id
        ingest(
            rt, "shopify", [identify(f"61000002{i:02d}", email=f"q{i}@mail.co") for i in range(6)]
        )
        ingest(
            rt,
            "web",
            [identify(anonymous_id=f"v-{i}", phone=f"+628131111{i:04d}") for i in range(6)],
        )
        with rt.db.engine.begin() as conn:
            resolve_workspace(conn, ws)
        # New events: each shop customer now gives a visitor's phone (a merge per customer).
        later = [identify(f"61000002{i:02d}", phone=f"+628131111{i:04d}", day=2) for i in range(6)]
        ingest(rt, "shopify", later)
        seen: list[tuple[str, str]] = []

        def record(conn: sa.Connection, cursor: object, statement: str, *_: object) -> None:
            if statement.startswith("UPDATE events") and "received_at >=" in statement:
                raw = conn.connection.driver_connection
                setting = raw.execute("SHOW enable_nestloop").fetchone()[0]  # type: ignore[union-attr]
                seen.append((statement[:40], str(setting)))

        sa.event.listen(rt.db.engine, "before_cursor_execute", record)
        with rt.db.engine.begin() as conn:
            rows = conn.execute(
                sa.text("SELECT message_id, received_at FROM events WHERE timestamp >= :d"),
                {"d": datetime(2025, 1, 2)},
            ).all()
            since = min(r.received_at for r in rows)
            resolve_new_events(conn, ws, [r.message_id for r in rows], received_from=since)
            after = conn.execute(sa.text("SHOW enable_nestloop")).scalar()
            customers = conn.execute(
                sa.text(
                    "SELECT count(DISTINCT customer_id) FROM events WHERE user_id IS NOT NULL "
                    "OR anonymous_id LIKE 'v-%'"
                )
            ).scalar()
        sa.event.remove(rt.db.engine, "before_cursor_execute", record)
    assert seen
    assert all(setting == "off" for _, setting in seen)
    assert after == "on"
    assert customers == 6
