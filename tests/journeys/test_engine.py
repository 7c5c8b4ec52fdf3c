"""The engine on both databases: triggers, steps, re-entry, goals and exits, versions."""

from __future__ import annotations

import json

from siyu.runtime import Runtime
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
    step_runs,
    track,
)

TRAITS = """
id: vip-mark
name: Mark big carts
trigger:
  event: {name: Product Added, where: {category: [shoes, bags]}}
entry: {policy: once}
steps:
  - id: pause
    wait: {hours: 1}
  - id: is_de
    branch: {if: {attribute: country, op: eq, value: DE}, else: other}
  - id: mark_de
    set_trait: {name: segment_hint, value: de_cart}
  - id: done
    exit: true
  - id: other
    set_tag: {tag: cart_lover}
"""


def traits_of(rt: Runtime, user: str) -> dict[str, object]:
    (value,) = rows(rt, "SELECT traits FROM customers WHERE user_id = :u", u=user)[0]
    if value is None:
        return {}
    return value if isinstance(value, dict) else json.loads(value)


def test_event_trigger_wait_branch_and_traits(rt: Runtime) -> None:
    publish_yaml(rt, TRAITS)
    ingest(
        rt,
        [
            identify("anna", T0, country="DE"),
            identify("bob", T0, country="US"),
            identify("cleo", T0, country="DE"),
            track("anna", "Product Added", T0, category="shoes"),
            track("bob", "Product Added", T0, category="bags"),
            track("cleo", "Product Added", T0, category="books"),  # filtered out
        ],
        at=T0 + MIN,
    )
    report = run(rt, T0 + 2 * MIN)
    assert report.entered == 2
    assert enrollments(rt, "vip-mark") == {"anna": ("active", None), "bob": ("active", None)}
    runs = step_runs(rt, "vip-mark")
    assert runs[("anna", "pause")] == ("done", None)
    # The wait is over one hour after it started, not before.
    assert ("anna", "is_de") in runs
    assert runs[("anna", "is_de")][0] == "due"
    run(rt, T0 + 30 * MIN)
    assert step_runs(rt, "vip-mark")[("anna", "is_de")][0] == "due"

    run(rt, T0 + 2 * MIN + HOUR)
    runs = step_runs(rt, "vip-mark")
    assert runs[("anna", "is_de")] == ("done", "then")
    assert runs[("bob", "is_de")] == ("done", "else")
    assert ("bob", "mark_de") not in runs
    assert ("anna", "other") not in runs
    assert enrollments(rt, "vip-mark") == {"anna": ("exited", None), "bob": ("completed", None)}
    assert traits_of(rt, "anna")["segment_hint"] == "de_cart"
    assert traits_of(rt, "bob")["journey_tags"] == {"cart_lover": True}

    # "once": a second qualifying event does not enroll anyone again.
    ingest(rt, [track("anna", "Product Added", T0 + DAY, category="shoes")], at=T0 + DAY)
    assert run(rt, T0 + DAY + MIN).entered == 0
    assert len(rows(rt, "SELECT * FROM journey_enrollments")) == 2


CART = """
id: cart
name: Three add-to-carts without an order
trigger: {event: {name: Product Added}}
entry: {policy: every, days: 7}
goal: {event: Order Completed}
exit_on: [{event: Unsubscribed}]
steps:
  - id: three
    wait_for: {event: Product Added, count: 3, timeout: {hours: 24}, on_timeout: exit}
  - id: pause
    wait: {hours: 2}
  - id: mark
    set_trait: {name: cart_reminded, value: true}
"""


def test_wait_for_counts_goal_exits_and_reentry(rt: Runtime) -> None:
    publish_yaml(rt, CART)
    ingest(
        rt,
        [
            *(track("ann", "Product Added", T0 + i * MIN, sku=str(i)) for i in range(3)),
            track("bea", "Product Added", T0),
            *(track("cat", "Product Added", T0 + i * MIN, sku=str(i)) for i in range(3)),
            *(track("dan", "Product Added", T0 + i * MIN, sku=str(i)) for i in range(3)),
        ],
        at=T0 + 5 * MIN,
    )
    run(rt, T0 + 6 * MIN)
    runs = step_runs(rt, "cart")
    # The trigger event counts: three add-to-carts satisfy the wait at once; bea waits.
    assert runs[("ann", "three")] == ("done", "matched")
    assert runs[("bea", "three")][0] == "waiting"
    # cat orders, dan unsubscribes: the goal and the exit end their enrollments, and their
    # pending step runs are cancelled, so nothing further happens to them.
    ingest(
        rt,
        [
            track("cat", "Order Completed", T0 + 30 * MIN, order_id="o1", total=10, currency="EUR"),
            track("dan", "Unsubscribed", T0 + 30 * MIN),
        ],
        at=T0 + 31 * MIN,
    )
    run(rt, T0 + 32 * MIN)
    states = enrollments(rt, "cart")
    assert states["cat"][0] == "goal"
    assert states["dan"][0] == "exited"
    assert step_runs(rt, "cart")[("cat", "mark")][0] == "cancelled"

    run(rt, T0 + 6 * MIN + 2 * HOUR)
    assert enrollments(rt, "cart")["ann"][0] == "completed"
    assert step_runs(rt, "cart")[("ann", "mark")] == ("done", None)
    assert step_runs(rt, "cart")[("cat", "mark")][0] == "cancelled"
    assert "cart_reminded" not in traits_of(rt, "cat")

    # bea never adds three: the wait times out after 24 h and she leaves the journey.
    run(rt, T0 + 6 * MIN + DAY)
    assert step_runs(rt, "cart")[("bea", "three")] == ("done", "timeout")
    assert enrollments(rt, "cart")["bea"][0] == "exited"

    # At most every 7 days: ann's add-to-cart on day 3 does not enroll her; on day 8 it does.
    ingest(rt, [track("ann", "Product Added", T0 + 3 * DAY)], at=T0 + 3 * DAY)
    assert run(rt, T0 + 3 * DAY + MIN).entered == 0
    ingest(rt, [track("ann", "Product Added", T0 + 8 * DAY)], at=T0 + 8 * DAY)
    assert run(rt, T0 + 8 * DAY + MIN).entered == 1
    (count,) = rows(
        rt,
        "SELECT count(*) FROM journey_enrollments e JOIN customers c "
        "ON c.customer_id = e.customer_id WHERE c.user_id = 'ann'",
    )[0]
    assert count == 2


