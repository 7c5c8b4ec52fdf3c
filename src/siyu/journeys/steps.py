"""What each step kind does to a batch of claimed step runs (all of one step of one version).

Executors are registered by kind in ``EXECUTORS``. Each returns one :class:`Result` per run: the
state the run ends in and where the enrollment goes next. Side effects are idempotent under the
run's key (journey, version, enrollment, step): a send passes it to the messaging slice as the
idempotency key, a reward grant as its grant key, a trait write is the same write twice. So a run
re-executed after a crash, before its result was committed, changes nothing the second time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from siyu.journeys import conditions
from siyu.journeys.definition import EXIT, Definition, Step
from siyu.journeys.localtime import next_local, zone_expr
from siyu.store.database import Database
from siyu.store.schema import customers

WAIT_FOR_POLL = timedelta(minutes=5)


@dataclass(frozen=True)
class Claimed:
    """One step run claimed by this worker."""

    enrollment_id: str
    step_id: str
    journey_id: str
    version: int
    customer_id: str
    due_at: datetime
    started_at: datetime
    attempts: int

    @property
    def key(self) -> str:
        """The idempotency key of this step of this enrollment."""
        return f"{self.journey_id}:{self.version}:{self.enrollment_id}:{self.step_id}"


@dataclass(frozen=True)
class Result:
    """How one run ends. ``goto``: a later step id, EXIT, or None (the following step)."""

    run: Claimed
    state: str  # done | skipped | waiting | due | dead
    outcome: str | None = None
    reason_code: str | None = None
    reason: str | None = None
    message_id: str | None = None
    branch: str | None = None
    due_at: datetime | None = None  # for waiting / due: when to look again
    next_due: datetime | None = None  # for done / skipped: when the next step is due
    goto: str | None = None
    variant: str | None = None
    finish: str | None = None  # end the enrollment in this state (e.g. "exited", "completed")
    target: str | None = None  # resolved by the worker: goto, else the following step
    result: dict[str, Any] | None = None  # stored on the run (a reward's code, ...)


@dataclass
class Context:
    db: Database
    workspace_id: str
    region: str
    definition: Definition
    now: datetime
    max_attempts: int
    extra: dict[str, Any] = field(default_factory=dict)


Executor = Callable[[Context, Step, list[Claimed]], list[Result]]


def backoff(attempts: int) -> timedelta:
    """1, 2, 4, 8 ... minutes, at most 6 hours."""
    return timedelta(minutes=min(2 ** max(attempts - 1, 0), 360))


def retry_or_dead(
    ctx: Context, run: Claimed, code: str, reason: str, at: datetime | None
) -> Result:
    if run.attempts >= ctx.max_attempts:
        return Result(
            run,
            "dead",
            outcome="failed",
            reason_code=code,
            reason=f"{reason} (gave up after {run.attempts} attempts)",
            finish="failed",
        )
    due = max(at or ctx.now + backoff(run.attempts), ctx.now + timedelta(seconds=1))
    return Result(run, "due", outcome="retry", reason_code=code, reason=reason, due_at=due)


def _wait(ctx: Context, step: Step, runs: list[Claimed]) -> list[Result]:
    assert step.wait is not None
    return [Result(r, "done", next_due=r.due_at + step.wait.delta) for r in runs]


def zones_of(ctx: Context, customer_ids: list[str]) -> dict[str, str]:
    with ctx.db.engine.connect() as conn:
        rows = conn.execute(
            sa.select(customers.c.customer_id, zone_expr(ctx.region)).where(
                customers.c.workspace_id == ctx.workspace_id,
                customers.c.customer_id.in_(customer_ids),
            )
        ).all()
    return {r[0]: r[1] for r in rows}


def _wait_until(ctx: Context, step: Step, runs: list[Claimed]) -> list[Result]:
    spec = step.wait_until
    assert spec is not None
    zones = zones_of(ctx, [r.customer_id for r in runs])
    cache: dict[tuple[datetime, str], datetime] = {}
    out = []
    for r in runs:
        zone = zones.get(r.customer_id, "UTC")
        key = (r.due_at, zone)
        if key not in cache:
            cache[key] = next_local(r.due_at, zone, spec.time, list(spec.weekdays))
        out.append(Result(r, "done", next_due=cache[key]))
    return out


def _wait_for(ctx: Context, step: Step, runs: list[Claimed]) -> list[Result]:
    spec = step.wait_for
    assert spec is not None
    with ctx.db.engine.connect() as conn:
        counts = conditions.event_counts(
            conn, ctx.workspace_id, spec.event, spec.where, [r.enrollment_id for r in runs]
        )
    out = []
    for r in runs:
        deadline = r.started_at + spec.timeout.delta
        if counts.get(r.enrollment_id, 0) >= spec.count:
            out.append(Result(r, "done", branch="matched", goto=spec.then, next_due=ctx.now))
        elif ctx.now >= deadline:
            out.append(Result(r, "done", branch="timeout", goto=spec.on_timeout, next_due=ctx.now))
        else:
            out.append(Result(r, "waiting", due_at=min(ctx.now + WAIT_FOR_POLL, deadline)))
    return out


def _branch(ctx: Context, step: Step, runs: list[Claimed]) -> list[Result]:
    spec = step.branch
    assert spec is not None
    with ctx.db.engine.connect() as conn:
        yes = conditions.evaluate(conn, ctx.workspace_id, spec.if_, [r.enrollment_id for r in runs])
    return [
        Result(r, "done", branch="then", goto=spec.then, next_due=ctx.now)
        if r.enrollment_id in yes
        else Result(r, "done", branch="else", goto=spec.else_, next_due=ctx.now)
        for r in runs
    ]


def bucket(enrollment_id: str, step_id: str) -> float:
    """A stable number in [0, 100) from the enrollment: the same group on every retry."""
    digest = hashlib.sha256(f"{enrollment_id}:{step_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


def _split(ctx: Context, step: Step, runs: list[Claimed]) -> list[Result]:
    spec = step.split
    assert spec is not None
    total = sum(v.weight for v in spec.variants)
    out = []
    for r in runs:
        b = bucket(r.enrollment_id, r.step_id)
        if b < spec.holdout:
            out.append(
                Result(
                    r, "done", branch="holdout", variant="holdout", goto=EXIT, finish="completed"
                )
            )
            continue
        point = (b - spec.holdout) / (100 - spec.holdout) * total
        acc = 0.0
        chosen = spec.variants[-1]
        for v in spec.variants:
            acc += v.weight
            if point < acc:
                chosen = v
                break
        out.append(
            Result(
                r,
                "done",
                branch=chosen.name,
                variant=chosen.name,
                goto=chosen.goto,
                next_due=ctx.now,
            )
        )
    return out


def _send(ctx: Context, step: Step, runs: list[Claimed]) -> list[Result]:
    from siyu.messaging.contract import SendRequest, SendStatus
    from siyu.messaging.send import send_many

    if step.send is not None:
        channel, template, purpose, extra = (
            step.send.channel,
            step.send.template,
            step.send.purpose,
            step.send.context,
        )
    else:
        assert step.webhook is not None
        channel, template, purpose, extra = (
            "webhook",
            step.webhook.template,
            "transactional",
            step.webhook.context,
        )
    d = ctx.definition
    granted = earlier_results(ctx, [r.enrollment_id for r in runs])
    picks = recommendations(ctx, [r.customer_id for r in runs])
    requests = [
        SendRequest(
            workspace_id=ctx.workspace_id,
            customer_id=r.customer_id,
            channel=channel,
            purpose=purpose,
            template=template,
            idempotency_key=r.key,
            journey_id=r.journey_id,
            journey_version=r.version,
            step_id=r.step_id,
            attempt=r.attempts,
            context={
                **extra,
                "journey": {"id": d.id, "name": d.name, "version": r.version},
                "enrollment": r.enrollment_id,
                "step": r.step_id,
                "rewards": granted.get(r.enrollment_id, {}),
                "recommendations": picks.get(r.customer_id, []),
            },
        )
        for r in runs
    ]
    outcomes = send_many(ctx.db, requests, now=ctx.now)
    out = []
    for r, o in zip(runs, outcomes, strict=True):
        status = SendStatus(o.status)
        common: dict[str, Any] = {
            "outcome": status.value,
            "reason_code": o.reason_code,
            "reason": o.reason,
            "message_id": o.message_id,
        }
        if status in (SendStatus.SENT, SendStatus.DUPLICATE):
            out.append(Result(r, "done", next_due=ctx.now, **common))
        elif status == SendStatus.SKIPPED:
            out.append(Result(r, "skipped", next_due=ctx.now, **common))
        elif status == SendStatus.DEFERRED:
            due = max(o.retry_at or ctx.now + backoff(1), ctx.now + timedelta(seconds=1))
            # A deferral is the policy's decision, not a failure: it does not use an attempt.
            out.append(Result(replace(r, attempts=r.attempts - 1), "due", due_at=due, **common))
        elif status == SendStatus.RETRY:
            res = retry_or_dead(
                ctx, r, o.reason_code or "retry", o.reason or "provider error", o.retry_at
            )
            out.append(replace(res, message_id=o.message_id))
        else:
            out.append(Result(r, "dead", finish="failed", **common))
    return out


def earlier_results(ctx: Context, enrollment_ids: list[str]) -> dict[str, dict[str, Any]]:
    """enrollment -> {step id: result} of its earlier steps (e.g. the coupon a reward granted)."""
    from siyu.journeys.tables import journey_step_runs as t

    with ctx.db.engine.connect() as conn:
        found = conn.execute(
            sa.select(t.c.enrollment_id, t.c.step_id, t.c.result).where(
                t.c.workspace_id == ctx.workspace_id,
                t.c.enrollment_id.in_(enrollment_ids),
                t.c.result.is_not(None),
            )
        ).all()
    out: dict[str, dict[str, Any]] = {}
    for enrollment_id, step_id, result in found:
        value = json.loads(result) if isinstance(result, str) else result
        out.setdefault(enrollment_id, {})[step_id] = value
    return out


def recommendations(
    ctx: Context, customer_ids: list[str], top: int = 3
) -> dict[str, list[dict[str, Any]]]:
    """customer -> their top recommended products (predict slice), [] when there are none."""
    from siyu.predict.tables import customer_recommendations as cr
    from siyu.store.schema import products as p

    with ctx.db.engine.connect() as conn:
        found = conn.execute(
            sa.select(cr.c.customer_id, cr.c.product_id, p.c.name, p.c.price, p.c.currency)
            .select_from(
                cr.outerjoin(
                    p,
                    sa.and_(
                        p.c.workspace_id == cr.c.workspace_id, p.c.product_id == cr.c.product_id
                    ),
                )
            )
            .where(
                cr.c.workspace_id == ctx.workspace_id,
                cr.c.customer_id.in_(customer_ids),
                cr.c.rank <= top,
            )
            .order_by(cr.c.customer_id, cr.c.rank)
        ).all()
    out: dict[str, list[dict[str, Any]]] = {}
    for customer_id, product_id, name, price, currency in found:
        out.setdefault(customer_id, []).append(
            {
                "product_id": product_id,
                "name": name or product_id,
                "price": price,
                "currency": currency,
            }
        )
    return out


def _set_trait(ctx: Context, step: Step, runs: list[Claimed]) -> list[Result]:
    if step.set_trait is not None:
        patch: dict[str, Any] = {step.set_trait.name: step.set_trait.value}
    else:
        assert step.set_tag is not None
        patch = {"journey_tags": {step.set_tag.tag: None if step.set_tag.remove else True}}
    ids = [r.customer_id for r in runs]
    with ctx.db.engine.begin() as conn:
        patch_traits(conn, ctx.workspace_id, ids, patch, ctx.now)
    return [Result(r, "done", next_due=ctx.now) for r in runs]


def _jsonb(value: Any) -> sa.ColumnElement[Any]:
    return sa.cast(sa.literal(json.dumps(value), sa.String()), JSONB())


def patch_traits(
    conn: sa.Connection, ws: str, customer_ids: list[str], patch: dict[str, Any], now: datetime
) -> None:
    """Merge ``patch`` into the customers' traits (JSON merge patch: null removes a key)."""
    c = customers
    if conn.dialect.name == "postgresql":
        merged: sa.ColumnElement[Any] = sa.literal_column("COALESCE(customers.traits, '{}'::jsonb)")
        for key, value in patch.items():
            k = key.replace("'", "")
            if isinstance(value, dict):
                inner: sa.ColumnElement[Any] = sa.literal_column(
                    f"COALESCE(customers.traits -> '{k}', '{{}}'::jsonb)"
                )
                for sub, sv in value.items():
                    s = sub.replace("'", "")
                    inner = (
                        inner.op("-")(sa.literal(s))
                        if sv is None
                        else inner.op("||")(sa.func.jsonb_build_object(s, _jsonb(sv)))
                    )
                merged = merged.op("||")(sa.func.jsonb_build_object(k, inner))
            elif value is None:
                merged = merged.op("-")(sa.literal(k))
            else:
                merged = merged.op("||")(sa.func.jsonb_build_object(k, _jsonb(value)))
        new: sa.ColumnElement[Any] = merged
    else:
        new = sa.func.json_merge_patch(
            sa.func.coalesce(c.c.traits, sa.cast("{}", sa.JSON)),
            sa.cast(json.dumps(patch), sa.JSON),
        )
    conn.execute(
        c.update()
        .where(c.c.workspace_id == ws, c.c.customer_id.in_(customer_ids))
        .values(traits=new, updated_at=now)
    )


