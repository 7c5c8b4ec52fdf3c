"""Property test: whatever the interleaving, each (enrollment, step) is sent at most once, and
never without consent at the moment of sending.

Hypothesis draws a plan of actions, each a little later than the last: sign-ups (repeated ones
too), consent grants and withdrawals, worker passes with small batches, crashes (a worker claims
a batch and dies before or after executing it, so its lease has to expire), and zombies (a
worker that executes a batch, stalls past its lease, and tries to store its results after
another worker may have taken the runs over). Quiet hours and caps of the real send policy
apply along the way. After the plan, workers drain everything and the test checks, against its
own model of the consent timeline: every send happened under a grant, no idempotency key
reached the outbox twice, nobody entered twice, and no enrollment or step was lost.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from siyu.journeys.steps import Result
from siyu.journeys.versions import set_status
from siyu.journeys.worker import WorkerOptions, apply, claim, run_batch, run_pending
from siyu.runtime import Runtime
from tests.journeys.helpers import identify, ingest, iso, publish_yaml, rows, track
from tests.journeys.test_send import template

T = datetime(2026, 3, 2, 14, 0)  # Monday, 15:00 in Berlin: quiet hours start at 21:00 local
LEASE = timedelta(minutes=5)
USERS = 3
SEND_STEPS = ("hello", "again")
SEC = timedelta(seconds=1)
MIN = timedelta(minutes=1)

JOURNEY = """
id: {jid}
name: Property
trigger: {{event: {{name: Signed Up}}}}
steps:
  - id: hello
    send: {{channel: outbox, template: promo}}
  - id: pause
    wait: {{hours: 1}}
  - id: again
    send: {{channel: outbox, template: promo}}
