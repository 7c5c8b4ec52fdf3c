"""Each trigger kind, on both databases: history tables, scores and local-time triggers."""

from __future__ import annotations

import sqlalchemy as sa

from siyu.errors import InvalidInput
from siyu.journeys.definition import parse
from siyu.journeys.versions import set_status
from siyu.predict.tables import customer_scores
from siyu.runtime import Runtime
from siyu.segments.tables import segment_history, tag_history, tier_history
from tests.journeys.helpers import (
    DAY,
    HOUR,
    MIN,
    T0,
    enrollments,
    identify,
    ingest,
    publish_yaml,
    rows,
    run,
    track,
)

MARK = """
  - id: mark
    set_trait: {name: hit, value: true}
"""


def ids(rt: Runtime) -> dict[str, str]:
    return dict(rows(rt, "SELECT user_id, customer_id FROM customers"))


def insert(rt: Runtime, table: sa.Table, values: list[dict[str, object]]) -> None:
    ws = rt.workspace().workspace_id
    with rt.db.engine.begin() as conn:
        conn.execute(table.insert(), [{"workspace_id": ws, **v} for v in values])


def test_tier_tag_and_segment_history_triggers(rt: Runtime) -> None:
    publish_yaml(rt, "id: churned\nname: c\ntrigger: {tier: {enter: Churned}}\nsteps:" + MARK)
    publish_yaml(rt, "id: left-loyal\nname: l\ntrigger: {tier: {leave: Loyal}}\nsteps:" + MARK)
    publish_yaml(rt, "id: vip\nname: v\ntrigger: {tag: {tag: vip}}\nsteps:" + MARK)
    publish_yaml(rt, "id: seg\nname: s\ntrigger: {segment: {id: big, change: left}}\nsteps:" + MARK)
    ingest(rt, [identify(u, T0) for u in ("a", "b", "c", "d")], at=T0)
    c = ids(rt)
    at = T0 + MIN
    insert(
        rt,
        tier_history,
        [
            {
                "run_id": "r1",
                "model": "default",
                "customer_id": c["a"],
                "from_tier": "Loyal",
                "to_tier": "Churned",
                "changed_at": at,
            },
            {
                "run_id": "r1",
                "model": "default",
                "customer_id": c["b"],
                "from_tier": "Loyal",
                "to_tier": "Loyal",
                "changed_at": at,
            },
            {
                "run_id": "r1",
                "model": "apparel",
                "customer_id": c["c"],
                "from_tier": None,
                "to_tier": "Churned",
                "changed_at": at,
            },
        ],
    )
    insert(
        rt,
        tag_history,
        [
            {
                "run_id": "t1",
                "tag_id": "vip",
                "customer_id": c["c"],
                "change": "added",
                "changed_at": at,
            },
            {
                "run_id": "t1",
                "tag_id": "vip",
                "customer_id": c["d"],
                "change": "removed",
                "changed_at": at,
            },
        ],
    )
    insert(
        rt,
        segment_history,
        [
            {
                "run_id": "s1",
                "segment_id": "big",
                "customer_id": c["d"],
                "change": "left",
                "changed_at": at,
            },
        ],
    )
    run(rt, T0 + 2 * MIN)
    assert set(enrollments(rt, "churned")) == {"a"}
    assert set(enrollments(rt, "left-loyal")) == {"a"}
    assert set(enrollments(rt, "vip")) == {"c"}
    assert set(enrollments(rt, "seg")) == {"d"}


def test_churn_risk_threshold(rt: Runtime) -> None:
    publish_yaml(rt, "id: risk\nname: r\ntrigger: {churn_risk: {above: 70}}\nsteps:" + MARK)
    ingest(rt, [identify(u, T0) for u in ("low", "high")], at=T0)
    c = ids(rt)
    insert(
        rt,
        customer_scores,
        [
            {
                "customer_id": c[u],
                "churn_risk": risk,
                "churn_model_version": "rules-1",
                "churn_scored_at": T0 + MIN,
            }
            for u, risk in (("low", 40), ("high", 85))
        ],
    )
    run(rt, T0 + 2 * MIN)
    assert set(enrollments(rt, "risk")) == {"high"}


BIRTHDAY = """
id: birthday
name: Birthday
trigger: {date: {attribute: birthday}}
entry: {policy: every, days: 300}
steps:
  - id: mark
    set_trait: {name: hit, value: true}
"""


