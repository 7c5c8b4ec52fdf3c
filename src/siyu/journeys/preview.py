"""Preview: the path one customer would take through a journey if they entered now.

Waits are shown with the moment they would end in the customer's time zone, branches are
evaluated on the customer's current data (events since entry: none yet), messages are rendered
by the messaging slice's preview with the customer's real data when it is installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from siyu.errors import NotFound
from siyu.journeys.conditions import compile_condition
from siyu.journeys.definition import EXIT, Definition, Step
from siyu.journeys.localtime import next_local, zone_expr
from siyu.store.database import Database
from siyu.store.schema import customers


@dataclass(frozen=True)
class PreviewStep:
    step_id: str
    kind: str
    detail: str
    message: dict[str, Any] | None = None


def find_customer(db: Database, ws: str, ref: str) -> str:
    """A customer by customer id, user id or email."""
    c = customers
    with db.engine.connect() as conn:
        found = conn.execute(
            sa.select(c.c.customer_id)
            .where(
                c.c.workspace_id == ws,
                sa.or_(c.c.customer_id == ref, c.c.user_id == ref, c.c.email == ref.lower()),
            )
            .limit(1)
        ).scalar_one_or_none()
    if found is None:
        raise NotFound(
            f"No customer '{ref}' in this workspace.",
            hint="Give a customer id, user id or email of a stored customer.",
        )
    return str(found)


def _render(db: Database, ws: str, customer_id: str, step: Step) -> dict[str, Any] | None:
    from dataclasses import asdict

    try:
        from siyu.messaging.templates import preview as render
    except ImportError:  # messaging slice not installed
        return None
    target = step.send if step.send is not None else step.webhook
    assert target is not None
    try:
        rendered = render(db, ws, target.template, customer_id, context=target.context)
    except Exception as exc:  # a preview shows the problem instead of failing the whole path
        return {"error": str(exc)}
    return asdict(rendered)


def preview_path(
    db: Database, ws: str, region: str, d: Definition, customer_ref: str, now: datetime
) -> list[PreviewStep]:
    customer_id = find_customer(db, ws, customer_ref)
    with db.engine.connect() as conn:
        zone = conn.execute(
            sa.select(zone_expr(region)).where(
                customers.c.workspace_id == ws, customers.c.customer_id == customer_id
            )
        ).scalar_one()
    out: list[PreviewStep] = []
    at = now
    index = d.index()
    i: int | None = 0
    while i is not None and i < len(d.steps):
        step = d.steps[i]
        goto: str | None = None
        detail = ""
        message = None
        kind = step.kind
        if step.wait is not None:
            at = at + step.wait.delta
            detail = f"wait {step.wait.delta} (until {at:%Y-%m-%d %H:%M} UTC)"
        elif step.wait_until is not None:
            at = next_local(at, zone, step.wait_until.time, list(step.wait_until.weekdays))
            detail = f"wait until {step.wait_until.time} {zone} ({at:%Y-%m-%d %H:%M} UTC)"
        elif step.wait_for is not None:
            w = step.wait_for
            detail = (
                f"wait up to {w.timeout.delta} for {w.count}x '{w.event}'; then -> "
                f"{w.then or 'next'}, timeout -> {w.on_timeout} (shown: the event arrives)"
            )
            goto = w.then
        elif step.branch is not None:
            expr = compile_condition(
                step.branch.if_,
                ws,
                db.engine.dialect.name,
                customers.c.customer_id,
                sa.literal(now),
            )
            with db.engine.connect() as conn:
                yes = conn.execute(
                    sa.select(sa.func.count()).where(
                        customers.c.workspace_id == ws, customers.c.customer_id == customer_id, expr
                    )
                ).scalar_one()
            goto = step.branch.then if yes else step.branch.else_
            detail = f"condition is {'true' if yes else 'false'} -> {goto or 'next'}"
        elif step.split is not None:
            parts = [f"{v.name} {v.weight:g}" for v in step.split.variants]
            detail = (
                f"random split {', '.join(parts)}; holdout {step.split.holdout:g}% (shown: first)"
            )
            goto = step.split.variants[0].goto
        elif step.send is not None or step.webhook is not None:
            target = step.send or step.webhook
            channel = step.send.channel if step.send is not None else "webhook"
            detail = f"send '{target.template}' by {channel} at {at:%Y-%m-%d %H:%M} UTC"  # type: ignore[union-attr]
            message = _render(db, ws, customer_id, step)
        elif step.set_trait is not None:
            detail = f"set trait {step.set_trait.name} = {step.set_trait.value!r}"
        elif step.set_tag is not None:
            detail = f"{'remove' if step.set_tag.remove else 'add'} tag {step.set_tag.tag}"
        elif step.reward is not None:
            detail = f"grant reward {step.reward.kind} {step.reward.spec}"
        else:
            detail = "exit"
            goto = EXIT
        out.append(PreviewStep(step.id, kind, detail, message))
        if goto == EXIT:
            break
        i = index[goto] if goto is not None else i + 1
    return out
