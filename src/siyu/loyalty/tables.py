"""Tables of the loyalty slice: points ledger, member tiers, paid membership, coupons.

The points ledger is append-only: a balance is the sum of a customer's rows, never a stored
number. Each earn row opens a lot (``lot_id`` = its idempotency key) with an expiry; every
consumption (redemption, expiry, refund reversal) is a negative row naming the lot it draws on,
so a lot's remainder is the sum of its rows and can never go below zero.
"""

from __future__ import annotations

import sqlalchemy as sa

from siyu.store.schema import JSONDoc, Money, metadata


def _ws() -> sa.Column[str]:
    return sa.Column("workspace_id", sa.String(40), nullable=False)


loyalty_programs = sa.Table(
    "loyalty_programs",
    metadata,
    sa.Column("workspace_id", sa.String(40), primary_key=True),
    sa.Column("config", JSONDoc, nullable=False),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
)
"""The workspace's loyalty programme (earning rates, bonuses, tiers); defaults when absent."""

loyalty_accounts = sa.Table(
    "loyalty_accounts",
    metadata,
    _ws(),
    sa.Column("customer_id", sa.String(40), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "customer_id"),
)
"""One row per member: the row a redemption locks (SELECT ... FOR UPDATE) on PostgreSQL."""

points_ledger = sa.Table(
    "points_ledger",
    metadata,
    _ws(),
    sa.Column("idempotency_key", sa.String(200), nullable=False),
    sa.Column("line_no", sa.Integer(), nullable=False),
    sa.Column("customer_id", sa.String(40), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("amount", sa.BigInteger(), nullable=False),
    sa.Column("contra_account", sa.String(60), nullable=False),
    sa.Column("lot_id", sa.String(200)),
    sa.Column("expires_at", sa.DateTime()),
    sa.Column("reason", sa.String(40), nullable=False),
    sa.Column("reference", sa.String(200)),
    sa.Column("shortfall", sa.BigInteger(), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "idempotency_key", "line_no"),
    sa.Index(None, "workspace_id", "customer_id"),
)

tier_states = sa.Table(
    "tier_states",
    metadata,
    _ws(),
    sa.Column("customer_id", sa.String(40), nullable=False),
    sa.Column("tier", sa.String(40), nullable=False),
    sa.Column("since", sa.DateTime(), nullable=False),
    sa.Column("review_at", sa.DateTime(), nullable=False),
    sa.Column("growth_value", Money, nullable=False),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "customer_id"),
)

tier_changes = sa.Table(
    "tier_changes",
    metadata,
    _ws(),
    sa.Column("change_id", sa.String(200), nullable=False),
    sa.Column("customer_id", sa.String(40), nullable=False),
    sa.Column("from_tier", sa.String(40)),
    sa.Column("to_tier", sa.String(40), nullable=False),
    sa.Column("rule", sa.String(40), nullable=False),
    sa.Column("growth_value", Money, nullable=False),
    sa.Column("changed_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "change_id"),
)

membership_plans = sa.Table(
    "membership_plans",
    metadata,
    _ws(),
    sa.Column("plan_id", sa.String(64), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("price", Money, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("period_months", sa.Integer(), nullable=False),
    sa.Column("grace_days", sa.Integer(), nullable=False),
    sa.Column("benefits", JSONDoc, nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "plan_id"),
)

memberships = sa.Table(
    "memberships",
    metadata,
    _ws(),
    sa.Column("customer_id", sa.String(40), nullable=False),
    sa.Column("plan_id", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", sa.DateTime(), nullable=False),
    sa.Column("ends_at", sa.DateTime(), nullable=False),
    sa.Column("auto_renew", sa.Boolean(), nullable=False),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "customer_id"),
)
"""A customer's current paid membership (one at a time); its periods are the history."""

membership_periods = sa.Table(
    "membership_periods",
    metadata,
    _ws(),
    sa.Column("idempotency_key", sa.String(200), nullable=False),
    sa.Column("customer_id", sa.String(40), nullable=False),
    sa.Column("plan_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("starts_at", sa.DateTime(), nullable=False),
    sa.Column("ends_at", sa.DateTime(), nullable=False),
    sa.Column("amount", Money, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("reference", sa.String(200)),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "idempotency_key"),
)

coupon_campaigns = sa.Table(
    "coupon_campaigns",
    metadata,
    _ws(),
    sa.Column("campaign_id", sa.String(64), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("spec", JSONDoc, nullable=False),
    sa.Column("valid_from", sa.DateTime()),
    sa.Column("valid_until", sa.DateTime()),
    sa.Column("valid_days", sa.Integer()),
    sa.Column("per_customer_limit", sa.Integer()),
    sa.Column("global_limit", sa.Integer()),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "campaign_id"),
)

coupons = sa.Table(
    "coupons",
    metadata,
    _ws(),
    sa.Column("code", sa.String(40), nullable=False),
    sa.Column("campaign_id", sa.String(64)),
    sa.Column("customer_id", sa.String(40)),
    sa.Column("spec", JSONDoc, nullable=False),
    sa.Column("max_uses", sa.Integer()),
    sa.Column("idempotency_key", sa.String(200), nullable=False),
    sa.Column("issued_at", sa.DateTime(), nullable=False),
    sa.Column("valid_from", sa.DateTime()),
    sa.Column("expires_at", sa.DateTime()),
    sa.PrimaryKeyConstraint("workspace_id", "code"),
    sa.UniqueConstraint("workspace_id", "idempotency_key"),
)

coupon_redemptions = sa.Table(
    "coupon_redemptions",
    metadata,
    _ws(),
    sa.Column("code", sa.String(40), nullable=False),
    sa.Column("order_id", sa.String(200), nullable=False),
    sa.Column("campaign_id", sa.String(64)),
    sa.Column("customer_id", sa.String(40)),
    sa.Column("discount", Money),
    sa.Column("currency", sa.String(3)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("message_id", sa.String(200)),
    sa.Column("redeemed_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "code", "order_id"),
)
"""One use of a code on one order: the same order seen twice (event and store) counts once."""
