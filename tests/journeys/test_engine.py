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
    assert ("anna", "is_de") in runs and runs[("anna", "is_de")][0] == "due"
    run(rt, T0 + 30 * MIN)
    assert step_runs(rt, "vip-mark")[("anna", "is_de")][0] == "due"

    run(rt, T0 + 2 * MIN + HOUR)
    runs = step_runs(rt, "vip-mark")
    assert runs[("anna", "is_de")] == ("done", "then")
    assert runs[("bob", "is_de")] == ("done", "else")
    assert ("bob", "mark_de") not in runs and ("anna", "other") not in runs
    assert enrollments(rt, "vip-mark") == {"anna": ("exited", None), "bob": ("completed", None)}
    assert traits_of(rt, "anna")["segment_hint"] == "de_cart"
    assert traits_of(rt, "bob")["journey_tags"] == {"cart_lover": True}

    # "once": a second qualifying event does not enroll anyone again.
    ingest(rt, [track("anna", "Product Added", T0 + DAY, category="shoes")], at=T0 + DAY)
    assert run(rt, T0 + DAY + MIN).entered == 0
    assert len(rows(rt, "SELECT * FROM journey_enrollments")) == 2
