"""The built-in catalogue and tagging runs, on DuckDB and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from siyu.compute import tables
from siyu.errors import Conflict, InvalidInput
from siyu.runtime import Runtime
from siyu.segments import RfmConfig, TierConfig, run_segments, segments_expr, tagging
from siyu.segments.attributes import tag_schema
from siyu.segments.catalogue import builtin_tags
from siyu.segments.lang import validate
from siyu.segments.run import compute_all
from siyu.segments.tagging import add_tag, all_tags, explain_tag, run_tags, tags_expr
from tests.segments.test_tiers_rfm import AS_OF, buy, view


def test_catalogue_has_200_valid_bilingual_tags() -> None:
    tags = builtin_tags()
    assert len(tags) >= 200
    assert len({t.tag_id for t in tags}) == len(tags)
    schema = tag_schema()
    for tag in tags:
        validate(tag.rule, schema)
        assert tag.name_en
        assert tag.name_zh
        assert tag.description
    families = {t.family for t in tags}
    assert {
        "demographics",
        "lifecycle",
        "rfm",
        "purchases",
        "categories",
        "engagement",
        "price_sensitivity",
        "reachability",
    } <= families


def _members(rt: Runtime, tag_id: str) -> set[str]:
    with rt.db.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT c.user_id FROM customer_tags t JOIN customers c "
                "ON c.customer_id = t.customer_id WHERE t.tag_id = :tag"
            ),
            {"tag": tag_id},
        ).all()
    return {r[0] for r in rows}


def test_run_stores_members_and_changes(rt: Runtime) -> None:
    baby_views = [
        {**view("mum", d, i), "properties": {"category": "baby"}} for i, d in enumerate((1, 2, 3))
    ]
    rt.pipeline().ingest(
        [
            *baby_views,
            {**view("dad", 1), "properties": {"category": "baby"}},
            view("solo", 400),
            buy("solo", 40, 30),
            buy("solo", 20, 30, 1),
        ]
    )
    ws = rt.workspace()
    first = run_tags(rt.db, ws, as_of=AS_OF)
    assert first.added == first.memberships
    assert _members(rt, "browses_baby") == {"mum"}
    assert _members(rt, "repeat_buyer") == {"solo"}
    assert _members(rt, "never_bought") == {"mum", "dad"}
    assert "solo" in _members(rt, "bought_last_30d")
    again = run_tags(rt.db, ws, as_of=AS_OF)
    assert (again.added, again.removed) == (0, 0)
    later = run_tags(rt.db, ws, as_of=AS_OF + timedelta(days=40))
    assert "mum" not in _members(rt, "browses_baby")
    assert later.removed > 0
    with rt.db.engine.connect() as conn:
        changes = (
            conn.execute(
                sa.text(
                    "SELECT change FROM tag_history WHERE tag_id = 'browses_baby' "
                    "ORDER BY changed_at"
                )
            )
            .scalars()
            .all()
        )
    assert changes == ["added", "removed"]


def test_explain_and_workspace_tags(rt: Runtime) -> None:
    rt.pipeline().ingest([view("u", 1), view("u", 2, 1)])
    ws = rt.workspace()
    add_tag(rt.db, ws, "two_views", 'count(event == "Product Viewed", last 7d) >= 2', name_en="2")
    with pytest.raises(Conflict):
        add_tag(rt.db, ws, "two_views", "orders_total > 0", name_en="again")
    with pytest.raises(InvalidInput, match="1:"):
        add_tag(rt.db, ws, "broken", "orders_total >", name_en="x")
    run_tags(rt.db, ws, as_of=AS_OF)
    assert _members(rt, "two_views") == {"u"}
    with rt.db.engine.connect() as conn:
        customer = conn.execute(sa.text("SELECT customer_id FROM customers")).scalar_one()
    why = explain_tag(rt.db, ws, customer, "two_views", as_of=AS_OF)
    assert why.matched
    assert any("= 2" in line for line in why.lines())
    lacks = explain_tag(rt.db, ws, customer, "repeat_buyer", as_of=AS_OF)
    assert not lacks.matched


def _stored(rt: Runtime) -> tuple[set[tuple[str, str]], dict[str, int]]:
    with rt.db.engine.connect() as conn:
        pairs = {
            (r[0], r[1])
            for r in conn.execute(sa.text("SELECT tag_id, customer_id FROM customer_tags"))
        }
        history = dict(
            conn.execute(sa.text("SELECT change, count(*) FROM tag_history GROUP BY change")).all()
        )
    return pairs, {str(k): int(v) for k, v in history.items()}


def test_members_are_written_a_group_of_tags_at_a_time(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunked writes (one transaction per group of tags) store what one group would."""
    rt.pipeline().ingest(
        [
            *[
                {**view("mum", d, i), "properties": {"category": "baby"}}
                for i, d in enumerate((1, 2, 3))
            ],
            view("dad", 1),
            buy("solo", 40, 30),
            buy("solo", 20, 30, 1),
        ]
    )
    ws = rt.workspace()
    monkeypatch.setattr(tagging, "CHUNK_PAIRS", 10**9)
    whole = run_tags(rt.db, ws, as_of=AS_OF)
    expected, _ = _stored(rt)
    later = AS_OF + timedelta(days=40)
    run_tags(rt.db, ws, as_of=later)
    expected_later, history_whole = _stored(rt)
    with rt.db.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM customer_tags"))
        conn.execute(sa.text("DELETE FROM tag_history"))

    monkeypatch.setattr(tagging, "CHUNK_PAIRS", 1)  # every tag in its own transaction
    chunked = run_tags(rt.db, ws, as_of=AS_OF)
    assert (chunked.added, chunked.memberships, chunked.counts) == (
        whole.added,
        whole.memberships,
        whole.counts,
    )
    assert _stored(rt)[0] == expected
    second = run_tags(rt.db, ws, as_of=later)
    assert second.removed > 0
    assert _stored(rt) == (expected_later, history_whole)


