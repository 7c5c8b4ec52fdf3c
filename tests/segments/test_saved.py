"""Saved segments on DuckDB and PostgreSQL: references, live count, versions, history, export."""

from __future__ import annotations

import csv
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from siyu.errors import Conflict, InvalidInput, NotFound
from siyu.runtime import Runtime
from siyu.segments import run_segments
from siyu.segments.export import export_segment
from siyu.segments.lang import TagError
from siyu.segments.membership import refresh_segments
from siyu.segments.saved import (
    count,
    create_segment,
    delete_segment,
    get_segment,
    list_segments,
    update_segment,
)
from siyu.segments.tagging import run_tags
from tests.segments.test_tiers_rfm import AS_OF, at, buy, view


def consent(user: str, days_ago: float, channel: str, status: str) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Consent Updated",
        "userId": user,
        "timestamp": at(days_ago),
        "messageId": f"c-{user}-{days_ago}-{channel}-{status}",
        "properties": {"purpose": "marketing", "channel": channel, "status": status},
    }


def identify(user: str, email: str) -> dict[str, Any]:
    return {
        "type": "identify",
        "userId": user,
        "timestamp": at(300),
        "messageId": f"i-{user}",
        "traits": {"email": email, "country": "ID" if user.startswith("id") else "DE"},
    }


def loyal_buyer(user: str) -> list[dict[str, Any]]:
    """Four purchases of 100 in 365 days: loyal when the workspace AOV is lower."""
    return [view(user, 300), *[buy(user, d, 100) for d in (10, 50, 100, 200)]]


def world() -> list[dict[str, Any]]:
    return [
        identify("id_loyal_wa", "a@example.com"),
        identify("id_loyal", "b@example.com"),
        identify("de_small", "c@example.com"),
        *loyal_buyer("id_loyal_wa"),
        *loyal_buyer("id_loyal"),
        view("de_small", 300),
        buy("de_small", 20, 10),
        consent("id_loyal_wa", 5, "whatsapp", "granted"),
        consent("id_loyal", 20, "whatsapp", "granted"),
        consent("id_loyal", 2, "all", "withdrawn"),  # the latest decision wins
        consent("de_small", 5, "email", "granted"),
    ]


def users(rt: Runtime, customer_ids: set[str]) -> set[str]:
    with rt.db.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT customer_id, user_id FROM customers").all()
        by_id: dict[str, str] = {r[0]: r[1] for r in rows}
    return {by_id[c] for c in customer_ids}


def members(rt: Runtime, segment_id: str) -> set[str]:
    with rt.db.engine.connect() as conn:
        ids = conn.execute(
            sa.text("SELECT customer_id FROM segment_members WHERE segment_id = :s"),
            {"s": segment_id},
        ).scalars()
        return users(rt, set(ids))


@pytest.fixture
def loaded(rt: Runtime) -> Runtime:
    rt.pipeline().ingest(world())
    ws = rt.workspace()
    run_segments(rt.db, ws, as_of=AS_OF)
    run_tags(rt.db, ws, as_of=AS_OF)
    return rt


def test_references_combine_tags_tiers_reachability_and_attributes(loaded: Runtime) -> None:
    ws = loaded.workspace().workspace_id
    db = loaded.db

    def n(expression: str) -> int:
        return count(db, ws, expression, as_of=AS_OF).members

    assert n("tier:loyal") == 2
    assert n("reachable:whatsapp") == 1  # id_loyal withdrew everything later
    assert n("tier:loyal and reachable:whatsapp") == 1
    assert n('tag:repeat_buyer and country == "ID"') == 2
    assert n("tag:repeat_buyer and spend_365 > 300") == 2  # computed attribute: full table
    assert n("not tag:repeat_buyer") == 1
    assert n("rfm:champions or rfm:lost or tier:apparel-gold") >= 0
    result = count(db, ws, "tier:loyal   and reachable:email", as_of=AS_OF)
    assert (result.members, result.customers) == (0, 3)
    assert result.expression == "tier:loyal and reachable:email"


@pytest.mark.parametrize(
    ("expression", "message", "column"),
    [
        ("tier:loyal and", "expected", 15),
        ("tier:sleepy", "unknown tier 'sleepy'", 1),
        ("tag:nope or tier:loyal", "unknown tag 'nope'", 1),
        ("tier:loyal and reachable:pigeon", "unknown reachable 'pigeon'", 16),
        ("audience:x", "unknown reference kind 'audience:'", 1),
        ("segment:missing", "unknown segment 'missing'", 1),
    ],
)
def test_errors_point_at_the_position(
    loaded: Runtime, expression: str, message: str, column: int
) -> None:
    with pytest.raises(TagError, match=message) as err:
        count(loaded.db, loaded.workspace().workspace_id, expression, as_of=AS_OF)
    assert err.value.column == column


