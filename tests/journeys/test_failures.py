"""Retries with backoff, dead letters after the attempt limit, and their re-queue."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from siyu.journeys import service
from siyu.registry import registry
from siyu.rewards import RewardGrant, RewardResult
from siyu.runtime import Runtime
from siyu.store.database import Database
from tests.journeys.helpers import MIN, T0, enrollments, ingest, publish_yaml, rows, run, track


class Flaky:
    """A reward plugin that fails until told to work; counts grants per idempotency key."""

    def __init__(self) -> None:
        self.working = False
        self.granted: dict[str, int] = {}

    def validate(self, spec: Mapping[str, Any]) -> list[str]:
        return [] if spec.get("points", 0) > 0 else ["points must be positive"]

    def grant(self, db: Database, grant: RewardGrant, *, now: datetime) -> RewardResult:
        if not self.working:
            raise ConnectionError("reward service unreachable")
        self.granted[grant.idempotency_key] = self.granted.get(grant.idempotency_key, 0) + 1
        return RewardResult(grant.idempotency_key, True, "5 points", code="P5")


JOURNEY = """
id: flaky
name: Flaky reward
trigger: {event: {name: Signed Up}}
steps:
  - id: give
    reward: {kind: test_flaky, spec: {points: 5}}
  - id: after
    set_trait: {name: rewarded, value: true}
"""


def test_retry_backoff_dead_letter_and_requeue(rt: Runtime) -> None:
    flaky = Flaky()
    registry.rewards.register("test_flaky", flaky, replace=True)
    publish_yaml(rt, JOURNEY)
    ingest(rt, [track("ann", "Signed Up", T0)], at=T0)
    at = T0 + MIN
    run(rt, at, max_attempts=3)
    (state, attempts, due_at, reason) = rows(
        rt, "SELECT state, attempts, due_at, reason FROM journey_step_runs"
    )[0]
    assert (state, attempts) == ("due", 1)
    assert due_at == at + MIN  # backoff 1, 2, 4 ... minutes
    assert "reward service unreachable" in reason
    run(rt, at + MIN, max_attempts=3)
    assert rows(rt, "SELECT due_at FROM journey_step_runs")[0][0] == at + 3 * MIN
    run(rt, at + 3 * MIN, max_attempts=3)  # third attempt: dead
    assert rows(rt, "SELECT state, outcome FROM journey_step_runs")[0] == ("dead", "failed")
    assert enrollments(rt, "flaky") == {"ann": ("failed", None)}
    ws = rt.workspace().workspace_id
    (failure,) = service.failures(rt.db, ws, None, 10)
    assert failure.step_id == "give"
    assert "gave up after 3 attempts" in (failure.reason or "")

    flaky.working = True
    assert service.retry(rt.db, ws, at + 10 * MIN) == 1
    run(rt, at + 10 * MIN, max_attempts=3)
    assert enrollments(rt, "flaky") == {"ann": ("completed", None)}
    assert list(flaky.granted.values()) == [1]
    assert service.failures(rt.db, ws, None, 10) == []
