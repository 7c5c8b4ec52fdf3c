"""Fission endpoints: invite codes, referrals and their review, group buys, friend assists.

Every state change is committed first and then published as an event through the pipeline
(:func:`siyu.fission.events.publish`), so journeys and analytics see it in the event log.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from siyu.api.deps import AdminWorkspace, ReadWorkspace, RuntimeDep, WriteWorkspace
from siyu.fission import assists, groupbuys, referrals
from siyu.fission.common import utcnow
from siyu.fission.events import publish
from siyu.fission.metrics import fission_metrics
from siyu.fission.program import load_program, save_program
from siyu.fission.service import process
from siyu.runtime import Runtime

router = APIRouter(prefix="/api/fission", tags=["fission"])

CampaignId = Field(None, pattern=r"^[A-Za-z0-9_-]{1,64}$")


class CodeIn(BaseModel):
    customer_id: str = Field(min_length=1, max_length=40)


class ReferIn(BaseModel):
    code: str = Field(min_length=1, max_length=40)
    friend_id: str = Field(min_length=1, max_length=40)
    ip: str | None = Field(None, max_length=64)


class ReviewIn(BaseModel):
    approve: bool
    reason: str | None = Field(None, min_length=1, max_length=40)


class GroupBuyCampaignIn(BaseModel):
    campaign_id: str | None = CampaignId
    name: str = Field(min_length=1, max_length=200)
    product_id: str = Field(min_length=1, max_length=200)
    currency: str
    list_price: Decimal
    group_size: int
    price: Decimal | None = None
    discount_pct: Decimal | None = None
    tiers: list[dict[str, Any]] | None = None
    time_limit_hours: float = 24
    starts_at: datetime | None = None
    ends_at: datetime | None = None


class OpenIn(BaseModel):
    leader_id: str = Field(min_length=1, max_length=40)
    order_id: str | None = Field(None, max_length=200)


class JoinIn(BaseModel):
    customer_id: str = Field(min_length=1, max_length=40)
    order_id: str | None = Field(None, max_length=200)


class AssistCampaignIn(BaseModel):
    campaign_id: str | None = CampaignId
    name: str = Field(min_length=1, max_length=200)
    thresholds: list[dict[str, Any]]
    daily_cap: int = 3
    new_users_only: bool = False
    starts_at: datetime | None = None
    ends_at: datetime | None = None


class AssistIn(BaseModel):
    target_id: str = Field(min_length=1, max_length=40)
    helper_id: str = Field(min_length=1, max_length=40)


def _naive(moment: datetime | None) -> datetime | None:
    """Stored times are naive UTC: an aware time is converted, a naive one is taken as UTC."""
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def _published(rt: Runtime, workspace_id: str, **scope: str) -> None:
    """Publish the events of the object a request changed (``scope``), or all pending."""
    publish(rt.db, workspace_id, settings=rt.settings, scope=scope or None)


# -- referrals ----------------------------------------------------------------------------------


@router.get("/program")
def get_program(ws: ReadWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    """The referral programme (rewards of both sides, windows, fraud limits)."""
    with rt.db.engine.connect() as conn:
        return load_program(conn, ws.workspace_id).model_dump(mode="json")


@router.put("/program")
def put_program(body: dict[str, Any], ws: AdminWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    """Replace the referral programme; every field is checked, unknown keys are refused."""
    with rt.db.engine.begin() as conn:
        program = save_program(conn, ws.workspace_id, body, ws.base_currency)
    return program.model_dump(mode="json")


@router.post("/codes")
def post_code(
    body: CodeIn, ws: WriteWorkspace, rt: RuntimeDep, response: Response
) -> dict[str, Any]:
    """The customer's invite code and link (created on first request: 201)."""
    code = referrals.invite_code(rt.db, ws.workspace_id, body.customer_id)
    response.status_code = 201 if code.created else 200
    return {
        "code": code.code,
        "customer_id": code.customer_id,
        "link": code.link(rt.settings.public_base_url),
        "created": code.created,
    }


