"""One-ID merges re-key enrollments: the person is never in two running copies of a journey."""

from __future__ import annotations

import sqlalchemy as sa

from siyu.journeys.merge import follow_merge
from siyu.registry import registry
from siyu.runtime import Runtime
from tests.journeys.helpers import DAY, MIN, T0, ingest, publish_yaml, rows, run, track

WAITING = """
id: nurture
name: n
trigger: {event: {name: Signed Up}}
steps:
  - id: later
    wait: {days: 3}
  - id: mark
    set_trait: {name: hit, value: true}
"""


def test_merge_follower_rekeys_and_ends_the_duplicate(rt: Runtime) -> None:
    assert "journeys" in registry.merge_followers.names()
    publish_yaml(rt, WAITING)
    ingest(rt, [track(u, "Signed Up", T0) for u in ("old", "new", "solo")], at=T0 + MIN)
    run(rt, T0 + 2 * MIN)
    ids = dict(rows(rt, "SELECT user_id, customer_id FROM customers"))
    ws = rt.workspace().workspace_id
    with rt.db.engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TEMP TABLE moves (old_customer_id VARCHAR(40), new_customer_id VARCHAR(40))"
        )
        conn.execute(
            sa.text("INSERT INTO moves VALUES (:o, :n)"),
            [{"o": ids["old"], "n": ids["new"]}, {"o": ids["solo"], "n": ids["new"] + "x"}],
        )
        assert follow_merge(conn, ws, "moves") == 2
        conn.exec_driver_sql("DROP TABLE moves")
    found = rows(
        rt,
        "SELECT customer_id, state, active_key, exit_reason FROM journey_enrollments "
        "ORDER BY customer_id, state",
    )
    by_customer: dict[str, list[tuple[str, str | None]]] = {}
    for customer, state, active, _reason in found:
        by_customer.setdefault(customer, []).append((state, active))
    # The survivor keeps one running enrollment; the absorbed one ended; solo just moved.
    assert sorted(by_customer[ids["new"]]) == [("active", ids["new"]), ("exited", None)]
    assert by_customer[ids["new"] + "x"] == [("active", ids["new"] + "x")]
    cancelled = rows(rt, "SELECT count(*) FROM journey_step_runs WHERE state = 'cancelled'")
    assert cancelled[0][0] == 1
    run(rt, T0 + 4 * DAY)
    done = rows(
        rt, "SELECT customer_id FROM journey_step_runs WHERE step_id = 'mark' AND state = 'done'"
    )
    assert sorted(r[0] for r in done) == sorted([ids["new"], ids["new"] + "x"])
