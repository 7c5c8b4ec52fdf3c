"""Bonus points: sign-up, daily check-in, review/UGC, community challenge, birthday, invites.

Each bonus has an idempotency key that encodes its rule, so the database's unique key enforces
the rule even under concurrent requests: sign-up once per customer; a check-in at most
``checkin_daily_cap`` times per *local* day of the customer (their time zone, UTC when unknown);
a review, UGC post, challenge or invite once per reference; the birthday once per year, on the
customer's local birthday. Invites earn ``invite_multiplier`` times the invite bonus.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
import sqlalchemy as sa

from siyu.errors import Conflict, InvalidInput
from siyu.loyalty.ledger import Entry, add_months, earn, earn_many, ensure_accounts
from siyu.loyalty.program import BONUS_REASONS, Program, load_program
from siyu.store import schema
from siyu.store.database import Database

NEEDS_REFERENCE = ("review", "ugc", "challenge", "invite")


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_day(now: datetime, timezone: str | None) -> str:
    """The customer's calendar date at the UTC moment ``now`` (naive UTC)."""
    return now.replace(tzinfo=UTC).astimezone(_zone(timezone)).date().isoformat()


def bonus_points(program: Program, bonus: str) -> int:
    points = program.bonuses.get(bonus, 0)
    if bonus == "invite":
        points = int(points * program.invite_multiplier)
    return int(points)


def award(
    db: Database,
    workspace_id: str,
    customer_id: str,
    bonus: str,
    *,
    now: datetime,
    reference: str | None = None,
) -> Entry:
    """Credit one bonus under its rule; a refused one says which rule and when to retry."""
    if bonus not in BONUS_REASONS:
        raise InvalidInput(
            f"Unknown bonus {bonus!r}.",
            hint=f"Use one of {', '.join(BONUS_REASONS)}.",
            field="bonus",
        )
    if bonus in NEEDS_REFERENCE and not reference:
        raise InvalidInput(
            f"A {bonus} bonus needs a reference (the review, post, challenge or invite id).",
            field="reference",
        )
    with db.engine.connect() as conn:
        program = load_program(conn, workspace_id)
        c = schema.customers.c
        row = conn.execute(
            sa.select(c.timezone, c.birthday).where(
                c.workspace_id == workspace_id, c.customer_id == customer_id
            )
        ).first()
    points = bonus_points(program, bonus)
    if points <= 0:
        raise InvalidInput(f"The programme gives no points for {bonus}.", field="bonus")
    tz, birthday = (row[0], row[1]) if row is not None else (None, None)
    day = local_day(now, tz)
    if bonus == "birthday":
        if birthday is None or day[5:] != birthday.isoformat()[5:]:
            raise Conflict(
                f"Today ({day}, local) is not the birthday of customer {customer_id}.",
                hint="Birthday points are credited on the customer's local birthday.",
            )
        keys = [f"bonus:birthday:{customer_id}:{day[:4]}"]
    elif bonus == "checkin":
        keys = [
            f"bonus:checkin:{customer_id}:{day}:{n}"
            for n in range(1, program.checkin_daily_cap + 1)
        ]
    elif bonus == "signup":
        keys = [f"bonus:signup:{customer_id}"]
    else:
        keys = [f"bonus:{bonus}:{customer_id}:{reference}"[:200]]
    for key in keys:
        entry = earn(
            db,
            workspace_id,
            customer_id,
            points,
            key=key,
            reason=bonus,
            reference=reference or day,
            now=now,
            expiry_months=program.expiry_months,
        )
        if entry.created or bonus != "checkin":
            return entry
    raise Conflict(
        f"Customer {customer_id} already checked in {program.checkin_daily_cap} time(s) on "
        f"{day} (their local day).",
        hint="Check in again tomorrow, local time.",
    )


def birthdays(conn: sa.Connection, workspace_id: str, program: Program, now: datetime) -> int:
    """Credit the birthday bonus of everybody whose local birthday is today (idempotent)."""
    points = bonus_points(program, "birthday")
    if points <= 0:
        return 0
    c = schema.customers.c
    rows = conn.execute(
        sa.select(c.customer_id, c.timezone, c.birthday).where(
            c.workspace_id == workspace_id, c.birthday.is_not(None)
        )
    ).all()
    df = pd.DataFrame(rows, columns=["customer_id", "timezone", "birthday"])
    if df.empty:
        return 0
    # One conversion per distinct time zone, not per customer.
    days = {tz: local_day(now, tz) for tz in df["timezone"].drop_duplicates()}
    df["day"] = df["timezone"].map(days)
    df["mmdd"] = pd.to_datetime(df["birthday"]).dt.strftime("%m-%d")
    today = df[df["day"].str[5:] == df["mmdd"]]
    if today.empty:
        return 0
    ensure_accounts(conn, workspace_id, today["customer_id"].tolist())
    earn_many(
        conn,
        workspace_id,
        pd.DataFrame(
            {
                "customer_id": today["customer_id"],
                "points": points,
                "key": "bonus:birthday:" + today["customer_id"] + ":" + today["day"].str[:4],
                "reference": today["day"],
                "expires_at": add_months(now, program.expiry_months),
            }
        ),
        reason="birthday",
        now=now,
    )
    return len(today)
