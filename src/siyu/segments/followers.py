"""One-ID merges and splits: re-key the segments slice's per-customer rows.

Registered as the ``segments`` merge follower (see ``registry.merge_followers``). For every
table below, a row of an old customer id moves to the new id; when the new id already has a
row with the same key (both customers held the tag, were in the segment, or changed in the
same run), the old row is dropped instead, so primary keys hold and nothing is counted twice.
Tiers and RFM of the merged customer are recomputed by the next segments run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from siyu.registry import Registry

#: table -> the key columns besides workspace_id and customer_id.
FOLLOWED: dict[str, tuple[str, ...]] = {
    "customer_segments": ("model",),
    "tier_history": ("run_id", "model"),
    "customer_tags": ("tag_id",),
    "tag_history": ("run_id", "tag_id"),
    "segment_members": ("segment_id",),
    "segment_history": ("run_id", "segment_id"),
}


def _same_key(left: str, right: str, key: tuple[str, ...]) -> str:
    return " AND ".join(f"{left}.{k} = {right}.{k}" for k in key)


def follow_merges(conn: sa.Connection, workspace_id: str, moves: str) -> int:
    """Move rows from ``old_customer_id`` to ``new_customer_id`` for every (old, new) in moves."""
    changed = 0
    params = {"ws": workspace_id}
    for table, key in FOLLOWED.items():
        # Drop an old row when the new id has it already, or when another old id merging into
        # the same new id (the smaller one wins) has it.
        conn.execute(
            sa.text(
                f"DELETE FROM {table} WHERE {table}.workspace_id = :ws AND EXISTS ("
                f"SELECT 1 FROM {moves} m WHERE m.old_customer_id = {table}.customer_id AND ("
                f"EXISTS (SELECT 1 FROM {table} x WHERE x.workspace_id = :ws "
                f"AND x.customer_id = m.new_customer_id AND {_same_key('x', table, key)}) "
                f"OR EXISTS (SELECT 1 FROM {moves} m2 JOIN {table} y "
                "ON y.customer_id = m2.old_customer_id WHERE y.workspace_id = :ws "
                "AND m2.new_customer_id = m.new_customer_id "
                f"AND m2.old_customer_id < m.old_customer_id AND {_same_key('y', table, key)})))"
            ),
            params,
        )
        result = conn.execute(
            sa.text(
                f"UPDATE {table} SET customer_id = (SELECT m.new_customer_id FROM {moves} m "
                f"WHERE m.old_customer_id = {table}.customer_id) "
                f"WHERE workspace_id = :ws AND customer_id IN (SELECT old_customer_id FROM {moves})"
            ),
            params,
        )
        changed += int(result.rowcount or 0)
    return changed


def register(registry: Registry) -> None:
    registry.merge_followers.register("segments", follow_merges)


__all__ = ["FOLLOWED", "follow_merges", "register"]
