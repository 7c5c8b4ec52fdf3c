"""Friend assists (助力): a customer asks friends to help unlock rewards.

A campaign lists reward thresholds (e.g. 3 helpers -> a sample, 10 -> the full size), a daily cap
per helper (default 3 assists per local day, in the helper's own time zone) and an optional "new
users only" rule (a helper must have no order and be first seen on or after the campaign start).
A helper assists a target at most once. Both limits are database constraints (primary key on
target+helper, a unique slot 1..cap per helper and local day), so parallel requests cannot break
them. Rewards are granted after the assist commits, under the idempotency key
``assist:<campaign>:<target>:<threshold>``, and recorded in ``assist_rewards``; a crash between
the two is repaired by :func:`sync_rewards`, which never issues twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from siyu.errors import Conflict, InvalidInput, NotFound, SiyuError
from siyu.fission.common import (
    check_reward,
    grant_reward,
    new_id,
    require_customer,
    utcnow,
    writing,
)
from siyu.fission.tables import assist_campaigns, assist_rewards, assists
from siyu.store import schema
from siyu.store.database import Database

UTC_ZONE = ZoneInfo("UTC")


class AssistRefused(Conflict):
    """An assist the campaign's rules do not allow (cap, twice, self, not a new user)."""

    code = "assist_refused"
    default_hint = "Each helper may assist a friend once, and a few friends a day."


