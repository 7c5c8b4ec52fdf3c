"""``siyu loyalty sync``: bring the loyalty state up to date with the stored data.

Every step is set-based and idempotent, so the sync can run after every import, on a schedule,
or again after a crash: order points, refund reversals, expiry, birthday bonuses, coupon
redemptions seen in the store, tier evaluation, membership lapses, then the events of every
change not in the event log yet.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import asdict, dataclass
from datetime import datetime

from siyu.config import Settings
from siyu.loyalty import bonuses, coupons, earning, ledger, membership, tiers
from siyu.loyalty.events import publish
from siyu.loyalty.program import load_program
from siyu.store.database import Database


@dataclass(frozen=True)
class SyncReport:
    orders_earned: int
    refunds_reversed: int
    lots_expired: int
    birthdays: int
    coupon_redemptions: int
    tier_upgrades: int
    tier_downgrades: int
    memberships_lapsed: int
    events: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def sync(
    db: Database, workspace_id: str, *, now: datetime, settings: Settings | None = None
) -> SyncReport:
    guard = db.write_lock if db.kind == "duckdb" else nullcontext()
    with db.engine.connect() as conn:
        program = load_program(conn, workspace_id)
    with guard, db.engine.begin() as conn:
        earned = earning.earn_orders(conn, workspace_id, program, now)
    reversed_ = earning.reverse_refunds(db, workspace_id, now)
    with guard, db.engine.begin() as conn:
        expired = ledger.expire(conn, workspace_id, now)
        born = bonuses.birthdays(conn, workspace_id, program, now)
        redemptions = coupons.record_from_events(conn, workspace_id)
        lapsed = membership.lapse(conn, workspace_id, now)
    tier_report = tiers.evaluate(db, workspace_id, program, now)
    events = publish(db, workspace_id, settings=settings)
    return SyncReport(
        orders_earned=earned,
        refunds_reversed=reversed_,
        lots_expired=expired,
        birthdays=born,
        coupon_redemptions=redemptions,
        tier_upgrades=tier_report.upgrades,
        tier_downgrades=tier_report.downgrades,
        memberships_lapsed=lapsed,
        events=events,
    )
