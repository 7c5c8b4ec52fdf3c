"""Tables of the fission slice: referrals, group buys (拼团) and friend assists (助力).

Every uniqueness rule that protects money is a database constraint, so that it holds under
concurrent requests on PostgreSQL as well as in one DuckDB process:

- a friend is referred once: ``referrals`` is unique on ``friend_key`` (the friend's customer id
  when the referral was made; ``friend_id`` follows One-ID merges, ``friend_key`` never changes);
- the last free place of a group cannot be taken twice: a member row is keyed by its seat number
  (1..size), so two joins racing for the last seat collide on the primary key;
- a helper assists a target once (primary key) and at most ``daily_cap`` times a local day
  (unique slot 1..cap per helper, campaign and local day);
- an assist reward is recorded once per target and threshold; the reward itself is granted under
  an idempotency key, so a crash between grant and record cannot issue it twice.
"""

from __future__ import annotations

import sqlalchemy as sa

from siyu.store.schema import JSONDoc, Money, metadata


def _ws() -> sa.Column[str]:
    return sa.Column("workspace_id", sa.String(40), nullable=False)


referral_programs = sa.Table(
    "referral_programs",
    metadata,
    sa.Column("workspace_id", sa.String(40), primary_key=True),
    sa.Column("config", JSONDoc, nullable=False),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
)
"""The workspace's referral programme (rewards, windows, fraud limits); defaults when absent."""

referral_codes = sa.Table(
    "referral_codes",
    metadata,
    _ws(),
    sa.Column("code", sa.String(40), nullable=False),
    sa.Column("customer_id", sa.String(40), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "code"),
    sa.Index(None, "workspace_id", "customer_id"),
)

referrals = sa.Table(
    "referrals",
    metadata,
    _ws(),
    sa.Column("referral_id", sa.String(64), nullable=False),
    sa.Column("code", sa.String(40), nullable=False),
    sa.Column("referrer_id", sa.String(40), nullable=False),
    sa.Column("friend_id", sa.String(40), nullable=False),
    sa.Column("friend_key", sa.String(40), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(40)),
    sa.Column("flag", sa.String(40)),
    sa.Column("ip", sa.String(64)),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("order_id", sa.String(200)),
    sa.Column("order_placed_at", sa.DateTime()),
    sa.Column("order_ip", sa.String(64)),
    sa.Column("currency", sa.String(3)),
    sa.Column("order_total", Money),
    sa.Column("fx_rate", sa.Numeric(24, 10)),
    sa.Column("qualified_at", sa.DateTime()),
    sa.Column("hold_until", sa.DateTime()),
    sa.Column("rewarded_at", sa.DateTime()),
    sa.Column("rejected_at", sa.DateTime()),
    sa.Column("referrer_reward", sa.String(500)),
    sa.Column("friend_reward", sa.String(500)),
    sa.Column("reward_cost_base", Money),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "referral_id"),
    sa.UniqueConstraint("workspace_id", "friend_key"),
    sa.Index(None, "workspace_id", "referrer_id"),
    sa.Index(None, "workspace_id", "friend_id"),
)

