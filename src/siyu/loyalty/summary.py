"""A member at a glance: balance, next expiry, tier, paid membership and coupons.

Used by the profile section, ``siyu loyalty show`` and ``GET /api/loyalty/members/{id}``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from siyu.loyalty.coupons import owned_by
from siyu.loyalty.tables import (
    loyalty_accounts,
    membership_plans,
    memberships,
    points_ledger,
    tier_states,
)


def member_summary(
    conn: sa.Connection, workspace_id: str, customer_id: str
) -> dict[str, Any] | None:
    """Everything loyalty knows about one customer, or None when it knows nothing."""
    lc = points_ledger.c
    account = conn.execute(
        sa.select(loyalty_accounts.c.created_at).where(
            loyalty_accounts.c.workspace_id == workspace_id,
            loyalty_accounts.c.customer_id == customer_id,
        )
    ).first()
    tier = conn.execute(
        sa.select(tier_states).where(
            tier_states.c.workspace_id == workspace_id, tier_states.c.customer_id == customer_id
        )
    ).first()
    m, p = memberships.c, membership_plans.c
    membership = conn.execute(
        sa.select(m.plan_id, p.name, m.status, m.started_at, m.ends_at, m.auto_renew, p.benefits)
        .join(
            membership_plans,
            sa.and_(p.workspace_id == m.workspace_id, p.plan_id == m.plan_id),
        )
        .where(m.workspace_id == workspace_id, m.customer_id == customer_id)
    ).first()
    coupon_list = owned_by(conn, workspace_id, customer_id)
    if account is None and tier is None and membership is None and not coupon_list:
        return None
    balance = conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(lc.amount), 0)).where(
            lc.workspace_id == workspace_id, lc.customer_id == customer_id
        )
    ).scalar_one()
    lots = (
        sa.select(
            lc.lot_id, sa.func.max(lc.expires_at).label("e"), sa.func.sum(lc.amount).label("r")
        )
        .where(
            lc.workspace_id == workspace_id, lc.customer_id == customer_id, lc.lot_id.is_not(None)
        )
        .group_by(lc.lot_id)
        .having(sa.func.sum(lc.amount) > 0)
        .subquery()
    )
    next_expiry = conn.execute(sa.select(lots.c.e, lots.c.r).order_by(lots.c.e).limit(1)).first()
    return {
        "customer_id": customer_id,
        "points": {
            "balance": int(balance),
            "next_expiry": (
                {"at": next_expiry[0].isoformat(), "points": int(next_expiry[1])}
                if next_expiry is not None and next_expiry[0] is not None
                else None
            ),
        },
        "tier": (
            {
                "name": tier.tier,
                "since": tier.since.isoformat(),
                "review_at": tier.review_at.isoformat(),
                "growth_value": str(tier.growth_value),
            }
            if tier is not None
            else None
        ),
        "membership": (
            {
                "plan_id": membership.plan_id,
                "plan": membership.name,
                "status": membership.status,
                "started_at": membership.started_at.isoformat(),
                "ends_at": membership.ends_at.isoformat(),
                "auto_renew": bool(membership.auto_renew),
                "benefits": membership.benefits,
            }
            if membership is not None
            else None
        ),
        "coupons": [
            {
                **c,
                "issued_at": c["issued_at"].isoformat(),
                "expires_at": c["expires_at"].isoformat() if c["expires_at"] else None,
            }
            for c in coupon_list
        ],
    }
