"""Redeeming points for what the programme's reward catalogue offers: coupons or reward items.

One redemption is one ledger posting (``reward:<key>``, FIFO by lot under the account lock, so
it can never overspend) followed, for a coupon reward, by one coupon issued under the same key.
Both steps are idempotent on the key, so a retry after a crash between them completes the
redemption instead of charging twice. A reward item is a posting whose reason is ``item`` and
whose reference is the SKU: the ``Points Redeemed`` event tells the shop what to ship.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from siyu.loyalty import coupons, ledger
from siyu.loyalty.program import load_program
from siyu.store.database import Database


@dataclass(frozen=True)
class RewardRedemption:
    """What the customer got for their points."""

    reward_id: str
    name: str
    entry: ledger.Entry
    coupon: coupons.Issued | None
    item: str | None


def redeem_reward(
    db: Database,
    workspace_id: str,
    customer_id: str,
    reward_id: str,
    *,
    key: str,
    now: datetime,
) -> RewardRedemption:
    """Spend the reward's points, then hand over the coupon (or name the item to ship)."""
    ledger.require_key(key)
    with db.engine.connect() as conn:
        reward = load_program(conn, workspace_id).reward(reward_id)
    full_key = f"reward:{key}" if len(key) <= 193 else f"reward:{ledger.short_key(key)}"
    entry = ledger.redeem(
        db,
        workspace_id,
        customer_id,
        reward.points,
        key=full_key,
        now=now,
        reason="coupon" if reward.coupon is not None else "item",
        reference=reward.item if reward.item is not None else reward.id,
    )
    issued: coupons.Issued | None = None
    if reward.coupon is not None:
        campaign = reward.coupon.get("campaign")
        issued = coupons.issue(
            db,
            workspace_id,
            key=full_key,
            now=now,
            customer_id=customer_id,
            campaign_id=str(campaign) if campaign else None,
            spec=None if campaign else reward.coupon,
        )
    return RewardRedemption(reward.id, reward.name, entry, issued, reward.item)