def test_definitions_are_versioned_and_checked(loaded: Runtime) -> None:
    db, ws = loaded.db, loaded.workspace()
    seg = create_segment(db, ws, "loyal_wa", "tier:loyal and reachable:whatsapp", name="Loyal WA")
    assert (seg.version, seg.name) == (1, "Loyal WA")
    with pytest.raises(Conflict):
        create_segment(db, ws, "loyal_wa", "tier:loyal")
    with pytest.raises(InvalidInput, match="not valid"):
        create_segment(db, ws, "Bad Id", "tier:loyal")
    with pytest.raises(TagError):
        create_segment(db, ws, "broken", "tier:loyal and (")
    create_segment(db, ws, "outer", "segment:loyal_wa or tag:one_time_buyer")
    with pytest.raises(TagError, match="refers back to itself"):
        update_segment(db, ws, "loyal_wa", expression="segment:outer")
    updated = update_segment(db, ws, "loyal_wa", expression="tier:loyal")
    assert updated.version == 2
    assert updated.updated_at >= seg.updated_at
    assert get_segment(db, ws.workspace_id, "loyal_wa").expression == "tier:loyal"
    with pytest.raises(Conflict, match="used by outer"):
        delete_segment(db, ws, "loyal_wa")
    delete_segment(db, ws, "outer")
    assert [s.segment_id for s in list_segments(db, ws.workspace_id)] == ["loyal_wa"]
    with pytest.raises(NotFound):
        get_segment(db, ws.workspace_id, "outer")


def test_refresh_records_entries_and_exits(loaded: Runtime) -> None:
    db, ws = loaded.db, loaded.workspace()
    create_segment(db, ws, "loyal_wa", "tier:loyal and reachable:whatsapp")
    create_segment(db, ws, "id_buyers", 'segment:loyal_wa or country == "DE"')
    first = refresh_segments(db, ws, as_of=AS_OF)
    assert first.members == {"loyal_wa": 1, "id_buyers": 2}
    assert members(loaded, "loyal_wa") == {"id_loyal_wa"}
    assert members(loaded, "id_buyers") == {"id_loyal_wa", "de_small"}
    again = refresh_segments(db, ws, as_of=AS_OF)
    assert (again.entered, again.left) == ({}, {})
    # id_loyal_wa withdraws WhatsApp consent: leaves loyal_wa (and id_buyers through it).
    loaded.pipeline().ingest([consent("id_loyal_wa", 1, "whatsapp", "denied")])
    later = refresh_segments(db, ws, as_of=AS_OF)
    assert later.left == {"loyal_wa": 1, "id_buyers": 1}
    assert members(loaded, "loyal_wa") == set()
    with loaded.db.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT h.run_id, h.change FROM segment_history h "
                "WHERE h.segment_id = 'loyal_wa' ORDER BY h.changed_at, h.change"
            )
        ).all()
        snapshots = conn.execute(
            sa.text(
                'SELECT members, entered, "left" FROM segment_snapshots '
                "WHERE segment_id = 'loyal_wa' ORDER BY members DESC, entered DESC"
            )
        ).all()
    assert [(r[0], r[1]) for r in rows] == [(first.run_id, "entered"), (later.run_id, "left")]
    assert sorted(tuple(s) for s in snapshots) == [(0, 0, 1), (1, 0, 0), (1, 1, 0)]


def test_export_csv_and_parquet(loaded: Runtime, tmp_path: Path) -> None:
    db, ws = loaded.db, loaded.workspace()
    create_segment(db, ws, "loyal", "tier:loyal")
    seen: list[tuple[int, int]] = []
    report = export_segment(
        db,
        ws.workspace_id,
        "loyal",
        tmp_path / "loyal.csv",
        as_of=AS_OF,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert report.rows == 2
    assert seen[0] == (0, 2)
    assert seen[-1] == (2, 2)
    with (tmp_path / "loyal.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {r["user_id"] for r in rows} == {"id_loyal_wa", "id_loyal"}
    assert {r["email"] for r in rows} == {"a@example.com", "b@example.com"}
    export_segment(db, ws.workspace_id, "loyal", tmp_path / "loyal.parquet", as_of=AS_OF)
    table = pq.read_table(tmp_path / "loyal.parquet")
    assert sorted(table["user_id"].to_pylist()) == ["id_loyal", "id_loyal_wa"]
    with pytest.raises(InvalidInput, match="format"):
        export_segment(db, ws.workspace_id, "loyal", tmp_path / "loyal.xlsx")
    assert AS_OF - timedelta(days=1) < report.as_of <= AS_OF


def test_cli_create_count_show_export_delete(loaded: Runtime, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from siyu.cli import app

    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, ["segments", *args])
        assert result.exit_code == 0, result.output
        return result.output

    as_of = ["--as-of", AS_OF.isoformat()]
    assert "2 of 3 customers" in run("count", "tier:loyal", *as_of)
    bad = runner.invoke(app, ["segments", "count", "tier:loyal and reachable:fax"])
    assert bad.exit_code == 2
    assert "unknown reachable 'fax'" in bad.output
    assert "^^^^^^^^^^^^^" in bad.output  # the caret under the reference
    assert "Saved loyal v1" in run("create", "loyal", "tier:loyal", "--name", "Loyal")
    assert "Saved loyal v2" in run(
        "create", "loyal", "tier:loyal and reachable:whatsapp", "--replace"
    )
    assert "1 of 3 customers" in run("count", "loyal", *as_of)
    assert "loyal" in run("refresh", *as_of)
    shown = run("show", "loyal")
    assert "version: 2" in shown
    assert "1 members" in shown
    assert "Wrote 1 customers" in run("export", "loyal", str(tmp_path / "x.parquet"), *as_of)
    assert pq.read_table(tmp_path / "x.parquet")["user_id"].to_pylist() == ["id_loyal_wa"]
    assert "Loyal" in run("list")
    assert "Deleted segment loyal" in run("delete", "loyal")