def test_birthday_on_the_local_date(rt: Runtime) -> None:
    publish_yaml(rt, BIRTHDAY)
    # At T0 + 16 h (3 March 01:00 UTC) it is 3 March in Tokyo, still 2 March in New York.
    ingest(
        rt,
        [
            identify("tokyo", T0, timezone="Asia/Tokyo", birthday="1990-03-03"),
            identify("ny", T0, timezone="America/New_York", birthday="1985-03-03"),
            identify("ny2", T0, timezone="America/New_York", birthday="1985-03-02"),
        ],
        at=T0,
    )
    run(rt, T0 + 16 * HOUR)
    assert set(enrollments(rt, "birthday")) == {"tokyo", "ny2"}
    run(rt, T0 + 21 * HOUR)  # 3 March in New York now; Tokyo is already enrolled this year
    assert set(enrollments(rt, "birthday")) == {"tokyo", "ny", "ny2"}
    assert len(rows(rt, "SELECT * FROM journey_enrollments")) == 3


def test_schedule_and_first_order(rt: Runtime) -> None:
    publish_yaml(
        rt,
        "id: weekly\nname: w\ntrigger: {schedule: {at: '10:00', weekdays: [mon]}}\n"
        "entry: {policy: every, days: 7}\nsteps:" + MARK,
    )
    publish_yaml(
        rt, "id: d30\nname: d\ntrigger: {date: {attribute: first_order, days: 30}}\nsteps:" + MARK
    )
    ingest(
        rt,
        [
            identify("berlin", T0, timezone="Europe/Berlin"),
            identify("la", T0, timezone="America/Los_Angeles"),
            track(
                "buyer", "Order Completed", T0 - 30 * DAY, order_id="o1", total=20, currency="USD"
            ),
        ],
        at=T0,
    )
    run(rt, T0 + MIN)  # 10:01 in Berlin on Monday; 01:01 in Los Angeles
    assert set(enrollments(rt, "weekly")) == {"berlin"}
    run(rt, T0 + 10 * HOUR)  # 11:00 in Los Angeles
    assert set(enrollments(rt, "weekly")) == {"berlin", "la", "buyer"}
    run(rt, T0 + DAY + 2 * HOUR)  # Tuesday: no new occurrence
    assert len(rows(rt, "SELECT * FROM journey_enrollments WHERE journey_id = 'weekly'")) == 3
    assert set(enrollments(rt, "d30")) == {"buyer"}


def test_paused_journey_neither_enrolls_nor_runs(rt: Runtime) -> None:
    publish_yaml(rt, "id: p\nname: p\ntrigger: {event: {name: Signed Up}}\nsteps:" + MARK)
    ws = rt.workspace().workspace_id
    set_status(rt.db, ws, "p", "paused", now=T0)
    ingest(rt, [track("x", "Signed Up", T0)], at=T0 + MIN)
    run(rt, T0 + 2 * MIN)
    assert enrollments(rt, "p") == {}
    set_status(rt.db, ws, "p", "active", now=T0 + HOUR)
    run(rt, T0 + HOUR + MIN)  # the cursor did not move while paused: the event still counts
    assert enrollments(rt, "p") == {"x": ("completed", None)}


def test_validation_errors_point_at_the_step() -> None:
    text = """
id: bad
name: Bad
trigger: {event: {name: Product Added}, tier: {enter: Loyal}}
entry: {policy: every}
steps:
  - id: one
    wait: {hours: 0}
  - id: two
    wait_until: {time: "8pm"}
  - id: three
    branch: {if: {tag: vip}, then: one}
  - id: three
    exit: true
"""
    try:
        parse(text)
    except InvalidInput as exc:
        problems = exc.details["problems"]
    else:
        raise AssertionError("accepted a bad definition")
    joined = "\n".join(problems)
    assert "trigger: Value error" not in joined
    assert any(p.startswith("trigger:") and "exactly one trigger" in p for p in problems)
    assert any(p.startswith("entry:") and "needs 'days'" in p for p in problems)
    assert any(p.startswith("steps[0].wait:") and "above 0" in p for p in problems)
    assert any(p.startswith("steps[1].wait_until.time:") and "HH:MM" in p for p in problems)

    loops = "id: l\nname: l\ntrigger: {event: {name: X}}\nsteps:\n" + (
        "  - id: one\n    wait: {hours: 1}\n"
        "  - id: two\n    branch: {if: {tag: vip}, then: one, else: nowhere}\n"
        "  - id: two\n    exit: true\n"
    )
    try:
        parse(loops)
    except InvalidInput as exc:
        problems = exc.details["problems"]
    else:
        raise AssertionError("accepted a loop")
    assert "steps[2].id: 'two' is already the id of steps[1]" in problems
    assert any(p.startswith("steps[1].branch.then: 'one' is not after") for p in problems)
    assert any(p.startswith("steps[1].branch.else: no step has id 'nowhere'") for p in problems)