def test_members_of_a_tag_no_longer_defined_are_removed(rt: Runtime) -> None:
    rt.pipeline().ingest([view("u", 1)])
    ws = rt.workspace()
    run_tags(rt.db, ws, as_of=AS_OF)
    with rt.db.engine.begin() as conn:
        customer = conn.execute(sa.text("SELECT customer_id FROM customers")).scalar_one()
        conn.execute(
            sa.text(
                "INSERT INTO customer_tags (workspace_id, tag_id, customer_id, since) "
                "VALUES (:ws, 'retired_tag', :c, :at)"
            ),
            {"ws": ws.workspace_id, "c": customer, "at": AS_OF},
        )
    report = run_tags(rt.db, ws, as_of=AS_OF)
    assert report.removed == 1
    assert _members(rt, "retired_tag") == set()
    with rt.db.engine.connect() as conn:
        change = conn.execute(
            sa.text("SELECT change FROM tag_history WHERE tag_id = 'retired_tag'")
        ).scalar_one()
    assert change == "removed"


def test_compute_all_equals_the_separate_queries(rt: Runtime) -> None:
    """Features and tiers computed once (temporary tables) give what the stored path gives."""
    rt.pipeline().ingest(
        [
            {**view("mum", 1, 0), "properties": {"category": "baby"}},
            {**view("mum", 2, 1), "properties": {"category": "baby"}},
            view("dad", 100),
            buy("solo", 40, 30),
            buy("solo", 20, 300, 1),
        ]
    )
    ws = rt.workspace()
    run_segments(rt.db, ws, as_of=AS_OF)  # the stored tiers the separate tag query reads
    t = tables(rt.db, ws.workspace_id)
    tags = all_tags(rt.db, ws.workspace_id)
    computed = compute_all(t, AS_OF, tags)
    segments = segments_expr(rt.db, ws.workspace_id, AS_OF, TierConfig(), RfmConfig())
    wide = tags_expr(t, tags, AS_OF)
    assert computed.segments.sort_by("customer_id").equals(
        segments.to_pyarrow().sort_by("customer_id")
    )
    assert computed.tags.sort_by("customer_id").equals(wide.to_pyarrow().sort_by("customer_id"))
    apparel = compute_all(t, AS_OF, tags[:3], TierConfig(model="apparel"))
    assert set(apparel.segments["tier"].to_pylist()) <= {
        "diamond",
        "gold",
        "silver",
        "churn_warning",
        "unclassified",
    }
