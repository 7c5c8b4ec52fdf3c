"""fission: referrals, group buys, friend assists

Revision ID: 0010
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from siyu.store.schema import JSONDoc

revision: str = "0010"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = ("fission",)
depends_on: str | Sequence[str] | None = None

TABLES = (
    "referral_programs",
    "referral_codes",
    "referrals",
    "referral_changes",
    "group_buy_campaigns",
    "group_buys",
    "group_buy_members",
    "assist_campaigns",
    "assists",
    "assist_rewards",
)


def upgrade() -> None:
    op.create_table(
        "referral_programs",
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("config", JSONDoc, nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", name=op.f("pk_referral_programs")),
    )
    op.create_table(
        "referral_codes",
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "code", name=op.f("pk_referral_codes")),
    )
    op.create_index(
        op.f("ix_referral_codes_workspace_id_customer_id"),
        "referral_codes",
        ["workspace_id", "customer_id"],
        unique=False,
    )
    op.create_table(
        "referrals",
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("referral_id", sa.String(length=64), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("referrer_id", sa.String(length=40), nullable=False),
        sa.Column("friend_id", sa.String(length=40), nullable=False),
        sa.Column("friend_key", sa.String(length=40), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=True),
        sa.Column("flag", sa.String(length=40), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("order_id", sa.String(length=200), nullable=True),
        sa.Column("order_placed_at", sa.DateTime(), nullable=True),
        sa.Column("order_ip", sa.String(length=64), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("order_total", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("fx_rate", sa.Numeric(precision=24, scale=10), nullable=True),
        sa.Column("qualified_at", sa.DateTime(), nullable=True),
        sa.Column("hold_until", sa.DateTime(), nullable=True),
        sa.Column("rewarded_at", sa.DateTime(), nullable=True),
        sa.Column("rejected_at", sa.DateTime(), nullable=True),
        sa.Column("referrer_reward", sa.String(length=500), nullable=True),
        sa.Column("friend_reward", sa.String(length=500), nullable=True),
        sa.Column("reward_cost_base", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "referral_id", name=op.f("pk_referrals")),
        sa.UniqueConstraint(
            "workspace_id", "friend_key", name=op.f("uq_referrals_workspace_id_friend_key")
        ),
    )
    op.create_index(
        op.f("ix_referrals_workspace_id_friend_id"),
        "referrals",
        ["workspace_id", "friend_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_referrals_workspace_id_referrer_id"),
        "referrals",
        ["workspace_id", "referrer_id"],
        unique=False,
    )
    op.create_table(
        "referral_changes",
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("referral_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=True),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint(
            "workspace_id", "referral_id", "state", name=op.f("pk_referral_changes")
        ),
    )
    op.create_table(
        "group_buy_campaigns",
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("campaign_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("product_id", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("list_price", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("group_size", sa.Integer(), nullable=False),
        sa.Column("tiers", JSONDoc, nullable=False),
        sa.Column("time_limit_seconds", sa.Integer(), nullable=False),
        sa.Column("starts_at", sa.DateTime(), nullable=False),
        sa.Column("ends_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "campaign_id", name=op.f("pk_group_buy_campaigns")),
    )
    op.create_table(
        "group_buys",
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("group_id", sa.String(length=64), nullable=False),
        sa.Column("campaign_id", sa.String(length=64), nullable=False),
        sa.Column("leader_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("members", sa.Integer(), nullable=False),
        sa.Column("opened_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.Column("final_price", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "group_id", name=op.f("pk_group_buys")),
    )
    op.create_index(
        op.f("ix_group_buys_workspace_id_status_expires_at"),
        "group_buys",
        ["workspace_id", "status", "expires_at"],
        unique=False,
    )
    op.create_table(
        "group_buy_members",
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("group_id", sa.String(length=64), nullable=False),
        sa.Column("seat", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("member_key", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=200), nullable=True),
        sa.Column("paid_price", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("joined_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("confirmed_price", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("refund_amount", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint(
            "workspace_id", "group_id", "seat", name=op.f("pk_group_buy_members")
        ),
        sa.UniqueConstraint(
            "workspace_id",
            "group_id",
            "member_key",
            name=op.f("uq_group_buy_members_workspace_id_group_id_member_key"),
        ),
    )
    op.create_index(
        op.f("ix_group_buy_members_workspace_id_customer_id"),
        "group_buy_members",
        ["workspace_id", "customer_id"],
        unique=False,
    )
    op.create_table(
        "assist_campaigns",
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("campaign_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("thresholds", JSONDoc, nullable=False),
        sa.Column("daily_cap", sa.Integer(), nullable=False),
        sa.Column("new_users_only", sa.Boolean(), nullable=False),
        sa.Column("starts_at", sa.DateTime(), nullable=False),
        sa.Column("ends_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "campaign_id", name=op.f("pk_assist_campaigns")),
    )
    op.create_table(
        "assists",
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("campaign_id", sa.String(length=64), nullable=False),
        sa.Column("target_key", sa.String(length=40), nullable=False),
        sa.Column("helper_key", sa.String(length=40), nullable=False),
        sa.Column("target_id", sa.String(length=40), nullable=False),
        sa.Column("helper_id", sa.String(length=40), nullable=False),
        sa.Column("local_day", sa.Date(), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint(
            "workspace_id", "campaign_id", "target_key", "helper_key", name=op.f("pk_assists")
        ),
        sa.UniqueConstraint(
            "workspace_id",
            "campaign_id",
            "helper_key",
            "local_day",
            "slot",
            name=op.f("uq_assists_workspace_id_campaign_id_helper_key_local_day_slot"),
        ),
    )
    op.create_index(
        op.f("ix_assists_workspace_id_campaign_id_target_id"),
        "assists",
        ["workspace_id", "campaign_id", "target_id"],
        unique=False,
    )
    op.create_table(
        "assist_rewards",
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("campaign_id", sa.String(length=64), nullable=False),
        sa.Column("target_id", sa.String(length=40), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("reward_kind", sa.String(length=40), nullable=False),
        sa.Column("reward_id", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("granted_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint(
            "workspace_id", "campaign_id", "target_id", "threshold", name=op.f("pk_assist_rewards")
        ),
    )


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
