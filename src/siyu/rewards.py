"""The contract of the ``rewards`` extension point (coupons, points, reward items).

A journey step, a referral, a group buy or a friend assist grants a reward through
``registry.rewards.get(kind)``. The loyalty slice registers the built-in kinds; any plugin can add
more. ``grant`` must be idempotent on ``RewardGrant.idempotency_key``: granting twice under the same
key returns the first result with ``created=False`` and issues nothing new.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from siyu.store.database import Database


@dataclass(frozen=True)
class RewardGrant:
    """Give ``spec`` (kind-specific, e.g. {"points": 100} or {"amount": 20, "currency": "EUR"})."""

    workspace_id: str
    customer_id: str
    spec: Mapping[str, Any]
    idempotency_key: str
    reason: str  # e.g. "journey", "referral", "group_buy", "assist"
    reference: str | None = None  # e.g. a journey step, referral id or order id


@dataclass(frozen=True)
class RewardResult:
    reward_id: str
    created: bool  # False when the idempotency key had already been used
    description: str  # human-readable, e.g. "Coupon WELCOME-7KQ2 (EUR 20 off)"
    code: str | None = None  # coupon code, when the reward is a coupon


class Reward(Protocol):
    """One kind of reward. ``validate`` is called when a journey or campaign is published."""

    def validate(self, spec: Mapping[str, Any]) -> list[str]:
        """Problems with ``spec`` (empty when valid), each saying what to change."""
        ...

    def grant(self, db: Database, grant: RewardGrant, *, now: datetime) -> RewardResult:
        """Issue the reward exactly once per idempotency key."""
        ...
