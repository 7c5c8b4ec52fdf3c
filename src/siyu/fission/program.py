"""The referral programme of a workspace: rewards for both sides, windows and fraud limits.

Stored as one JSON document in ``referral_programs``; the defaults apply until an operator sets
one (``siyu referrals program --set FILE``). A coupon reward given as ``{"kind": "coupon",
"amount": 20}`` (no currency) is issued in the currency of the friend's qualifying order, so a
friend in Japan gets JPY 20... which is why real programmes give ``amounts`` per currency
(``{"kind": "coupon", "amounts": {"EUR": 20, "JPY": 3000}}``): the friend's currency is picked.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.dialects.postgresql import insert as pg_insert

from siyu.errors import InvalidInput
from siyu.fission.common import check_reward, utcnow
from siyu.fission.tables import referral_programs

DEFAULT_REWARD: dict[str, Any] = {"kind": "coupon", "amount": 20}


class ReferralProgram(BaseModel):
    """Rules of the workspace's referral programme."""

    model_config = ConfigDict(extra="forbid")

    referrer_reward: dict[str, Any] = Field(default_factory=lambda: dict(DEFAULT_REWARD))
    friend_reward: dict[str, Any] = Field(default_factory=lambda: dict(DEFAULT_REWARD))
    attribution_days: int = Field(30, ge=1, le=365)
    """The friend's first order must come within this many days of the referral."""
    return_window_days: int = Field(30, ge=0, le=365)
    """Rewards wait until the qualifying order can no longer be returned."""
    min_order_base: Decimal = Field(Decimal(0), ge=0)
    """Smallest qualifying first order, in the workspace's base currency."""
    burst_limit: int = Field(3, ge=1)
    """More referred purchases than this from one IP within ``burst_hours`` are flagged."""
    burst_hours: int = Field(24, ge=1)
    points_value_base: Decimal = Field(Decimal("0.01"), ge=0)
    """What one point costs, in the base currency (for the cost per referred customer)."""

    def reward_for(self, side: str, currency: str | None) -> dict[str, Any]:
        """The reward of ``side`` (referrer|friend) resolved to the friend's order currency."""
        reward = dict(self.referrer_reward if side == "referrer" else self.friend_reward)
        amounts = reward.pop("amounts", None)
        if amounts is not None and currency:
            if currency in amounts:
                reward["amount"], reward["currency"] = amounts[currency], currency
            else:
                reward["amounts"] = amounts
        elif "amount" in reward and "currency" not in reward and currency:
            reward["currency"] = currency
        return reward


def parse_program(doc: Mapping[str, Any], base_currency: str) -> ReferralProgram:
    try:
        program = ReferralProgram.model_validate(dict(doc))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(
            f"Referral programme field '{where}': {first['msg']}.",
            hint="See docs/fission.md for the programme fields and their limits.",
            field=where,
        ) from None
    check_reward(program.referrer_reward, "referrer_reward", currency=base_currency)
    check_reward(program.friend_reward, "friend_reward", currency=base_currency)
    return program


def load_program(conn: sa.Connection, workspace_id: str) -> ReferralProgram:
    doc = conn.execute(
        sa.select(referral_programs.c.config).where(
            referral_programs.c.workspace_id == workspace_id
        )
    ).scalar()
    return ReferralProgram.model_validate(doc or {})


def save_program(
    conn: sa.Connection, workspace_id: str, doc: Mapping[str, Any], base_currency: str
) -> ReferralProgram:
    program = parse_program(doc, base_currency)
    config = program.model_dump(mode="json")
    stmt = pg_insert(referral_programs).values(
        workspace_id=workspace_id, config=config, updated_at=utcnow()
    )
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["workspace_id"],
            set_={"config": stmt.excluded.config, "updated_at": stmt.excluded.updated_at},
        )
    )
    return program