@router.post("/referrals")
def post_referral(
    body: ReferIn, ws: WriteWorkspace, rt: RuntimeDep, response: Response
) -> dict[str, Any]:
    """A friend arrived through a code or link: 201 with the referral (pending, or rejected with
    its reason), 200 with the friend's first referral when they were referred before."""
    row, created = referrals.refer(rt.db, ws.workspace_id, body.code, body.friend_id, ip=body.ip)
    if created:
        _published(rt, ws.workspace_id, referral_id=str(row["referral_id"]))
    response.status_code = 201 if created else 200
    return {**row, "created": created}


@router.get("/referrals")
def get_referrals(
    ws: ReadWorkspace,
    rt: RuntimeDep,
    state: str | None = None,
    referrer_id: str | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    """Referrals, newest first, by state (pending, qualified, rewarded, rejected) or referrer."""
    with rt.db.engine.connect() as conn:
        rows = referrals.list_referrals(
            conn,
            ws.workspace_id,
            state=state,
            referrer_id=referrer_id,
            limit=max(1, min(limit, 1000)),
        )
    return {"referrals": rows}


@router.get("/referrals/{referral_id}")
def get_referral(referral_id: str, ws: ReadWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    """One referral with its history of states."""
    with rt.db.engine.connect() as conn:
        return referrals.get_referral(conn, ws.workspace_id, referral_id)


@router.post("/referrals/{referral_id}/review")
def review_referral(
    referral_id: str, body: ReviewIn, ws: AdminWorkspace, rt: RuntimeDep
) -> dict[str, Any]:
    """Approve (clear the fraud flag) or reject a referral not yet rewarded."""
    row = referrals.review(
        rt.db, ws.workspace_id, referral_id, approve=body.approve, reason=body.reason
    )
    _published(rt, ws.workspace_id, referral_id=referral_id)
    return row


@router.post("/process")
def run_process(ws: WriteWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    """Qualify and reward referrals, settle due group buys, repair assist rewards, publish."""
    return process(rt.db, ws.workspace_id, now=utcnow(), settings=rt.settings)


# -- group buys ---------------------------------------------------------------------------------


@router.get("/groupbuys/campaigns")
def get_groupbuy_campaigns(ws: ReadWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    """Group-buy campaigns, oldest first."""
    with rt.db.engine.connect() as conn:
        return {"campaigns": groupbuys.list_campaigns(conn, ws.workspace_id)}


@router.post("/groupbuys/campaigns", status_code=201)
def post_groupbuy_campaign(
    body: GroupBuyCampaignIn, ws: AdminWorkspace, rt: RuntimeDep
) -> dict[str, Any]:
    """Create a campaign: product, group size, price or discount (or tiers), time limit."""
    with rt.db.engine.begin() as conn:
        return groupbuys.create_campaign(
            conn,
            ws.workspace_id,
            name=body.name,
            product_id=body.product_id,
            currency=body.currency,
            list_price=body.list_price,
            group_size=body.group_size,
            price=body.price,
            discount_pct=body.discount_pct,
            tiers=body.tiers,
            time_limit_hours=body.time_limit_hours,
            starts_at=_naive(body.starts_at),
            ends_at=_naive(body.ends_at),
            campaign_id=body.campaign_id,
        )


@router.get("/groupbuys/campaigns/{campaign_id}")
def get_groupbuy_campaign(campaign_id: str, ws: ReadWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    """One group-buy campaign."""
    with rt.db.engine.connect() as conn:
        return groupbuys.get_campaign(conn, ws.workspace_id, campaign_id)


@router.post("/groupbuys/campaigns/{campaign_id}/groups", status_code=201)
def open_group(
    campaign_id: str, body: OpenIn, ws: WriteWorkspace, rt: RuntimeDep
) -> dict[str, Any]:
    """The leader opens a group (seat 1); friends join it by its id."""
    group = groupbuys.open_group(
        rt.db, ws.workspace_id, campaign_id, body.leader_id, order_id=body.order_id
    )
    _published(rt, ws.workspace_id, group_id=str(group["group_id"]))
    return group


@router.get("/groupbuys/groups")
def get_groups(
    ws: ReadWorkspace, rt: RuntimeDep, campaign_id: str | None = None, status: str | None = None
) -> dict[str, Any]:
    """Groups by campaign and status (open, completed, expired)."""
    with rt.db.engine.connect() as conn:
        rows = groupbuys.list_groups(conn, ws.workspace_id, campaign_id=campaign_id, status=status)
    return {"groups": rows}


@router.get("/groupbuys/groups/{group_id}")
def get_group(group_id: str, ws: ReadWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    """One group with its members (seat, paid, confirmed price, refund owed)."""
    with rt.db.engine.connect() as conn:
        return groupbuys.get_group(conn, ws.workspace_id, group_id)


@router.post("/groupbuys/groups/{group_id}/join")
def join_group(group_id: str, body: JoinIn, ws: WriteWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    """Take the next free seat; the last seat completes the group. 409 when full or closed."""
    group = groupbuys.join_group(
        rt.db, ws.workspace_id, group_id, body.customer_id, order_id=body.order_id
    )
    _published(rt, ws.workspace_id, group_id=group_id)
    return group


@router.post("/groupbuys/settle")
def settle_groups(ws: WriteWorkspace, rt: RuntimeDep) -> dict[str, int]:
    """Settle groups whose time ran out: completed at the tier reached, or voided."""
    counts = groupbuys.close_due(rt.db, ws.workspace_id)
    _published(rt, ws.workspace_id)
    return counts


# -- assists ------------------------------------------------------------------------------------


@router.get("/assists/campaigns")
def get_assist_campaigns(ws: ReadWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    """Assist campaigns, oldest first."""
    with rt.db.engine.connect() as conn:
        return {"campaigns": assists.list_campaigns(conn, ws.workspace_id)}


@router.post("/assists/campaigns", status_code=201)
def post_assist_campaign(
    body: AssistCampaignIn, ws: AdminWorkspace, rt: RuntimeDep
) -> dict[str, Any]:
    """Create a campaign: thresholds with rewards, daily cap per helper, new users only."""
    with rt.db.engine.begin() as conn:
        return assists.create_campaign(
            conn,
            ws.workspace_id,
            name=body.name,
            thresholds=body.thresholds,
            base_currency=ws.base_currency,
            daily_cap=body.daily_cap,
            new_users_only=body.new_users_only,
            starts_at=_naive(body.starts_at),
            ends_at=_naive(body.ends_at),
            campaign_id=body.campaign_id,
        )


@router.get("/assists/campaigns/{campaign_id}")
def get_assist_campaign(campaign_id: str, ws: ReadWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    """One assist campaign."""
    with rt.db.engine.connect() as conn:
        return assists.get_campaign(conn, ws.workspace_id, campaign_id)


@router.post("/assists/campaigns/{campaign_id}/assists", status_code=201)
def post_assist(
    campaign_id: str, body: AssistIn, ws: WriteWorkspace, rt: RuntimeDep
) -> dict[str, Any]:
    """A helper assists a target: the target's count and the rewards unlocked by this assist."""
    result = assists.assist(rt.db, ws.workspace_id, campaign_id, body.target_id, body.helper_id)
    _published(rt, ws.workspace_id, campaign_id=campaign_id, target_id=str(result["target_id"]))
    return result


@router.get("/assists/campaigns/{campaign_id}/targets/{target_id}")
def get_assist_status(
    campaign_id: str, target_id: str, ws: ReadWorkspace, rt: RuntimeDep
) -> dict[str, Any]:
    """A target's helpers, thresholds and the rewards unlocked so far."""
    with rt.db.engine.connect() as conn:
        return assists.progress(conn, ws.workspace_id, campaign_id, target_id)


# -- metrics ------------------------------------------------------------------------------------


@router.get("/metrics")
def get_metrics(
    ws: ReadWorkspace,
    rt: RuntimeDep,
    since: datetime | None = None,
    until: datetime | None = None,
    top: int = 10,
) -> dict[str, Any]:
    """Fission metrics of [since, until) (default: the last 30 days) and the top inviters."""
    end = _naive(until) or utcnow()
    start = _naive(since) or end - timedelta(days=30)
    return fission_metrics(rt.db, ws.workspace_id, start, end, top=top).to_dict()
