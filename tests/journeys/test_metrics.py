"""Measurement: funnel, sends, clicks, unsubscribes, conversions and revenue in the attribution
window per variant, the A/B z-test and the holdout's lift, checked against counts made here."""

from __future__ import annotations

import math

import pytest

from siyu.journeys.metrics import journey_metrics, two_proportion_test
from siyu.runtime import Runtime
from tests.journeys.helpers import (
    DAY,
    HOUR,
    enrollments,
    identify,
    ingest,
    publish_yaml,
    run,
    track,
)
from tests.journeys.test_send import template

JOURNEY = """
id: ab
name: A/B with holdout
trigger: {event: {name: Signed Up}}
goal: {event: Order Completed, attribution: {days: 3}}
steps:
  - id: test
    split:
      holdout: 20
      variants:
        - {name: a, weight: 50}
        - {name: b, weight: 50}
  - id: offer
    send: {channel: outbox, template: offer, purpose: transactional}
  - id: settle
    wait: {days: 2}
  - id: mark
    set_trait: {name: offered, value: true}
"""
N = 60


def test_two_proportion_test_matches_the_textbook_value() -> None:
    # 30/100 vs 20/100: pooled p 0.25, se = sqrt(0.25 * 0.75 * 0.02) = 0.0612372
    z, p = two_proportion_test(30, 100, 20, 100)
    assert z == pytest.approx(1.632993, abs=1e-6)
    assert p == pytest.approx(0.102470, abs=1e-5)
    assert two_proportion_test(0, 0, 1, 10) == (0.0, 1.0)


def test_metrics_per_variant_against_own_counts(rt: Runtime) -> None:
    from tests.journeys.helpers import T0

    template(rt, "offer", "Hi {{ customer.first_name }}.")
    publish_yaml(rt, JOURNEY, T0)
    users = [f"m{i:02d}" for i in range(N)]
    ingest(
        rt,
        [
            *(identify(u, T0, first_name=u, email=f"{u}@example.com", country="US") for u in users),
            *(track(u, "Signed Up", T0) for u in users),
        ],
        at=T0,
    )
    run(rt, T0 + HOUR)
    variant = {u: v for u, (_, v) in enrollments(rt, "ab").items()}
    assert set(variant.values()) == {"a", "b", "holdout"}

    # Every third customer buys within the window, and so does one holdout customer whatever
    # the (random-id based) split gave, so the holdout's rate is never 0 and its lift is defined;
    # every fifth customer (not a buyer) buys after the window.
    holdout_buyer = next(u for u in users if variant[u] == "holdout")
    buyers = [u for i, u in enumerate(users) if i % 3 == 0 or u == holdout_buyer]
    late = [u for i, u in enumerate(users) if i % 5 == 0 and u not in buyers]
    amount = {u: 10.0 + i for i, u in enumerate(users)}
    clickers = users[:7]
    unsubscribers = users[7:9]
    ingest(
        rt,
        [
            *(
                track(u, "Order Completed", T0 + DAY, order_id=f"o-{u}", total=amount[u],
                      currency="USD")
                for u in buyers
            ),
            *(
                track(u, "Order Completed", T0 + 4 * DAY, order_id=f"late-{u}", total=99,
                      currency="USD")
                for u in late
            ),
            *(track(u, "Email Clicked", T0 + 2 * HOUR, campaign_id="ab") for u in clickers),
            *(track(u, "Unsubscribed", T0 + 2 * HOUR) for u in unsubscribers),
        ],
        at=T0 + 4 * DAY,
    )  # fmt: skip
    run(rt, T0 + 4 * DAY + HOUR)  # the goal ends the buyers' enrollments

    m = journey_metrics(rt.db, rt.workspace().workspace_id, "ab")
    assert m.entered == N
    # The goal ends enrollments still running (the holdout completed at once) whenever it comes;
    # conversions count orders inside the attribution window, for every group alike.
    treated = [u for u in users if variant[u] != "holdout"]
    goal = [u for u in treated if u in buyers or u in late]
    assert m.goal == len(goal)
    assert m.completed == N - len(goal)
    assert m.sent == len(treated)
    assert m.steps["offer"] == {"sent": len(treated)}
    assert m.steps["test"] == {"done": N}
    assert m.clicked == len(clickers)
    assert m.unsubscribed == len(unsubscribers)
    assert m.conversions == len(buyers)  # late orders are outside the 3-day window
    assert m.revenue == pytest.approx(sum(amount[u] for u in buyers))

    by = {v.variant: v for v in m.variants}
    for name in ("a", "b", "holdout"):
        group = [u for u in users if variant[u] == name]
        bought = [u for u in group if u in buyers]
        assert (by[name].enrolled, by[name].converted) == (len(group), len(bought))
        assert by[name].revenue == pytest.approx(sum(amount[u] for u in bought))

    ab = next(c for c in m.comparisons if c.baseline == "a")
    z, p = two_proportion_test(
        by["b"].converted, by["b"].enrolled, by["a"].converted, by["a"].enrolled
    )
    assert (ab.variant, ab.z, ab.p_value) == ("b", z, p)
    x = by["a"].converted + by["b"].converted
    n = by["a"].enrolled + by["b"].enrolled
    rate, hold = x / n, by["holdout"].rate
    assert m.holdout_lift == pytest.approx((rate - hold) / hold)
    lift = next(c for c in m.comparisons if c.baseline == "holdout")
    assert math.isclose(
        lift.z, two_proportion_test(x, n, by["holdout"].converted, by["holdout"].enrolled)[0]
    )
