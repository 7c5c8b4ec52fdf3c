"""What the CLI and the API do: one checked state change, then its events.

Each action refuses an unknown customer with a precise error, applies one state change (the
modules below guarantee idempotency and concurrency safety) and publishes the customer's pending
events through the pipeline.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from siyu.config import Settings
from siyu.errors import NotFound
from siyu.loyalty import bonuses, catalogue, coupons, ledger, membership
from siyu.loyalty.events import publish
from siyu.loyalty.program import load_program
from siyu.store import schema
from siyu.store.database import Database


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def require_customer(db: Database, workspace_id: str, customer_id: str) -> None:
    c = schema.customers.c
    with db.engine.connect() as conn:
        found = conn.execute(
            sa.select(c.customer_id).where(
                c.workspace_id == workspace_id, c.customer_id == customer_id
            )
        ).first()
    if found is None:
        raise NotFound(
            f"No customer {customer_id!r} in this workspace.",
            hint="Use the siyu customer id (cus_...), e.g. from 'siyu identity explain'.",
            field="customer_id",
        )


def _entry(entry: ledger.Entry, db: Database, workspace_id: str) -> dict[str, Any]:
    with db.engine.connect() as conn:
        balance = ledger.balances(conn, workspace_id, [entry.customer_id])[entry.customer_id]
    return {
        "idempotency_key": entry.idempotency_key,
        "customer_id": entry.customer_id,
        "kind": entry.kind,
        "points": entry.points,
        "reason": entry.reason,
        "reference": entry.reference,
        "created": entry.created,
        "balance": balance,
    }


def earn_points(
    db: Database,
    settings: Settings,
    workspace_id: str,
    customer_id: str,
    points: int,
    *,
    key: str,
    reason: str,
    reference: str | None,
    now: datetime | None = None,
) -> dict[str, Any]:
    require_customer(db, workspace_id, customer_id)
    with db.engine.connect() as conn:
        months = load_program(conn, workspace_id).expiry_months
    entry = ledger.earn(
        db,
        workspace_id,
        customer_id,
        points,
        key=key,
        reason=reason,
        reference=reference,
        now=now or utcnow(),
        expiry_months=months,
    )
    publish(db, workspace_id, customer_ids=[customer_id], settings=settings)
    return _entry(entry, db, workspace_id)


def redeem_points(
    db: Database,
    settings: Settings,
    workspace_id: str,
    customer_id: str,
    points: int,
    *,
    key: str,
    reason: str,
    reference: str | None,
    now: datetime | None = None,
) -> dict[str, Any]:
    require_customer(db, workspace_id, customer_id)
    entry = ledger.redeem(
        db,
        workspace_id,
        customer_id,
        points,
        key=key,
        reason=reason,
        reference=reference,
        now=now or utcnow(),
    )
    publish(db, workspace_id, customer_ids=[customer_id], settings=settings)
    return _entry(entry, db, workspace_id)


def award_bonus(
    db: Database,
    settings: Settings,
    workspace_id: str,
    customer_id: str,
    bonus: str,
    *,
    reference: str | None,
    now: datetime | None = None,
) -> dict[str, Any]:
    require_customer(db, workspace_id, customer_id)
    entry = bonuses.award(
        db, workspace_id, customer_id, bonus, now=now or utcnow(), reference=reference
    )
    publish(db, workspace_id, customer_ids=[customer_id], settings=settings)
    return _entry(entry, db, workspace_id)


def redeem_reward(
    db: Database,
    settings: Settings,
    workspace_id: str,
    customer_id: str,
    reward_id: str,
    *,
    key: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Points for a catalogue reward: the posting, then the coupon code or the item to ship."""
    require_customer(db, workspace_id, customer_id)
    r = catalogue.redeem_reward(
        db, workspace_id, customer_id, reward_id, key=key, now=now or utcnow()
    )
    publish(db, workspace_id, customer_ids=[customer_id], settings=settings)
    out = _entry(r.entry, db, workspace_id)
    out.update({"reward_id": r.reward_id, "name": r.name, "item": r.item, "coupon": None})
    if r.coupon is not None:
        out["coupon"] = {
            "code": r.coupon.code,
            "description": r.coupon.spec.describe(),
            "expires_at": r.coupon.expires_at.isoformat() if r.coupon.expires_at else None,
        }
    return out


