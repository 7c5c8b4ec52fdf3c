"""The periodic work of the fission slice in one call, shared by the CLI and the API.

:func:`process` runs the referral rules, settles group buys whose time ran out, repairs assist
rewards a crash left unrecorded, and then publishes every pending fission event through the
pipeline. Each part is idempotent, so it is safe to run from a scheduler, by hand and from
several processes at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from siyu.config import Settings
from siyu.fission.assists import sync_rewards
from siyu.fission.common import utcnow
from siyu.fission.events import publish
from siyu.fission.groupbuys import close_due
from siyu.fission.qualify import process_referrals
from siyu.store.database import Database


def process(
    db: Database,
    workspace_id: str,
    *,
    now: datetime | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Referrals, group-buy settlement, assist reward repair, then events; the counts of each."""
    now = now or utcnow()
    referrals = process_referrals(db, workspace_id, now=now)
    groups = close_due(db, workspace_id, now=now)
    assist_rewards = sync_rewards(db, workspace_id, now=now)
    events = publish(db, workspace_id, settings=settings)
    return {
        "referrals": referrals.as_dict(),
        "group_buys": groups,
        "assist_rewards_repaired": assist_rewards,
        "events": events,
    }
