"""One-ID merges: enrollments and step runs follow the surviving customer.

Registered as the journeys ``merge_followers`` function. When two customers who are both running
the same journey merge, the survivor keeps its own enrollment and the absorbed one's ends as
``exited`` (reason "merged"), its pending steps cancelled, so the person is not messaged twice.
The absorbed customer's entry keys are suffixed with its old id, so the history of both
customers' entries is kept without colliding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from siyu.registry import Registry


def follow_merge(conn: sa.Connection, workspace_id: str, moves: str) -> int:
    """Re-key journeys rows of ``moves`` (old_customer_id -> new_customer_id)."""
    ws = {"ws": workspace_id}
    # 1. An absorbed customer's running enrollment ends where the survivor (or another absorbed
    #    customer with a smaller id, merging into the same survivor) runs the journey too.
    conn.execute(
        sa.text(
            f"UPDATE journey_enrollments AS e SET state = 'exited', active_key = NULL, "
            f"exit_reason = 'merged into ' || m.new_customer_id FROM {moves} AS m "
            f"WHERE e.workspace_id = :ws AND e.customer_id = m.old_customer_id "
            f"AND e.active_key IS NOT NULL AND (EXISTS (SELECT 1 FROM journey_enrollments AS s "
            f"WHERE s.workspace_id = :ws AND s.journey_id = e.journey_id "
            f"AND s.active_key = m.new_customer_id) OR EXISTS (SELECT 1 FROM "
            f"journey_enrollments AS s JOIN {moves} AS m2 ON s.active_key = m2.old_customer_id "
            f"WHERE s.workspace_id = :ws AND s.journey_id = e.journey_id "
            f"AND m2.new_customer_id = m.new_customer_id AND m2.old_customer_id < e.customer_id))"
        ),
        ws,
    )
    conn.execute(
        sa.text(
            "UPDATE journey_step_runs AS r SET state = 'cancelled' "
            "WHERE r.workspace_id = :ws AND r.state IN ('due', 'waiting') AND EXISTS ("
            "SELECT 1 FROM journey_enrollments AS e WHERE e.workspace_id = :ws "
            "AND e.enrollment_id = r.enrollment_id AND e.state = 'exited' "
            "AND e.exit_reason LIKE 'merged into %')"
        ),
        ws,
    )
    # 2. The absorbed customer's entry keys get its old id appended, so they never collide
    #    with the survivor's; "once" still holds, as any earlier enrollment blocks a new entry.
    conn.execute(
        sa.text(
            f"UPDATE journey_enrollments AS e SET entry_key = e.entry_key || ':' || "
            f"m.old_customer_id FROM {moves} AS m WHERE e.workspace_id = :ws "
            f"AND e.customer_id = m.old_customer_id"
        ),
        ws,
    )
    # 3. Re-key.
    changed = conn.execute(
        sa.text(
            f"UPDATE journey_enrollments AS e SET customer_id = m.new_customer_id, "
            f"active_key = CASE WHEN e.active_key IS NULL THEN NULL ELSE m.new_customer_id END "
            f"FROM {moves} AS m WHERE e.workspace_id = :ws AND e.customer_id = m.old_customer_id"
        ),
        ws,
    ).rowcount
    conn.execute(
        sa.text(
            f"UPDATE journey_step_runs AS r SET customer_id = m.new_customer_id FROM {moves} AS m "
            f"WHERE r.workspace_id = :ws AND r.customer_id = m.old_customer_id"
        ),
        ws,
    )
    return int(changed or 0)


def register(registry: Registry) -> None:
    registry.merge_followers.register("journeys", follow_merge)