def _membership(m: membership.Membership) -> dict[str, Any]:
    return {
        "customer_id": m.customer_id,
        "plan_id": m.plan_id,
        "status": m.status,
        "started_at": m.started_at.isoformat(),
        "ends_at": m.ends_at.isoformat(),
        "auto_renew": m.auto_renew,
        "created": m.created,
    }


def start_membership(
    db: Database,
    settings: Settings,
    workspace_id: str,
    customer_id: str,
    plan_id: str,
    *,
    key: str,
    reference: str | None,
    auto_renew: bool = True,
    now: datetime | None = None,
) -> dict[str, Any]:
    require_customer(db, workspace_id, customer_id)
    m = membership.start(
        db,
        workspace_id,
        customer_id,
        plan_id,
        key=key,
        now=now or utcnow(),
        reference=reference,
        auto_renew=auto_renew,
    )
    publish(db, workspace_id, customer_ids=[customer_id], settings=settings)
    return _membership(m)


def renew_membership(
    db: Database,
    settings: Settings,
    workspace_id: str,
    customer_id: str,
    *,
    key: str,
    reference: str | None,
    now: datetime | None = None,
) -> dict[str, Any]:
    m = membership.renew(
        db, workspace_id, customer_id, key=key, now=now or utcnow(), reference=reference
    )
    publish(db, workspace_id, customer_ids=[customer_id], settings=settings)
    return _membership(m)


def cancel_membership(
    db: Database,
    settings: Settings,
    workspace_id: str,
    customer_id: str,
    *,
    immediate: bool,
    now: datetime | None = None,
) -> dict[str, Any]:
    m = membership.cancel(db, workspace_id, customer_id, now=now or utcnow(), immediate=immediate)
    publish(db, workspace_id, customer_ids=[customer_id], settings=settings)
    return _membership(m)


def issue_coupon(
    db: Database,
    settings: Settings,
    workspace_id: str,
    *,
    key: str,
    customer_id: str | None,
    campaign_id: str | None,
    spec: dict[str, Any] | None,
    max_uses: int | None = 1,
    now: datetime | None = None,
) -> dict[str, Any]:
    if customer_id is not None:
        require_customer(db, workspace_id, customer_id)
    issued = coupons.issue(
        db,
        workspace_id,
        key=key,
        now=now or utcnow(),
        customer_id=customer_id,
        campaign_id=campaign_id,
        spec=spec,
        max_uses=max_uses,
    )
    if customer_id is not None:
        publish(db, workspace_id, customer_ids=[customer_id], settings=settings)
    return {
        "code": issued.code,
        "created": issued.created,
        "description": issued.spec.describe(),
        "expires_at": issued.expires_at.isoformat() if issued.expires_at else None,
    }


def redeem_coupon(
    db: Database,
    settings: Settings,
    workspace_id: str,
    code: str,
    *,
    order_id: str,
    customer_id: str | None,
    subtotal: Decimal,
    currency: str,
    shipping: Decimal = Decimal(0),
    now: datetime | None = None,
) -> dict[str, Any]:
    r = coupons.redeem_code(
        db,
        workspace_id,
        code,
        order_id=order_id,
        customer_id=customer_id,
        subtotal=subtotal,
        currency=currency,
        shipping=shipping,
        now=now or utcnow(),
    )
    if customer_id is not None:
        publish(db, workspace_id, customer_ids=[customer_id], settings=settings)
    return {
        "code": r.code,
        "order_id": r.order_id,
        "discount": str(r.discount),
        "currency": r.currency,
        "created": r.created,
    }
