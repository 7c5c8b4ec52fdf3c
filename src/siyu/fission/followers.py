"""One-ID merges: re-key the fission slice's per-customer columns (``merge_followers``).

After a merge, a referral whose referrer and friend became one customer is a self-referral and
is rejected by the next :func:`siyu.fission.qualify.process_referrals`; two referrals of one
merged friend keep the earliest (``duplicate_friend``). The ``*_key`` columns (``friend_key``,
``member_key``, ``target_key``, ``helper_key``) keep the id the row was made with, so uniqueness
rules still hold after the re-key. ``assist_rewards`` has the target in its primary key: a row
the survivor already holds for the same threshold stays under the old id (the reward was granted
then; nothing is dropped).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from siyu.registry import Registry

#: (table, customer column, other key columns when the column is part of a unique key)
FOLLOWED: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("referral_codes", "customer_id", ()),
    ("referrals", "referrer_id", ()),
    ("referrals", "friend_id", ()),
    ("group_buys", "leader_id", ()),
    ("group_buy_members", "customer_id", ()),
    ("assists", "target_id", ()),
    ("assists", "helper_id", ()),
    ("assist_rewards", "target_id", ("campaign_id", "threshold")),
)


def follow_merges(conn: sa.Connection, workspace_id: str, moves: str) -> int:
    """Move every fission row of an old customer id to its survivor (set-based)."""
    changed = 0
    for table, col, key in FOLLOWED:
        guard = ""
        if key:
            same = " AND ".join(f"x.{k} = {table}.{k}" for k in key)
            same_y = " AND ".join(f"y.{k} = {table}.{k}" for k in key)
            guard = (
                f" AND NOT EXISTS (SELECT 1 FROM {moves} m JOIN {table} x "
                f"ON x.workspace_id = :ws AND x.{col} = m.new_customer_id "
                f"WHERE m.old_customer_id = {table}.{col} AND {same})"
                f" AND NOT EXISTS (SELECT 1 FROM {moves} m JOIN {moves} m2 "
                "ON m2.new_customer_id = m.new_customer_id "
                f"AND m2.old_customer_id < m.old_customer_id JOIN {table} y "
                f"ON y.workspace_id = :ws AND y.{col} = m2.old_customer_id "
                f"WHERE m.old_customer_id = {table}.{col} AND {same_y})"
            )
        result = conn.execute(
            sa.text(
                f"UPDATE {table} SET {col} = (SELECT m.new_customer_id FROM {moves} m "
                f"WHERE m.old_customer_id = {table}.{col}) WHERE workspace_id = :ws "
                f"AND {col} IN (SELECT old_customer_id FROM {moves} "
                f"WHERE old_customer_id <> new_customer_id){guard}"
            ),
            {"ws": workspace_id},
        )
        changed += max(int(result.rowcount or 0), 0)
    return changed


def register(registry: Registry) -> None:
    registry.merge_followers.register("fission", follow_merges)
