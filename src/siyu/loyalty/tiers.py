"""Member tiers by growth value over a rolling 12 months.

Growth value = net spend in the base currency (orders minus refunds) + ``interaction_value`` x
interactions (reviews, community posts, shares, check-in/UGC/challenge bonuses) in the 12 months
before ``now``. The database computes growth per customer, and per calendar month for the streak
rule, in one grouped query; NumPy picks tiers for everybody at once.

Rules (as Starbucks Rewards, Sephora Beauty Insider and the Tmall 88VIP tiers do it):

- **upgrade at once**: growth reaching a higher tier's threshold moves the member up now and
  starts a 12-month term (``review_at``);
- **streak**: meeting a tier's ``monthly_target`` in each of the last ``streak_months`` complete
  calendar months also earns that tier at once;
- **yearly review**: at ``review_at`` the tier is set to what the growth earns now, which may be
  lower (the only way down), and a new term starts.

Every change is a row of ``tier_changes`` and a ``Member Tier Changed`` event.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from siyu.loyalty.ledger import add_months
from siyu.loyalty.program import Program
from siyu.loyalty.tables import tier_changes, tier_states
from siyu.store.bulk import append_new, upsert
from siyu.store.database import Database

INTERACTION_EVENTS = (
    "Product Reviewed",
    "Community Message Posted",
    "Referral Link Shared",
)
INTERACTION_BONUSES = ("checkin", "review", "ugc", "challenge")


@dataclass(frozen=True)
class TierReport:
    members: int
    upgrades: int
    downgrades: int
    reviewed: int


def _dec(value: float) -> Decimal:
    return Decimal(str(round(value, 4))).quantize(Decimal("0.0001"))


def _month_start(moment: datetime, back: int) -> datetime:
    first = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return add_months(first, -back)


def growth(conn: sa.Connection, workspace_id: str, program: Program, now: datetime) -> pd.DataFrame:
    """customer_id, growth (12 months) and m1..mK (the last K complete months, m1 latest)."""
    start = add_months(now, -12)
    k = program.streak_months
    bounds = [(_month_start(now, i), _month_start(now, i - 1)) for i in range(1, k + 1)]
    params: dict[str, object] = {"ws": workspace_id, "start": start, "now": now}
    month_cols = []
    for i, (lo, hi) in enumerate(bounds, start=1):
        params[f"lo{i}"], params[f"hi{i}"] = lo, hi
        month_cols.append(
            f", SUM(CASE WHEN moment >= :lo{i} AND moment < :hi{i} THEN v ELSE 0 END) AS m{i}"
        )
    earliest = min([start, *[lo for lo, _ in bounds]])
    params["earliest"] = earliest
    events = ", ".join(f"'{e}'" for e in INTERACTION_EVENTS)
    bonuses = ", ".join(f"'{b}'" for b in INTERACTION_BONUSES)
    sql = f"""
        WITH g AS (
            SELECT customer_id, placed_at AS moment,
                   COALESCE(total_base, 0) - COALESCE(refunded_base, 0) AS v
            FROM orders
            WHERE workspace_id = :ws AND customer_id IS NOT NULL
              AND placed_at >= :earliest AND placed_at <= :now
            UNION ALL
            SELECT customer_id, timestamp, :iv
            FROM events
            WHERE workspace_id = :ws AND customer_id IS NOT NULL AND event IN ({events})
              AND timestamp >= :earliest AND timestamp <= :now
            UNION ALL
            SELECT customer_id, created_at, :iv
            FROM points_ledger
            WHERE workspace_id = :ws AND kind = 'earn' AND reason IN ({bonuses})
              AND created_at >= :earliest AND created_at <= :now
        )
        SELECT customer_id, SUM(CASE WHEN moment > :start THEN v ELSE 0 END) AS growth
               {"".join(month_cols)}
        FROM g GROUP BY customer_id
    """
    params["iv"] = program.interaction_value
    q = sa.text(sql).bindparams(sa.bindparam("iv", type_=sa.Numeric(18, 4)))
    rows = conn.execute(q, params).all()
    cols = ["customer_id", "growth", *[f"m{i}" for i in range(1, k + 1)]]
    df = pd.DataFrame(rows, columns=cols)
    for col in cols[1:]:
        df[col] = df[col].astype("float64")
    return df


def evaluate(db: Database, workspace_id: str, program: Program, now: datetime) -> TierReport:
    """Apply upgrades, streak upgrades and due reviews for every member; idempotent per now."""
    with db.engine.connect() as conn:
        g = growth(conn, workspace_id, program, now)
        s = tier_states.c
        state = pd.DataFrame(
            conn.execute(
                sa.select(s.customer_id, s.tier, s.since, s.review_at).where(
                    s.workspace_id == workspace_id
                )
            ).all(),
            columns=["customer_id", "tier", "since", "review_at"],
        )
    df = g.merge(state, on="customer_id", how="outer")
    if df.empty:
        return TierReport(0, 0, 0, 0)
    df["growth"] = df["growth"].fillna(0.0)
    names = [t.name for t in program.tiers]
    thresholds = np.array([float(t.threshold) for t in program.tiers])
    by_value = np.searchsorted(thresholds, df["growth"].to_numpy(), side="right") - 1
    by_streak = np.zeros(len(df), dtype=int)
    if program.streak_months > 0:
        months = df[[f"m{i}" for i in range(1, program.streak_months + 1)]].fillna(0).to_numpy()
        worst = months.min(axis=1)
        for rank, tier in enumerate(program.tiers):
            if tier.monthly_target is not None:
                by_streak = np.where(worst >= float(tier.monthly_target), rank, by_streak)
    earned = np.maximum(by_value, by_streak)
    rank_of = {n: i for i, n in enumerate(names)}
    current = df["tier"].map(rank_of).fillna(-1).astype(int).to_numpy()
    has_state = df["tier"].notna().to_numpy()
    due = has_state & (pd.to_datetime(df["review_at"]) <= pd.Timestamp(now)).to_numpy()
    up = earned > current
    new_rank = np.where(up, earned, np.where(due, earned, current))
    down = due & (earned < current)
    changed = (up | down) & ~(~has_state & (earned == 0))
    restart = up | due | ~has_state
    review_at = add_months(now, 12)
    df["new_tier"] = [names[r] for r in new_rank]
    df["since_new"] = pd.to_datetime(df["since"]).where(~(up | down | ~has_state), now)
    df["review_new"] = pd.to_datetime(df["review_at"]).where(~restart, review_at)
    df["rule"] = np.where(down, "review", np.where(by_streak > by_value, "streak", "upgrade"))
    states = pa.table(
        {
            "workspace_id": pa.array([workspace_id] * len(df), pa.string()),
            "customer_id": pa.array(df["customer_id"].tolist(), pa.string()),
            "tier": pa.array(df["new_tier"].tolist(), pa.string()),
            "since": pa.array(pd.to_datetime(df["since_new"]).tolist(), pa.timestamp("us")),
            "review_at": pa.array(pd.to_datetime(df["review_new"]).tolist(), pa.timestamp("us")),
            "growth_value": pa.array(
                [_dec(x) for x in df["growth"].tolist()], pa.decimal128(18, 4)
            ),
            "updated_at": pa.array([now] * len(df), pa.timestamp("us")),
        }
    )
    ch = df[changed]
    stamp = now.strftime("%Y%m%dT%H%M%S")
    changes = pa.table(
        {
            "workspace_id": pa.array([workspace_id] * len(ch), pa.string()),
            "change_id": pa.array(
                [
                    f"{c}:{stamp}:{t}"
                    for c, t in zip(ch["customer_id"], ch["new_tier"], strict=True)
                ],
                pa.string(),
            ),
            "customer_id": pa.array(ch["customer_id"].tolist(), pa.string()),
            "from_tier": pa.array(ch["tier"].fillna(names[0]).tolist(), pa.string()),
            "to_tier": pa.array(ch["new_tier"].tolist(), pa.string()),
            "rule": pa.array(ch["rule"].tolist(), pa.string()),
            "growth_value": pa.array(
                [_dec(x) for x in ch["growth"].tolist()], pa.decimal128(18, 4)
            ),
            "changed_at": pa.array([now] * len(ch), pa.timestamp("us")),
        }
    )
    guard = db.write_lock if db.kind == "duckdb" else nullcontext()
    with guard, db.engine.begin() as conn:
        upsert(
            conn,
            tier_states,
            states,
            ("workspace_id", "customer_id"),
            {
                "tier": "excluded.tier",
                "since": "excluded.since",
                "review_at": "excluded.review_at",
                "growth_value": "excluded.growth_value",
                "updated_at": "excluded.updated_at",
            },
        )
        append_new(conn, tier_changes, changes)
    return TierReport(
        members=len(df),
        upgrades=int((up & changed).sum()),
        downgrades=int(down.sum()),
        reviewed=int(due.sum()),
    )
