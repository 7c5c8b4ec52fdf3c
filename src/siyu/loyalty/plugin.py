"""The loyalty slice's built-in plugins: rewards, merge follower and profile section.

- rewards ``points`` ({"points": 100} or {"bonus": "invite"}) and ``coupon`` ({"amount": 20,
  "currency": "EUR"}, {"percent": 10}, {"campaign": "WELCOME"}, ...): what journeys, referrals,
  group buys and assists grant, idempotent on the grant's key (contract: ``siyu.rewards``);
- merge follower ``loyalty``: ledger, accounts, tiers, memberships and coupons follow One-ID;
- profile section ``loyalty``: balance, tier, paid membership and coupons on the golden record.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from siyu.errors import InvalidInput
from siyu.loyalty import coupons as coupon_mod
from siyu.loyalty import ledger
from siyu.loyalty.events import publish
from siyu.loyalty.program import BONUS_REASONS, load_program
from siyu.rewards import RewardGrant, RewardResult

if TYPE_CHECKING:
    from siyu.registry import Registry
    from siyu.store.database import Database


def _key(prefix: str, key: str) -> str:
    full = f"{prefix}:{key}"
    return full if len(full) <= 200 else f"{prefix}:{ledger.short_key(key)}"


class PointsReward:
    """Credit points: a fixed number, or a programme bonus (invites count double by default)."""

    def validate(self, spec: Mapping[str, Any]) -> list[str]:
        problems: list[str] = []
        unknown = set(spec) - {"points", "bonus", "expiry_months"}
        if unknown:
            problems.append(f"unknown keys {sorted(unknown)}; use points or bonus")
        if ("points" in spec) == ("bonus" in spec):
            problems.append('give either "points" (a positive whole number) or "bonus"')
        if "points" in spec:
            p = spec["points"]
            if isinstance(p, bool) or not isinstance(p, int) or p <= 0:
                problems.append(f"points must be a positive whole number, got {p!r}")
        if "bonus" in spec and spec["bonus"] not in BONUS_REASONS:
            problems.append(f"bonus must be one of {', '.join(BONUS_REASONS)}")
        return problems

    def grant(self, db: Database, grant: RewardGrant, *, now: datetime) -> RewardResult:
        problems = self.validate(grant.spec)
        if problems:
            raise InvalidInput("Points reward: " + "; ".join(problems) + ".", field="spec")
        with db.engine.connect() as conn:
            program = load_program(conn, grant.workspace_id)
        if "bonus" in grant.spec:
            bonus = str(grant.spec["bonus"])
            points = program.bonuses.get(bonus, 0)
            if bonus == "invite":
                points = int(points * program.invite_multiplier)
            reason = bonus
        else:
            points, reason = int(grant.spec["points"]), grant.reason
        if points <= 0:
            raise InvalidInput(f"The programme gives no points for bonus {reason!r}.")
        entry = ledger.earn(
            db,
            grant.workspace_id,
            grant.customer_id,
            points,
            key=_key("reward", grant.idempotency_key),
            reason=reason[:40],
            reference=grant.reference,
            now=now,
            expiry_months=int(grant.spec.get("expiry_months", program.expiry_months)),
        )
        publish(db, grant.workspace_id, customer_ids=[grant.customer_id])
        return RewardResult(
            entry.idempotency_key, entry.created, f"{entry.points} points ({entry.reason})"
        )


class CouponReward:
    """Issue a coupon code to the customer: an ad-hoc spec or a campaign's terms."""

    def validate(self, spec: Mapping[str, Any]) -> list[str]:
        try:
            parsed = coupon_mod.parse_spec({k: v for k, v in spec.items() if k != "valid_days"})
        except InvalidInput as exc:
            return [exc.message]
        if parsed.campaign and len(spec) > 1:
            return ['a campaign reference is {"campaign": "ID"} alone']
        return []

    def grant(self, db: Database, grant: RewardGrant, *, now: datetime) -> RewardResult:
        spec = dict(grant.spec)
        campaign = spec.get("campaign")
        issued = coupon_mod.issue(
            db,
            grant.workspace_id,
            key=_key("reward", grant.idempotency_key),
            now=now,
            customer_id=grant.customer_id,
            campaign_id=str(campaign) if campaign else None,
            spec=None if campaign else spec,
        )
        publish(db, grant.workspace_id, customer_ids=[grant.customer_id])
        return RewardResult(
            issued.code,
            issued.created,
            f"Coupon {issued.code} ({issued.spec.describe()})",
            code=issued.code,
        )


#: table -> whether the customer id is (part of) the primary key: then the survivor's row wins.
FOLLOWED: dict[str, bool] = {
    "points_ledger": False,
    "tier_changes": False,
    "membership_periods": False,
    "coupons": False,
    "coupon_redemptions": False,
    "loyalty_accounts": True,
    "tier_states": True,
    "memberships": True,
}


def follow_merges(conn: sa.Connection, workspace_id: str, moves: str) -> int:
    """Re-key every loyalty row of a merged customer to the survivor (set-based).

    The ledger moves whole, so the survivor's balance is the sum of both and lots keep their
    expiry. For one-row-per-customer tables (account, tier state, membership) the survivor's
    row wins when it has one (the next tier evaluation recomputes growth over the merged
    orders); otherwise the old row is re-keyed.
    """
    params = {"ws": workspace_id}
    changed = 0
    for table, keyed in FOLLOWED.items():
        if keyed:
            conn.execute(
                sa.text(
                    f"DELETE FROM {table} WHERE workspace_id = :ws AND customer_id IN ("
                    f"SELECT m.old_customer_id FROM {moves} m WHERE EXISTS (SELECT 1 FROM {table} "
                    "x WHERE x.workspace_id = :ws AND x.customer_id = m.new_customer_id) "
                    f"OR EXISTS (SELECT 1 FROM {moves} m2 JOIN {table} y ON "
                    "y.customer_id = m2.old_customer_id WHERE y.workspace_id = :ws AND "
                    "m2.new_customer_id = m.new_customer_id AND "
                    "m2.old_customer_id < m.old_customer_id))"
                ),
                params,
            )
        result = conn.execute(
            sa.text(
                f"UPDATE {table} SET customer_id = (SELECT m.new_customer_id FROM {moves} m "
                f"WHERE m.old_customer_id = {table}.customer_id) WHERE workspace_id = :ws AND "
                f"customer_id IN (SELECT old_customer_id FROM {moves} "
                "WHERE old_customer_id <> new_customer_id)"
            ),
            params,
        )
        changed += int(result.rowcount or 0)
    return changed


def profile_section(request: Any) -> dict[str, Any] | None:
    """Points balance, tier, paid membership and coupons, or None for a non-member."""
    from siyu.loyalty.summary import member_summary

    return member_summary(request.conn, request.workspace_id, request.customer_id)


def register(registry: Registry) -> None:
    registry.rewards.register("points", PointsReward())
    registry.rewards.register("coupon", CouponReward())
    registry.merge_followers.register("loyalty", follow_merges)
    sections = getattr(registry, "profile_sections", None)
    if sections is not None:
        sections.register("loyalty", profile_section)