def create_campaign(
    conn: sa.Connection,
    workspace_id: str,
    *,
    name: str,
    thresholds: list[dict[str, Any]],
    base_currency: str,
    daily_cap: int = 3,
    new_users_only: bool = False,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    campaign_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    now = now or utcnow()
    if not thresholds:
        raise InvalidInput(
            "An assist campaign needs at least one threshold.",
            hint='Example: [{"helpers": 3, "reward": {"kind": "coupon", "amount": 5, '
            '"currency": "EUR"}}].',
            field="thresholds",
        )
    clean: list[dict[str, Any]] = []
    counts: list[int] = []
    for i, t in enumerate(thresholds):
        helpers = t.get("helpers") if isinstance(t, dict) else None
        if isinstance(helpers, bool) or not isinstance(helpers, int) or helpers < 1:
            raise InvalidInput(
                f"thresholds[{i}].helpers must be a positive whole number.",
                field=f"thresholds[{i}].helpers",
            )
        check_reward(t.get("reward") or {}, f"thresholds[{i}].reward", currency=base_currency)
        clean.append({"helpers": helpers, "reward": dict(t["reward"])})
        counts.append(helpers)
    if counts != sorted(set(counts)):
        raise InvalidInput(f"Threshold helper counts {counts} must increase.", field="thresholds")
    if not 1 <= daily_cap <= 1000:
        raise InvalidInput("daily_cap must be between 1 and 1000.", field="daily_cap")
    starts = starts_at or now
    if ends_at is not None and ends_at <= starts:
        raise InvalidInput("ends_at must be after starts_at.", field="ends_at")
    cid = campaign_id or new_id("asc")
    c = assist_campaigns
    if conn.execute(
        sa.select(sa.func.count())
        .select_from(c)
        .where(c.c.workspace_id == workspace_id, c.c.campaign_id == cid)
    ).scalar_one():
        raise Conflict(f"Assist campaign '{cid}' exists already.")
    conn.execute(
        c.insert().values(
            workspace_id=workspace_id,
            campaign_id=cid,
            name=name,
            thresholds=clean,
            daily_cap=daily_cap,
            new_users_only=new_users_only,
            starts_at=starts,
            ends_at=ends_at,
            created_at=now,
        )
    )
    return get_campaign(conn, workspace_id, cid)


def get_campaign(conn: sa.Connection, workspace_id: str, campaign_id: str) -> dict[str, Any]:
    c = assist_campaigns
    row = (
        conn.execute(
            sa.select(c).where(c.c.workspace_id == workspace_id, c.c.campaign_id == campaign_id)
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(
            f"No assist campaign '{campaign_id}'.", hint="List them with 'siyu assists campaigns'."
        )
    out = dict(row)
    out.pop("workspace_id")
    return out


def list_campaigns(conn: sa.Connection, workspace_id: str) -> list[dict[str, Any]]:
    c = assist_campaigns
    ids = conn.execute(
        sa.select(c.c.campaign_id).where(c.c.workspace_id == workspace_id).order_by(c.c.created_at)
    ).scalars()
    return [get_campaign(conn, workspace_id, i) for i in ids]


def local_day(conn: sa.Connection, workspace_id: str, customer_id: str, now: datetime) -> Any:
    """The helper's calendar day at ``now`` in their time zone (UTC when unknown or invalid)."""
    cu = schema.customers
    tz_name = conn.execute(
        sa.select(cu.c.timezone).where(
            cu.c.workspace_id == workspace_id, cu.c.customer_id == customer_id
        )
    ).scalar()
    try:
        zone = ZoneInfo(tz_name) if tz_name else UTC_ZONE
    except (ZoneInfoNotFoundError, ValueError):
        zone = UTC_ZONE
    return now.replace(tzinfo=UTC_ZONE).astimezone(zone).date()


def _is_new_user(
    conn: sa.Connection, workspace_id: str, helper_id: str, campaign: dict[str, Any], now: datetime
) -> bool:
    o, cu = schema.orders, schema.customers
    ordered = conn.execute(
        sa.select(sa.func.count())
        .select_from(o)
        .where(o.c.workspace_id == workspace_id, o.c.customer_id == helper_id, o.c.placed_at <= now)
    ).scalar_one()
    first_seen = conn.execute(
        sa.select(cu.c.first_seen_at).where(
            cu.c.workspace_id == workspace_id, cu.c.customer_id == helper_id
        )
    ).scalar()
    return ordered == 0 and first_seen is not None and first_seen >= campaign["starts_at"]


def _record(
    db: Database, workspace_id: str, campaign_id: str, target_id: str, helper_id: str, now: datetime
) -> tuple[dict[str, Any], int]:
    """Check the rules and store the assist; return (campaign, the target's assist count)."""
    a = assists
    with writing(db) as conn:
        target_id = require_customer(conn, workspace_id, target_id, "target_id")
        helper_id = require_customer(conn, workspace_id, helper_id, "helper_id")
        campaign = get_campaign(conn, workspace_id, campaign_id)
        if campaign["starts_at"] > now or (campaign["ends_at"] and campaign["ends_at"] <= now):
            raise AssistRefused(f"Assist campaign '{campaign_id}' is not running now.")
        if helper_id == target_id:
            raise AssistRefused("A customer cannot assist themselves.")
        if campaign["new_users_only"] and not _is_new_user(
            conn, workspace_id, helper_id, campaign, now
        ):
            raise AssistRefused(
                f"Campaign '{campaign_id}' accepts assists from new users only.",
                hint="New users have no order and were first seen after the campaign started.",
            )
        mine = (a.c.workspace_id == workspace_id, a.c.campaign_id == campaign_id)
        twice = conn.execute(
            sa.select(sa.func.count())
            .select_from(a)
            .where(*mine, a.c.target_id == target_id, a.c.helper_id == helper_id)
        ).scalar_one()
        if twice:
            raise AssistRefused(f"Helper '{helper_id}' has already assisted '{target_id}'.")
        day = local_day(conn, workspace_id, helper_id, now)
        used = conn.execute(
            sa.select(sa.func.count())
            .select_from(a)
            .where(*mine, a.c.helper_id == helper_id, a.c.local_day == day)
        ).scalar_one()
        if used >= campaign["daily_cap"]:
            raise AssistRefused(
                f"Helper '{helper_id}' has used all {campaign['daily_cap']} assists of {day} "
                "(their local day).",
                hint="Assists reopen at midnight in the helper's time zone.",
            )
        conn.execute(
            a.insert().values(
                workspace_id=workspace_id,
                campaign_id=campaign_id,
                target_key=target_id,
                helper_key=helper_id,
                target_id=target_id,
                helper_id=helper_id,
                local_day=day,
                slot=used + 1,
                created_at=now,
            )
        )
        count = conn.execute(
            sa.select(sa.func.count()).select_from(a).where(*mine, a.c.target_id == target_id)
        ).scalar_one()
    return campaign, int(count)


def assist(
    db: Database,
    workspace_id: str,
    campaign_id: str,
    target_id: str,
    helper_id: str,
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``helper_id`` assists ``target_id``; returns the count and the rewards unlocked now."""
    now = now or utcnow()
    for _ in range(3):
        try:
            campaign, count = _record(db, workspace_id, campaign_id, target_id, helper_id, now)
            break
        except sa.exc.IntegrityError:
            continue  # a parallel assist took the slot or the pair: re-check the rules
    else:
        raise AssistRefused(
            "The assist collided with simultaneous assists three times.", hint="Retry."
        )
    # Count again after the commit: under READ COMMITTED, simultaneous assists each counted
    # only their own insert plus those committed before; the last one to commit sees them all.
    with db.engine.connect() as conn:
        target_id = require_customer(conn, workspace_id, target_id, "target_id")
        a = assists
        count = max(
            count,
            int(
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(a)
                    .where(
                        a.c.workspace_id == workspace_id,
                        a.c.campaign_id == campaign_id,
                        a.c.target_id == target_id,
                    )
                ).scalar_one()
            ),
        )
    unlocked = _unlock(db, workspace_id, campaign, target_id, count, now)
    return {
        "campaign_id": campaign_id,
        "target_id": target_id,
        "helper_id": helper_id,
        "assists": count,
        "unlocked": unlocked,
    }


def _unlock(
    db: Database,
    workspace_id: str,
    campaign: dict[str, Any],
    target_id: str,
    count: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """Grant every reached threshold's reward not recorded yet (idempotent per threshold)."""
    r = assist_rewards
    cid = campaign["campaign_id"]
    with db.engine.connect() as conn:
        have = set(
            conn.execute(
                sa.select(r.c.threshold).where(
                    r.c.workspace_id == workspace_id,
                    r.c.campaign_id == cid,
                    r.c.target_id == target_id,
                )
            ).scalars()
        )
    out = []
    for t in campaign["thresholds"]:
        if t["helpers"] > count or t["helpers"] in have:
            continue
        result = grant_reward(
            db,
            workspace_id,
            target_id,
            t["reward"],
            key=f"assist:{cid}:{target_id}:{t['helpers']}",
            reason="assist",
            reference=cid,
            now=now,
        )
        with writing(db) as conn:
            conn.execute(
                pg_insert(r)
                .values(
                    workspace_id=workspace_id,
                    campaign_id=cid,
                    target_id=target_id,
                    threshold=t["helpers"],
                    reward_kind=str(t["reward"].get("kind", "coupon")),
                    reward_id=result.reward_id,
                    description=result.description,
                    granted_at=now,
                )
                .on_conflict_do_nothing()
            )
        out.append({"threshold": t["helpers"], "reward": result.description})
    return out


def sync_rewards(db: Database, workspace_id: str, *, now: datetime | None = None) -> int:
    """Grant the rewards of thresholds reached but not recorded (after a crash); return how many."""
    now = now or utcnow()
    a = assists
    with db.engine.connect() as conn:
        counts = conn.execute(
            sa.select(a.c.campaign_id, a.c.target_id, sa.func.count())
            .where(a.c.workspace_id == workspace_id)
            .group_by(a.c.campaign_id, a.c.target_id)
        ).all()
        campaigns = {c["campaign_id"]: c for c in list_campaigns(conn, workspace_id)}
    granted = 0
    for cid, target, count in counts:
        try:
            granted += len(_unlock(db, workspace_id, campaigns[cid], target, int(count), now))
        except SiyuError:
            continue
    return granted


def progress(
    conn: sa.Connection, workspace_id: str, campaign_id: str, target_id: str
) -> dict[str, Any]:
    """A target's helpers and the rewards unlocked so far."""
    campaign = get_campaign(conn, workspace_id, campaign_id)
    a, r = assists, assist_rewards
    helpers = [
        dict(x)
        for x in conn.execute(
            sa.select(a.c.helper_id, a.c.local_day, a.c.created_at)
            .where(
                a.c.workspace_id == workspace_id,
                a.c.campaign_id == campaign_id,
                a.c.target_id == target_id,
            )
            .order_by(a.c.created_at)
        ).mappings()
    ]
    rewards = [
        dict(x)
        for x in conn.execute(
            sa.select(r.c.threshold, r.c.description, r.c.granted_at)
            .where(
                r.c.workspace_id == workspace_id,
                r.c.campaign_id == campaign_id,
                r.c.target_id == target_id,
            )
            .order_by(r.c.threshold)
        ).mappings()
    ]
    return {
        "campaign_id": campaign_id,
        "target_id": target_id,
        "assists": len(helpers),
        "helpers": helpers,
        "thresholds": campaign["thresholds"],
        "rewards": rewards,
    }
