"""Loyalty endpoints: programme, members (points, bonuses, membership), plans, coupons, sync."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from siyu.api.deps import AdminWorkspace, ReadWorkspace, RuntimeDep, WriteWorkspace
from siyu.errors import NotFound
from siyu.loyalty import actions, coupons, ledger, membership
from siyu.loyalty.program import load_program, save_program
from siyu.loyalty.summary import member_summary
from siyu.loyalty.sync import sync

router = APIRouter(prefix="/api", tags=["loyalty"])

Key = Field(min_length=1, max_length=200, description="Idempotency key: a retry posts nothing new.")


class PointsIn(BaseModel):
    points: int = Field(gt=0, le=ledger.MAX_POINTS)
    idempotency_key: str = Key
    reason: str = Field("manual", min_length=1, max_length=40)
    reference: str | None = Field(None, max_length=200)


class RewardIn(BaseModel):
    idempotency_key: str = Key


class BonusIn(BaseModel):
    bonus: str = Field(min_length=1, max_length=40)
    reference: str | None = Field(None, max_length=200)


class MembershipIn(BaseModel):
    plan_id: str = Field(min_length=1, max_length=64)
    idempotency_key: str = Key
    reference: str | None = Field(None, max_length=200)
    auto_renew: bool = True


class RenewIn(BaseModel):
    idempotency_key: str = Key
    reference: str | None = Field(None, max_length=200)


class CancelIn(BaseModel):
    immediate: bool = False


class PlanIn(BaseModel):
    plan_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    name: str = Field(min_length=1, max_length=200)
    price: Decimal = Field(ge=0)
    currency: str
    period_months: int = Field(ge=1, le=60)
    grace_days: int = Field(7, ge=0, le=90)
    benefits: list[str] = Field(default_factory=list, max_length=50)


class CampaignIn(BaseModel):
    campaign_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    name: str = Field(min_length=1, max_length=200)
    spec: dict[str, Any]
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    valid_days: int | None = None
    per_customer_limit: int | None = 1
    global_limit: int | None = None


class IssueIn(BaseModel):
    idempotency_key: str = Key
    customer_id: str | None = Field(None, max_length=40)
    campaign_id: str | None = Field(None, max_length=64)
    spec: dict[str, Any] | None = None
    max_uses: int | None = Field(1, ge=1)


class BasketIn(BaseModel):
    customer_id: str | None = Field(None, max_length=40)
    subtotal: Decimal = Field(ge=0)
    currency: str
    shipping: Decimal = Field(Decimal(0), ge=0)


class RedeemCouponIn(BasketIn):
    order_id: str = Field(min_length=1, max_length=200)


@router.get("/loyalty/program")
def get_program(ws: ReadWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    """The workspace's programme (the defaults when none was saved)."""
    with rt.db.engine.connect() as conn:
        return load_program(conn, ws.workspace_id).model_dump(mode="json")