referral_changes = sa.Table(
    "referral_changes",
    metadata,
    _ws(),
    sa.Column("referral_id", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(40)),
    sa.Column("changed_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "referral_id", "state"),
)
"""One row per state a referral entered (each state at most once): the source of its events."""

group_buy_campaigns = sa.Table(
    "group_buy_campaigns",
    metadata,
    _ws(),
    sa.Column("campaign_id", sa.String(64), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("product_id", sa.String(200), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("list_price", Money, nullable=False),
    sa.Column("group_size", sa.Integer(), nullable=False),
    sa.Column("tiers", JSONDoc, nullable=False),
    sa.Column("time_limit_seconds", sa.Integer(), nullable=False),
    sa.Column("starts_at", sa.DateTime(), nullable=False),
    sa.Column("ends_at", sa.DateTime()),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "campaign_id"),
)
"""``tiers``: [{"members": n, "price": p}, ...] by increasing n; a plain campaign has one tier
with ``members`` = ``group_size``."""

group_buys = sa.Table(
    "group_buys",
    metadata,
    _ws(),
    sa.Column("group_id", sa.String(64), nullable=False),
    sa.Column("campaign_id", sa.String(64), nullable=False),
    sa.Column("leader_id", sa.String(40), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("size", sa.Integer(), nullable=False),
    sa.Column("members", sa.Integer(), nullable=False),
    sa.Column("opened_at", sa.DateTime(), nullable=False),
    sa.Column("expires_at", sa.DateTime(), nullable=False),
    sa.Column("closed_at", sa.DateTime()),
    sa.Column("final_price", Money),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "group_id"),
    sa.Index(None, "workspace_id", "status", "expires_at"),
)

group_buy_members = sa.Table(
    "group_buy_members",
    metadata,
    _ws(),
    sa.Column("group_id", sa.String(64), nullable=False),
    sa.Column("seat", sa.Integer(), nullable=False),
    sa.Column("customer_id", sa.String(40), nullable=False),
    sa.Column("member_key", sa.String(40), nullable=False),
    sa.Column("order_id", sa.String(200)),
    sa.Column("paid_price", Money, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("joined_at", sa.DateTime(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("confirmed_price", Money),
    sa.Column("refund_amount", Money),
    sa.Column("closed_at", sa.DateTime()),
    sa.PrimaryKeyConstraint("workspace_id", "group_id", "seat"),
    sa.UniqueConstraint("workspace_id", "group_id", "member_key"),
    sa.Index(None, "workspace_id", "customer_id"),
)

assist_campaigns = sa.Table(
    "assist_campaigns",
    metadata,
    _ws(),
    sa.Column("campaign_id", sa.String(64), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("thresholds", JSONDoc, nullable=False),
    sa.Column("daily_cap", sa.Integer(), nullable=False),
    sa.Column("new_users_only", sa.Boolean(), nullable=False),
    sa.Column("starts_at", sa.DateTime(), nullable=False),
    sa.Column("ends_at", sa.DateTime()),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "campaign_id"),
)
"""``thresholds``: [{"helpers": 3, "reward": {"kind": "coupon", ...}}, ...], increasing."""

assists = sa.Table(
    "assists",
    metadata,
    _ws(),
    sa.Column("campaign_id", sa.String(64), nullable=False),
    sa.Column("target_key", sa.String(40), nullable=False),
    sa.Column("helper_key", sa.String(40), nullable=False),
    sa.Column("target_id", sa.String(40), nullable=False),
    sa.Column("helper_id", sa.String(40), nullable=False),
    sa.Column("local_day", sa.Date(), nullable=False),
    sa.Column("slot", sa.Integer(), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "campaign_id", "target_key", "helper_key"),
    sa.UniqueConstraint("workspace_id", "campaign_id", "helper_key", "local_day", "slot"),
    sa.Index(None, "workspace_id", "campaign_id", "target_id"),
)

assist_rewards = sa.Table(
    "assist_rewards",
    metadata,
    _ws(),
    sa.Column("campaign_id", sa.String(64), nullable=False),
    sa.Column("target_id", sa.String(40), nullable=False),
    sa.Column("threshold", sa.Integer(), nullable=False),
    sa.Column("reward_kind", sa.String(40), nullable=False),
    sa.Column("reward_id", sa.String(200), nullable=False),
    sa.Column("description", sa.String(500), nullable=False),
    sa.Column("granted_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "campaign_id", "target_id", "threshold"),
)

ALL = (
    referral_programs,
    referral_codes,
    referrals,
    referral_changes,
    group_buy_campaigns,
    group_buys,
    group_buy_members,
    assist_campaigns,
    assists,
    assist_rewards,
)
