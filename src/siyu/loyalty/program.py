"""The loyalty programme of a workspace: earning rates, bonuses, expiry and member tiers.

One document per workspace (``loyalty_programs``), validated by :class:`Program`; a workspace
without one runs the defaults below, modelled on what Smile.io and LoyaltyLion ship (1 point per
base-currency unit, 12-month expiry, four tiers over a rolling 12 months).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from siyu.errors import InvalidInput, NotFound
from siyu.loyalty.tables import loyalty_programs

BONUS_REASONS = ("signup", "checkin", "review", "ugc", "challenge", "birthday", "invite")


class Tier(BaseModel):
    """One member tier: reached at ``threshold`` growth value over the rolling window."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=40)
    threshold: Decimal = Field(ge=0)
    multiplier: Decimal = Field(Decimal(1), ge=0, le=100)
    monthly_target: Decimal | None = Field(
        None, ge=0, description="Growth value per calendar month for the streak upgrade rule."
    )
    benefits: list[str] = Field(default_factory=list)


class RewardOption(BaseModel):
    """What points buy: a coupon (issued at once) or a reward item (shipped by the shop)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")
    name: str = Field(min_length=1, max_length=200)
    points: int = Field(gt=0, le=10**12)
    coupon: dict[str, Any] | None = Field(
        None, description='A coupon spec ({"percent": 10}, ...) or {"campaign": "ID"}.'
    )
    item: str | None = Field(
        None, min_length=1, max_length=200, description="SKU of a reward item to ship."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> RewardOption:
        if (self.coupon is None) == (self.item is None):
            raise ValueError(f"reward {self.id!r}: give exactly one of coupon or item")
        if self.coupon is not None:
            from siyu.loyalty.coupons import parse_spec

            try:
                parse_spec(self.coupon, field=f"rewards.{self.id}.coupon")
            except InvalidInput as exc:
                raise ValueError(exc.message) from None
        return self


def _default_rewards() -> list[RewardOption]:
    return [
        RewardOption(
            id="free-shipping", name="Free shipping", points=300, coupon={"free_shipping": True}
        ),
        RewardOption(id="10-percent-off", name="10% off", points=500, coupon={"percent": 10}),
    ]


class Program(BaseModel):
    """Every rule the ledger and the tiers apply; extra keys are refused (typos are errors)."""

    model_config = ConfigDict(extra="forbid")

    points_per_unit: Decimal = Field(
        Decimal(1), ge=0, description="Points per unit of base currency spent."
    )
    market_points_per_unit: dict[str, Decimal] = Field(
        default_factory=dict, description="Override of points_per_unit by customer country."
    )
    expiry_months: int = Field(12, ge=1, le=120)
    earn_orders_since: datetime | None = Field(
        None, description="Orders placed before this moment earn nothing (programme launch)."
    )
    bonuses: dict[str, int] = Field(
        default_factory=lambda: {
            "signup": 100,
            "checkin": 5,
            "review": 50,
            "ugc": 80,
            "challenge": 100,
            "birthday": 200,
            "invite": 100,
        }
    )
    checkin_daily_cap: int = Field(1, ge=1, le=24, description="Check-ins per local day.")
    invite_multiplier: Decimal = Field(Decimal(2), ge=0, le=100)
    interaction_value: Decimal = Field(
        Decimal(1), ge=0, description="Growth value of one interaction event (vs 1 per unit)."
    )
    tiers: list[Tier] = Field(
        default_factory=lambda: [
            Tier(name="Regular", threshold=Decimal(0)),
            Tier(
                name="Silver",
                threshold=Decimal(500),
                multiplier=Decimal("1.25"),
                monthly_target=Decimal(100),
                benefits=["free shipping over 50"],
            ),
            Tier(
                name="Gold",
                threshold=Decimal(2000),
                multiplier=Decimal("1.5"),
                monthly_target=Decimal(300),
                benefits=["free shipping", "birthday gift"],
            ),
            Tier(
                name="Black",
                threshold=Decimal(8000),
                multiplier=Decimal(2),
                benefits=["free express shipping", "early access", "personal stylist"],
            ),
        ]
    )
    rewards: list[RewardOption] = Field(
        default_factory=_default_rewards,
        description="The reward catalogue: what points can be redeemed for.",
    )
    streak_months: int = Field(
        3,
        ge=0,
        le=12,
        description="Months in a row at a tier's monthly_target to reach it (0 off).",
    )

    @model_validator(mode="after")
    def _check(self) -> Program:
        names = [t.name for t in self.tiers]
        if not self.tiers:
            raise ValueError("tiers must name at least one tier")
        if len(set(names)) != len(names):
            raise ValueError(f"tier names must be unique, got {names}")
        thresholds = [t.threshold for t in self.tiers]
        if thresholds != sorted(thresholds) or thresholds[0] != 0:
            raise ValueError("tiers must be ordered by threshold, the first at threshold 0")
        ids = [r.id for r in self.rewards]
        if len(set(ids)) != len(ids):
            raise ValueError(f"reward ids must be unique, got {ids}")
        unknown = sorted(set(self.bonuses) - set(BONUS_REASONS))
        if unknown:
            raise ValueError(f"unknown bonus {unknown}; known: {', '.join(BONUS_REASONS)}")
        return self

    def reward(self, reward_id: str) -> RewardOption:
        for r in self.rewards:
            if r.id == reward_id:
                return r
        raise NotFound(
            f"No reward {reward_id!r} in the loyalty programme.",
            hint="List them with 'siyu loyalty rewards' (GET /api/loyalty/rewards).",
            field="reward_id",
        )

    def rank(self, tier: str) -> int:
        for i, t in enumerate(self.tiers):
            if t.name == tier:
                return i
        return 0


def parse_program(doc: dict[str, Any]) -> Program:
    """Validate a programme document, turning the first problem into one precise error."""
    try:
        return Program.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "program"
        raise InvalidInput(
            f"Loyalty programme: {where}: {first['msg']}.",
            hint="Fix the programme file (see docs/loyalty.md, 'The programme').",
            field=where,
        ) from None


def load_program(conn: sa.Connection, workspace_id: str) -> Program:
    """The stored programme, or the defaults."""
    doc = conn.execute(
        sa.select(loyalty_programs.c.config).where(loyalty_programs.c.workspace_id == workspace_id)
    ).scalar_one_or_none()
    return Program() if doc is None else parse_program(doc)


def save_program(
    conn: sa.Connection, workspace_id: str, doc: dict[str, Any], now: datetime
) -> Program:
    program = parse_program(doc)
    stored = program.model_dump(mode="json")
    conn.execute(loyalty_programs.delete().where(loyalty_programs.c.workspace_id == workspace_id))
    conn.execute(
        loyalty_programs.insert().values(workspace_id=workspace_id, config=stored, updated_at=now)
    )
    return program