@router.put("/loyalty/program")
def put_program(body: dict[str, Any], ws: AdminWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    """Replace the programme; every field is checked, unknown keys are refused."""
    with rt.db.engine.begin() as conn:
        program = save_program(conn, ws.workspace_id, body, actions.utcnow())
    return program.model_dump(mode="json")


@router.post("/loyalty/sync")
def run_sync(ws: WriteWorkspace, rt: RuntimeDep) -> dict[str, int]:
    """Order points, refund reversals, expiry, birthdays, coupon uses, tiers, lapses, events."""
    report = sync(rt.db, ws.workspace_id, now=actions.utcnow(), settings=rt.settings)
    return report.as_dict()


@router.get("/loyalty/members/{customer_id}")
def get_member(customer_id: str, ws: ReadWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    """Balance, next expiry, tier, paid membership and coupons of one customer."""
    with rt.db.engine.connect() as conn:
        summary = member_summary(conn, ws.workspace_id, customer_id)
    if summary is None:
        raise NotFound(f"Customer {customer_id!r} has no loyalty record.")
    return summary


@router.get("/loyalty/members/{customer_id}/points")
def get_points(customer_id: str, ws: ReadWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    """The customer's postings, newest first (one line per idempotency key)."""
    with rt.db.engine.connect() as conn:
        balance = ledger.balances(conn, ws.workspace_id, [customer_id])[customer_id]
        rows = ledger.history(conn, ws.workspace_id, customer_id)
    return {
        "customer_id": customer_id,
        "balance": balance,
        "postings": [
            {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in r.items()}
            for r in rows
        ],
    }


@router.post("/loyalty/members/{customer_id}/points/earn", status_code=201)
def earn(customer_id: str, body: PointsIn, ws: WriteWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    return actions.earn_points(
        rt.db,
        rt.settings,
        ws.workspace_id,
        customer_id,
        body.points,
        key=body.idempotency_key,
        reason=body.reason,
        reference=body.reference,
    )


@router.post("/loyalty/members/{customer_id}/points/redeem", status_code=201)
def redeem(customer_id: str, body: PointsIn, ws: WriteWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    """Spend points (409 insufficient_points when the balance is short: never overspent)."""
    return actions.redeem_points(
        rt.db,
        rt.settings,
        ws.workspace_id,
        customer_id,
        body.points,
        key=body.idempotency_key,
        reason=body.reason if body.reason != "manual" else "reward",
        reference=body.reference,
    )


@router.get("/loyalty/rewards")
def list_rewards(ws: ReadWorkspace, rt: RuntimeDep) -> list[dict[str, Any]]:
    """The reward catalogue: what points can be redeemed for."""
    with rt.db.engine.connect() as conn:
        rewards = load_program(conn, ws.workspace_id).rewards
    return [r.model_dump(mode="json", exclude_none=True) for r in rewards]


@router.post("/loyalty/members/{customer_id}/rewards/{reward_id}", status_code=201)
def redeem_reward(
    customer_id: str, reward_id: str, body: RewardIn, ws: WriteWorkspace, rt: RuntimeDep
) -> dict[str, Any]:
    """Spend points on a reward: a coupon code, or an item to ship (409 when points are short)."""
    return actions.redeem_reward(
        rt.db, rt.settings, ws.workspace_id, customer_id, reward_id, key=body.idempotency_key
    )


@router.post("/loyalty/members/{customer_id}/bonuses", status_code=201)
def bonus(customer_id: str, body: BonusIn, ws: WriteWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    """Sign-up, check-in (local-day cap), review, ugc, challenge, birthday or invite points."""
    return actions.award_bonus(
        rt.db, rt.settings, ws.workspace_id, customer_id, body.bonus, reference=body.reference
    )


@router.post("/loyalty/members/{customer_id}/membership", status_code=201)
def start_membership(
    customer_id: str, body: MembershipIn, ws: WriteWorkspace, rt: RuntimeDep
) -> dict[str, Any]:
    return actions.start_membership(
        rt.db,
        rt.settings,
        ws.workspace_id,
        customer_id,
        body.plan_id,
        key=body.idempotency_key,
        reference=body.reference,
        auto_renew=body.auto_renew,
    )


@router.post("/loyalty/members/{customer_id}/membership/renew")
def renew_membership(
    customer_id: str, body: RenewIn, ws: WriteWorkspace, rt: RuntimeDep
) -> dict[str, Any]:
    return actions.renew_membership(
        rt.db,
        rt.settings,
        ws.workspace_id,
        customer_id,
        key=body.idempotency_key,
        reference=body.reference,
    )


@router.post("/loyalty/members/{customer_id}/membership/cancel")
def cancel_membership(
    customer_id: str, body: CancelIn, ws: WriteWorkspace, rt: RuntimeDep
) -> dict[str, Any]:
    return actions.cancel_membership(
        rt.db, rt.settings, ws.workspace_id, customer_id, immediate=body.immediate
    )


def _plan(p: membership.Plan) -> dict[str, Any]:
    return {**p.__dict__, "price": str(p.price)}


@router.get("/loyalty/plans")
def list_plans(ws: ReadWorkspace, rt: RuntimeDep) -> list[dict[str, Any]]:
    with rt.db.engine.connect() as conn:
        return [_plan(p) for p in membership.list_plans(conn, ws.workspace_id)]


@router.post("/loyalty/plans", status_code=201)
def create_plan(body: PlanIn, ws: AdminWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    with rt.db.engine.begin() as conn:
        plan = membership.create_plan(
            conn,
            ws.workspace_id,
            body.plan_id,
            name=body.name,
            price=body.price,
            currency=body.currency,
            period_months=body.period_months,
            grace_days=body.grace_days,
            benefits=body.benefits,
            now=actions.utcnow(),
        )
    return _plan(plan)


def _campaign(c: coupons.Campaign) -> dict[str, Any]:
    return {
        **{k: v for k, v in c.__dict__.items() if k != "spec"},
        "spec": c.spec.model_dump(mode="json", exclude_none=True),
        "description": c.spec.describe(),
    }


@router.post("/coupons/campaigns", status_code=201)
def create_campaign(body: CampaignIn, ws: AdminWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    with rt.db.engine.begin() as conn:
        campaign = coupons.create_campaign(
            conn,
            ws.workspace_id,
            body.campaign_id,
            name=body.name,
            spec=body.spec,
            now=actions.utcnow(),
            valid_from=body.valid_from,
            valid_until=body.valid_until,
            valid_days=body.valid_days,
            per_customer_limit=body.per_customer_limit,
            global_limit=body.global_limit,
        )
    return _campaign(campaign)


@router.get("/coupons/campaigns/{campaign_id}")
def get_campaign(campaign_id: str, ws: ReadWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    with rt.db.engine.connect() as conn:
        return _campaign(coupons.get_campaign(conn, ws.workspace_id, campaign_id))


@router.post("/coupons", status_code=201)
def issue_coupon(body: IssueIn, ws: WriteWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    """Issue a code from a campaign or an ad-hoc spec, once per idempotency key."""
    return actions.issue_coupon(
        rt.db,
        rt.settings,
        ws.workspace_id,
        key=body.idempotency_key,
        customer_id=body.customer_id,
        campaign_id=body.campaign_id,
        spec=body.spec,
        max_uses=body.max_uses,
    )


@router.post("/coupons/{code}/quote")
def quote_coupon(code: str, body: BasketIn, ws: ReadWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    """What the code takes off this basket now (409 coupon_refused with the reason)."""
    with rt.db.engine.connect() as conn:
        q = coupons.quote(
            conn,
            ws.workspace_id,
            code,
            customer_id=body.customer_id,
            subtotal=body.subtotal,
            currency=body.currency,
            shipping=body.shipping,
            now=actions.utcnow(),
        )
    return {**q.__dict__, "discount": str(q.discount)}


@router.post("/coupons/{code}/redeem", status_code=201)
def redeem_coupon(
    code: str, body: RedeemCouponIn, ws: WriteWorkspace, rt: RuntimeDep
) -> dict[str, Any]:
    """Use the code on an order: checked and recorded under locks, never beyond its limits."""
    return actions.redeem_coupon(
        rt.db,
        rt.settings,
        ws.workspace_id,
        code,
        order_id=body.order_id,
        customer_id=body.customer_id,
        subtotal=body.subtotal,
        currency=body.currency,
        shipping=body.shipping,
    )
