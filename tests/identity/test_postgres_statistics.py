"""A full run gives PostgreSQL's planner statistics before its bulk joins: without them the
planner took every equality filter for one row in 200 and re-pointed the 50k demo's events by
a nested loop that had not finished after 19 minutes (26.6 s with them)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from siyu.config import load_settings
from siyu.identity.graph import resolve_workspace
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