"""

user = st.integers(0, USERS - 1)
batch = st.integers(1, 3)
action = st.one_of(
    st.tuples(st.just("signup"), user),
    st.tuples(st.just("grant"), user),
    st.tuples(st.just("withdraw"), user),
    st.tuples(st.just("run"), batch),
    st.tuples(st.just("crash_before_send"), batch),
    st.tuples(st.just("crash_after_send"), batch),
    st.tuples(st.just("stall"), batch),
    st.tuples(st.just("late_apply"), st.just(0)),
)
gap = st.sampled_from(
    [timedelta(seconds=1), timedelta(minutes=2), LEASE + timedelta(minutes=1), timedelta(hours=3)]
)
plans = st.lists(st.tuples(action, gap), min_size=1, max_size=12)
initial_grants = st.lists(st.booleans(), min_size=USERS, max_size=USERS)


@dataclass
class World:
    """One example: its journey, users, consent timeline as the test knows it, stalled work."""

    rt: Runtime
    n: int
    now: datetime = T
    consents: dict[str, list[tuple[datetime, str]]] = field(default_factory=dict)
    stalled: list[tuple[str, datetime, list[Result]]] = field(default_factory=list)
    workers: Iterator[int] = field(default_factory=itertools.count)

    @property
    def jid(self) -> str:
        return f"prop{self.n}"

    def user(self, i: int) -> str:
        return f"p{self.n}u{i}"

    def ws(self) -> tuple[str, str]:
        w = self.rt.workspace()
        return w.workspace_id, w.default_region

    def consent(self, i: int, status: str) -> None:
        u = self.user(i)
        self.consents.setdefault(u, []).append((self.now, status))
        record = {
            "type": "track",
            "event": "Consent Updated",
            "userId": u,
            "timestamp": iso(self.now),
            "messageId": f"{u}-consent-{status}-{self.now.isoformat()}",
            "properties": {"purpose": "marketing", "channel": "email", "status": status},
        }
        ingest(self.rt, [record], at=self.now)

    def granted(self, u: str, at: datetime) -> bool:
        before = [s for ts, s in self.consents.get(u, []) if ts <= at]
        return bool(before) and before[-1] == "granted"

    def claim_and_maybe_run(self, size: int, execute: bool) -> tuple[str, list[Result]]:
        ws, region = self.ws()
        worker = f"w{self.n}-{next(self.workers)}"
        opts = WorkerOptions(batch_size=size, lease=LEASE)
        claimed = claim(self.rt.db, ws, worker, self.now, opts)
        if not execute or not claimed:
            return worker, []
        return worker, run_batch(self.rt.db, ws, region, claimed, self.now, opts)

    def act(self, kind: str, arg: int) -> None:
        ws, region = self.ws()
        if kind == "signup":
            ingest(self.rt, [track(self.user(arg), "Signed Up", self.now)], at=self.now)
        elif kind in ("grant", "withdraw"):
            self.consent(arg, "granted" if kind == "grant" else "withdrawn")
        elif kind == "run":
            opts = WorkerOptions(batch_size=arg, lease=LEASE, max_batches=2)
            run_pending(self.rt.db, ws, region, now=self.now, options=opts)
        elif kind == "crash_before_send":
            self.claim_and_maybe_run(arg, execute=False)
        elif kind == "crash_after_send":  # executed (sent), died before storing the results
            self.claim_and_maybe_run(arg, execute=True)
        elif kind == "stall":
            worker, results = self.claim_and_maybe_run(arg, execute=True)
            self.stalled.append((worker, self.now, results))
        elif kind == "late_apply" and self.stalled:
            worker, at, results = self.stalled.pop(0)
            apply(self.rt.db, ws, worker, results, at)  # dropped if the lease was taken over

    def drain(self) -> None:
        ws, region = self.ws()
        day = (self.now + timedelta(days=1)).replace(hour=12, minute=0, second=0)
        for at in (day, day + timedelta(days=1)):  # past leases, waits and quiet hours
            run_pending(self.rt.db, ws, region, now=at, options=WorkerOptions(lease=LEASE))


counter = itertools.count()


@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure prints its plan as drawn
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=plans, grants=initial_grants)
# Sent, then consent withdrawn before the second send, while a crashed worker's lease runs out.
@example(
    plan=[
        (("signup", 0), SEC),
        (("signup", 1), SEC),
        (("run", 1), SEC),
        (("withdraw", 0), SEC),
        (("crash_after_send", 3), timedelta(hours=3)),
        (("run", 3), LEASE + MIN),
    ],
    grants=[True, True, False],
)
# A zombie: sends, stalls past its lease, another worker takes over, the late results are dropped.
@example(
    plan=[
        (("signup", 0), SEC),
        (("run", 2), SEC),
        (("stall", 1), timedelta(hours=3)),
        (("run", 3), LEASE + MIN),
        (("late_apply", 0), SEC),
    ],
    grants=[True, True, True],
)
# The consent is withdrawn between a zombie's send and the takeover of its runs.
@example(
    plan=[
        (("signup", 2), SEC),
        (("grant", 2), SEC),
        (("run", 3), SEC),
        (("withdraw", 2), timedelta(hours=3)),
        (("stall", 3), SEC),
        (("grant", 2), SEC),
        (("late_apply", 0), LEASE + MIN),
        (("run", 1), SEC),
    ],
    grants=[False, False, False],
)
def test_at_most_once_and_only_with_consent(
    rt: Runtime, plan: list[tuple[tuple[str, int], timedelta]], grants: list[bool]
) -> None:
    n = next(counter)
    base = T + timedelta(days=10 * n)  # an example never sees the events of an earlier one
    world = World(rt, n, now=base)
    template(rt, "promo", "A little something for you, {{ customer.first_name }}.")
    publish_yaml(rt, JOURNEY.format(jid=world.jid), base)
    users = [world.user(i) for i in range(USERS)]
    ingest(
        rt,
        [identify(u, base, first_name=u, email=f"{u}@example.de", country="DE") for u in users],
        at=base,
    )
    for i, g in enumerate(grants):
        if g:
            world.consent(i, "granted")
    signed_up: set[str] = set()
    for (kind, arg), step in plan:
        world.now += step
        if kind == "signup":
            signed_up.add(world.user(arg))
        world.act(kind, arg)
    world.drain()
    try:
        check(world, signed_up)
    finally:  # later examples publish their own journey; this one stops claiming anything
        set_status(rt.db, rt.workspace().workspace_id, world.jid, "paused", now=world.now)


def check(world: World, signed_up: set[str]) -> None:
    rt = world.rt
    entered = rows(
        rt,
        "SELECT c.user_id, e.enrollment_id, e.state FROM journey_enrollments e "
        "JOIN customers c ON c.customer_id = e.customer_id WHERE e.journey_id = :j",
        j=world.jid,
    )
    users = [r[0] for r in entered]
    assert len(users) == len(set(users)), "a customer entered twice (entry policy: once)"
    assert set(users) == signed_up  # nobody lost, nobody extra
    assert {r[2] for r in entered} <= {"completed"}, entered  # no enrollment stuck
    sent: list[Any] = rows(
        rt,
        "SELECT c.user_id, m.step_id, m.idempotency_key, m.status, m.reason_code, m.sent_at, "
        "(SELECT count(*) FROM outbox o WHERE o.message_id = m.message_id) "
        "FROM messages m JOIN customers c ON c.customer_id = m.customer_id "
        "WHERE m.journey_id = :j",
        j=world.jid,
    )
    # One message per (enrollment, send step): none lost, none doubled.
    keys = sorted((r[2].rsplit(":", 2)[1], r[1]) for r in sent)
    expected = sorted((r[1], s) for r in entered for s in SEND_STEPS)
    assert keys == expected
    for u, _step, key, status, reason_code, sent_at, copies in sent:
        assert copies <= 1, f"{key} reached the outbox {copies} times"
        if copies:
            assert status == "sent"
            assert sent_at is not None
            assert world.granted(u, sent_at), f"{key} sent at {sent_at} without consent"
        else:
            assert status == "skipped", (key, status)
            assert reason_code, key  # every skipped message says why