def _reward(ctx: Context, step: Step, runs: list[Claimed]) -> list[Result]:
    from siyu.registry import registry
    from siyu.rewards import RewardGrant

    spec = step.reward
    assert spec is not None
    reward = registry.rewards.get(spec.kind)
    out = []
    for r in runs:
        try:
            result = reward.grant(
                ctx.db,
                RewardGrant(
                    workspace_id=ctx.workspace_id,
                    customer_id=r.customer_id,
                    spec=spec.spec,
                    idempotency_key=r.key,
                    reason="journey",
                    reference=f"{r.journey_id}:{r.step_id}",
                ),
                now=ctx.now,
            )
        except Exception as exc:  # a failing grant is retried, then dead-lettered, never lost
            out.append(retry_or_dead(ctx, r, "reward_error", f"{type(exc).__name__}: {exc}", None))
            continue
        out.append(
            Result(
                r,
                "done",
                outcome="granted" if result.created else "duplicate",
                reason=result.description,
                message_id=result.reward_id,
                result={"code": result.code, "description": result.description},
                next_due=ctx.now,
            )
        )
    return out


def _exit(ctx: Context, step: Step, runs: list[Claimed]) -> list[Result]:
    return [Result(r, "done", goto=EXIT, finish="exited", reason="exit step") for r in runs]


EXECUTORS: dict[str, Executor] = {
    "wait": _wait,
    "wait_until": _wait_until,
    "wait_for": _wait_for,
    "branch": _branch,
    "split": _split,
    "send": _send,
    "webhook": _send,
    "set_trait": _set_trait,
    "set_tag": _set_trait,
    "reward": _reward,
    "exit": _exit,
}


def execute(ctx: Context, step: Step, runs: list[Claimed]) -> list[Result]:
    """Run one step for a batch; an unexpected error retries the batch (then dead-letters)."""
    try:
        return EXECUTORS[step.kind](ctx, step, runs)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        return [retry_or_dead(ctx, r, "step_error", reason, None) for r in runs]
