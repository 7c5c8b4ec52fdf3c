"""Paid membership: plans, start, renewal, cancellation and lapse.

A plan has a price, a period in months, a grace period and benefits. A customer holds at most
one membership (``memberships``: plan, status, start, end); every start, renewal, cancellation
and lapse is a row of ``membership_periods`` (the history, keyed for idempotency) and an event.
Renewal extends from the later of the current end and now, so paying early never loses days;
within the grace period after the end, a renewal continues the membership instead of starting
a new one. The lapse sweep is one set-based statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from siyu.errors import Conflict, InvalidInput, NotFound
from siyu.loyalty.ledger import add_months, locked, require_key
from siyu.loyalty.tables import membership_periods, membership_plans, memberships
from siyu.money import require_currency, to_money
from siyu.store.database import Database


@dataclass(frozen=True)
class Plan:
    plan_id: str
    name: str
    price: Decimal
    currency: str
    period_months: int
    grace_days: int
    benefits: list[str]


@dataclass(frozen=True)
class Membership:
    customer_id: str
    plan_id: str
    status: str
    started_at: datetime
    ends_at: datetime
    auto_renew: bool
    created: bool


def create_plan(
    conn: sa.Connection,
    workspace_id: str,
    plan_id: str,
    *,
    name: str,
    price: object,
    currency: str,
    period_months: int,
    now: datetime,
    grace_days: int = 7,
    benefits: Sequence[str] = (),
) -> Plan:
    if not 1 <= period_months <= 60:
        raise InvalidInput("period_months must be between 1 and 60.", field="period_months")
    if not 0 <= grace_days <= 90:
        raise InvalidInput("grace_days must be between 0 and 90.", field="grace_days")
    amount = to_money(price, "price")
    if amount < 0:
        raise InvalidInput("price cannot be negative.", field="price")
    p = membership_plans.c
    if conn.execute(
        sa.select(p.plan_id).where(p.workspace_id == workspace_id, p.plan_id == plan_id)
    ).first():
        raise Conflict(f"Membership plan {plan_id!r} exists.", hint="Choose another plan id.")
    conn.execute(
        membership_plans.insert().values(
            workspace_id=workspace_id,
            plan_id=plan_id,
            name=name,
            price=amount,
            currency=require_currency(currency),
            period_months=period_months,
            grace_days=grace_days,
            benefits=list(benefits),
            created_at=now,
        )
    )
    return get_plan(conn, workspace_id, plan_id)


def get_plan(conn: sa.Connection, workspace_id: str, plan_id: str) -> Plan:
    p = membership_plans.c
    row = conn.execute(
        sa.select(membership_plans).where(p.workspace_id == workspace_id, p.plan_id == plan_id)
    ).first()
    if row is None:
        raise NotFound(
            f"No membership plan {plan_id!r}.", hint="List them with 'siyu loyalty plans'."
        )
    return Plan(
        row.plan_id,
        row.name,
        Decimal(row.price),
        row.currency,
        row.period_months,
        row.grace_days,
        list(row.benefits or []),
    )


def list_plans(conn: sa.Connection, workspace_id: str) -> list[Plan]:
    p = membership_plans.c
    ids = conn.execute(
        sa.select(p.plan_id).where(p.workspace_id == workspace_id).order_by(p.plan_id)
    ).scalars()
    return [get_plan(conn, workspace_id, i) for i in ids]


def _current(conn: sa.Connection, workspace_id: str, customer_id: str) -> Any:
    m = memberships.c
    return conn.execute(
        sa.select(memberships).where(m.workspace_id == workspace_id, m.customer_id == customer_id)
    ).first()


def _period(
    conn: sa.Connection,
    workspace_id: str,
    key: str,
    customer_id: str,
    plan: Plan,
    kind: str,
    starts: datetime,
    ends: datetime,
    amount: Decimal,
    reference: str | None,
    now: datetime,
) -> bool:
    inserted = conn.execute(
        pg_insert(membership_periods)
        .values(
            workspace_id=workspace_id,
            idempotency_key=key,
            customer_id=customer_id,
            plan_id=plan.plan_id,
            kind=kind,
            starts_at=starts,
            ends_at=ends,
            amount=amount,
            currency=plan.currency,
            reference=reference,
            created_at=now,
        )
        .on_conflict_do_nothing()
        .returning(membership_periods.c.idempotency_key)
    ).first()
    return inserted is not None


def _as_membership(row: Any, created: bool) -> Membership:
    return Membership(
        row.customer_id,
        row.plan_id,
        row.status,
        row.started_at,
        row.ends_at,
        bool(row.auto_renew),
        created,
    )


def _replayed(conn: sa.Connection, workspace_id: str, key: str) -> bool:
    mp = membership_periods.c
    return (
        conn.execute(
            sa.select(mp.idempotency_key).where(
                mp.workspace_id == workspace_id, mp.idempotency_key == key
            )
        ).first()
        is not None
    )


def start(
    db: Database,
    workspace_id: str,
    customer_id: str,
    plan_id: str,
    *,
    key: str,
    now: datetime,
    reference: str | None = None,
    auto_renew: bool = True,
) -> Membership:
    """Start a membership (paid: ``reference`` names the order or payment)."""
    require_key(key)
    with locked(db, workspace_id, [customer_id]) as conn:
        plan = get_plan(conn, workspace_id, plan_id)
        current = _current(conn, workspace_id, customer_id)
        if _replayed(conn, workspace_id, key):
            return _as_membership(current, False)
        if current is not None and current.status == "active" and current.ends_at > now:
            raise Conflict(
                f"Customer {customer_id} is a member ({current.plan_id}) until "
                f"{current.ends_at:%Y-%m-%d}.",
                hint="Renew the membership instead (siyu loyalty membership renew).",
            )
        ends = add_months(now, plan.period_months)
        _period(
            conn,
            workspace_id,
            key,
            customer_id,
            plan,
            "start",
            now,
            ends,
            plan.price,
            reference,
            now,
        )
        values = {
            "plan_id": plan_id,
            "status": "active",
            "started_at": now,
            "ends_at": ends,
            "auto_renew": auto_renew,
            "updated_at": now,
        }
        conn.execute(
            pg_insert(memberships)
            .values(workspace_id=workspace_id, customer_id=customer_id, **values)
            .on_conflict_do_update(index_elements=["workspace_id", "customer_id"], set_=values)
        )
        return _as_membership(_current(conn, workspace_id, customer_id), True)


def renew(
    db: Database,
    workspace_id: str,
    customer_id: str,
    *,
    key: str,
    now: datetime,
    reference: str | None = None,
) -> Membership:
    """Extend by one period from the later of the current end and now."""
    require_key(key)
    with locked(db, workspace_id, [customer_id]) as conn:
        current = _current(conn, workspace_id, customer_id)
        if current is None:
            raise NotFound(
                f"Customer {customer_id} has no membership to renew.",
                hint="Start one (siyu loyalty membership start).",
            )
        if _replayed(conn, workspace_id, key):
            return _as_membership(current, False)
        plan = get_plan(conn, workspace_id, current.plan_id)
        if current.status == "cancelled" or now > current.ends_at + timedelta(days=plan.grace_days):
            raise Conflict(
                f"The membership of {customer_id} ended {current.ends_at:%Y-%m-%d} "
                f"({current.status}), past the {plan.grace_days}-day grace period.",
                hint="Start a new membership instead.",
            )
        base = max(current.ends_at, now)
        ends = add_months(base, plan.period_months)
        _period(
            conn,
            workspace_id,
            key,
            customer_id,
            plan,
            "renew",
            base,
            ends,
            plan.price,
            reference,
            now,
        )
        m = memberships.c
        conn.execute(
            memberships.update()
            .where(m.workspace_id == workspace_id, m.customer_id == customer_id)
            .values(status="active", ends_at=ends, updated_at=now)
        )
        return _as_membership(_current(conn, workspace_id, customer_id), True)


def cancel(
    db: Database, workspace_id: str, customer_id: str, *, now: datetime, immediate: bool = False
) -> Membership:
    """Stop auto-renewal (the member keeps benefits to the end), or end it now."""
    with locked(db, workspace_id, [customer_id]) as conn:
        current = _current(conn, workspace_id, customer_id)
        if current is None or current.status != "active":
            raise NotFound(f"Customer {customer_id} has no active membership.")
        m = memberships.c
        where = (m.workspace_id == workspace_id, m.customer_id == customer_id)
        if not immediate:
            conn.execute(
                memberships.update().where(*where).values(auto_renew=False, updated_at=now)
            )
        else:
            plan = get_plan(conn, workspace_id, current.plan_id)
            _period(
                conn,
                workspace_id,
                f"cancel:{customer_id}:{now.isoformat()}",
                customer_id,
                plan,
                "cancel",
                now,
                now,
                Decimal(0),
                None,
                now,
            )
            conn.execute(
                memberships.update()
                .where(*where)
                .values(status="cancelled", ends_at=now, auto_renew=False, updated_at=now)
            )
        return _as_membership(_current(conn, workspace_id, customer_id), True)


def lapse(conn: sa.Connection, workspace_id: str, now: datetime) -> int:
    """Mark memberships past end + grace as lapsed, with a history row each (set-based)."""
    params = {"ws": workspace_id, "now": now}
    due = (
        "FROM memberships m JOIN membership_plans p ON p.workspace_id = m.workspace_id "
        "AND p.plan_id = m.plan_id WHERE m.workspace_id = :ws AND m.status = 'active' "
        "AND m.ends_at + p.grace_days * INTERVAL '1 day' <= :now"
    )
    conn.execute(
        sa.text(
            "INSERT INTO membership_periods (workspace_id, idempotency_key, customer_id, plan_id, "
            "kind, starts_at, ends_at, amount, currency, reference, created_at) "
            "SELECT m.workspace_id, 'lapse:' || m.customer_id || ':' || "
            "CAST(m.ends_at AS VARCHAR), m.customer_id, m.plan_id, 'lapse', m.ends_at, "
            f"m.ends_at, 0, p.currency, NULL, :now {due} ON CONFLICT DO NOTHING"
        ),
        params,
    )
    result = conn.execute(
        sa.text(
            "UPDATE memberships SET status = 'lapsed', updated_at = :now WHERE workspace_id = :ws "
            "AND customer_id IN (SELECT m.customer_id " + due + ") RETURNING customer_id"
        ),
        params,
    )
    return len(result.all())