SPLIT = """
id: ab
name: A/B with holdout
trigger: {event: {name: Signed Up}}
steps:
  - id: test
    split:
      holdout: 20
      variants: [{name: A, weight: 1}, {name: B, weight: 1, goto: b}]
  - id: a
    set_trait: {name: got, value: A}
  - id: stop
    exit: true
  - id: b
    set_trait: {name: got, value: B}
"""


def test_split_is_deterministic_with_holdout(rt: Runtime) -> None:
    publish_yaml(rt, SPLIT)
    users = [f"u{i:03d}" for i in range(200)]
    ingest(rt, [track(u, "Signed Up", T0) for u in users], at=T0 + MIN)
    run(rt, T0 + 2 * MIN)
    states = enrollments(rt, "ab")
    groups = {v for _, v in states.values()}
    assert groups == {"A", "B", "holdout"}
    share = {g: sum(1 for _, v in states.values() if v == g) / len(users) for g in groups}
    # Enrollment ids are random, so the shares vary run to run: bounds at more than 4 standard
    # deviations of a binomial(200, p) keep this from failing by chance (about 1 in 30,000).
    assert 0.08 < share["holdout"] < 0.33
    assert 0.25 < share["A"] < 0.55
    for user, (state, variant) in states.items():
        got = traits_of(rt, user).get("got")
        assert got == (None if variant == "holdout" else variant)
        assert state == ("completed" if variant in ("holdout", "B") else "exited")
    # The group is a function of the enrollment: recomputing gives the same answer.
    from siyu.journeys.steps import bucket

    ids = rows(rt, "SELECT enrollment_id, variant FROM journey_enrollments")
    for enrollment_id, variant in ids:
        assert (bucket(enrollment_id, "test") < 20) == (variant == "holdout")


LOCAL = """
id: wednesday
name: Wednesday 20:00 local
trigger: {event: {name: Signed Up}}
steps:
  - id: wed
    wait_until: {time: "20:00", weekdays: [wed]}
  - id: mark
    set_trait: {name: wed, value: true}
"""


def test_wait_until_local_time_per_zone(rt: Runtime) -> None:
    publish_yaml(rt, LOCAL)
    ingest(
        rt,
        [
            identify("tokyo", T0, timezone="Asia/Tokyo"),
            identify("berlin", T0, country="DE"),  # no zone: the country's
            identify("nowhere", T0),  # neither: the workspace region's (US -> New York)
            *(track(u, "Signed Up", T0) for u in ("tokyo", "berlin", "nowhere")),
        ],
        at=T0 + MIN,
    )
    run(rt, T0 + 2 * MIN)
    due = dict(
        rows(
            rt,
            "SELECT c.user_id, r.due_at FROM journey_step_runs r JOIN customers c "
            "ON c.customer_id = r.customer_id WHERE r.step_id = 'mark'",
        )
    )
    from datetime import datetime

    assert due["tokyo"] == datetime(2026, 3, 4, 11, 0)  # Wed 20:00 JST
    assert due["berlin"] == datetime(2026, 3, 4, 19, 0)  # Wed 20:00 CET
    assert due["nowhere"] == datetime(2026, 3, 5, 1, 0)  # Wed 20:00 EST


def test_versions_keep_running_enrollments(rt: Runtime) -> None:
    v1 = publish_yaml(rt, LOCAL)
    assert (v1.version, v1.created) == (1, True)
    assert publish_yaml(rt, LOCAL).created is False  # same definition: no new version
    ingest(rt, [track("early", "Signed Up", T0)], at=T0 + MIN)
    run(rt, T0 + 2 * MIN)
    v2 = publish_yaml(rt, LOCAL.replace('"20:00"', '"09:00"').replace("[wed]", "[thu]"), T0 + HOUR)
    assert v2.version == 2
    ingest(rt, [track("late", "Signed Up", T0 + HOUR)], at=T0 + HOUR + MIN)
    run(rt, T0 + HOUR + 2 * MIN)
    found = dict(
        rows(
            rt,
            "SELECT c.user_id, e.version FROM journey_enrollments e "
            "JOIN customers c ON c.customer_id = e.customer_id",
        )
    )
    assert found == {"early": 1, "late": 2}
