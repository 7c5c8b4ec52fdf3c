"""The predict slice's built-in plugins: the churn and recommendation models as model fitters,
and the merge follower of ``customer_recommendations``.

``customer_scores`` is followed by One-ID's plain re-key follower (``table:customer_scores``:
the survivor keeps its scores, an absorbed customer's move over when it has none); the next
scoring run recomputes them on the merged history anyway.
"""

from __future__ import annotations

import sqlalchemy as sa

from siyu.registry import Registry


def follow_recommendations(conn: sa.Connection, workspace_id: str, moves: str) -> int:
    """Re-key recommendation lists to the surviving customer, whole lists only: a survivor with
    a list keeps it; without one, the list of the smallest absorbed id moves over. (The lists
    are recomputed on the merged history by the next ``siyu reco run``.)"""
    ws = {"ws": workspace_id}
    table = "customer_recommendations"
    # Every row of an absorbed customer is either dropped or moved (rowcount differs by driver).
    changed = conn.execute(
        sa.text(
            f"SELECT count(*) FROM {table} WHERE workspace_id = :ws "
            f"AND customer_id IN (SELECT old_customer_id FROM {moves})"
        ),
        ws,
    ).scalar_one()
    conn.execute(
        sa.text(
            f"DELETE FROM {table} WHERE workspace_id = :ws AND customer_id IN ("
            f"SELECT m.old_customer_id FROM {moves} m WHERE EXISTS (SELECT 1 FROM {table} s "
            "WHERE s.workspace_id = :ws AND s.customer_id = m.new_customer_id) OR EXISTS ("
            f"SELECT 1 FROM {moves} m2 JOIN {table} y ON y.customer_id = m2.old_customer_id "
            "AND y.workspace_id = :ws WHERE m2.new_customer_id = m.new_customer_id "
            "AND m2.old_customer_id < m.old_customer_id))"
        ),
        ws,
    )
    conn.execute(
        sa.text(
            f"UPDATE {table} SET customer_id = (SELECT m.new_customer_id FROM {moves} m "
            f"WHERE m.old_customer_id = {table}.customer_id) WHERE workspace_id = :ws "
            f"AND customer_id IN (SELECT old_customer_id FROM {moves})"
        ),
        ws,
    )
    return int(changed)


def register(registry: Registry) -> None:
    from siyu.predict.churn.model import ChurnModel
    from siyu.predict.reco.model import ItemModel

    registry.model_fitters.register("churn", ChurnModel)
    registry.model_fitters.register("item2item", ItemModel)
    registry.merge_followers.register("predict:recommendations", follow_recommendations)
