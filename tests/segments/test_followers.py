"""One-ID merges re-key customer tags, tiers, segment members and their histories."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from siyu.registry import registry
from siyu.runtime import Runtime

AT = datetime(2025, 6, 1)


def test_merge_moves_rows_and_drops_duplicates(rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    follow = registry.merge_followers.get("segments")
    with rt.db.engine.begin() as conn:
        for customer, tags in (("A", ("vip", "baby")), ("B", ("vip", "beauty")), ("C", ("vip",))):
            for tag in tags:
                conn.execute(
                    sa.text(
                        "INSERT INTO customer_tags (workspace_id, tag_id, customer_id, since) "
                        "VALUES (:ws, :tag, :c, :at)"
                    ),
                    {"ws": ws, "tag": tag, "c": customer, "at": AT},
                )
        for customer in ("A", "B"):
            conn.execute(
                sa.text(
                    "INSERT INTO segment_history (workspace_id, run_id, segment_id, customer_id, "
                    "change, changed_at) VALUES (:ws, 'r1', 'mums', :c, 'entered', :at)"
                ),
                {"ws": ws, "c": customer, "at": AT},
            )
        conn.exec_driver_sql(
            "CREATE TEMP TABLE moves (old_customer_id VARCHAR(40), new_customer_id VARCHAR(40))"
        )
        conn.exec_driver_sql("INSERT INTO moves VALUES ('A', 'C'), ('B', 'C')")
        changed = follow(conn, ws, "moves")
        conn.exec_driver_sql("DROP TABLE moves")
    with rt.db.engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT customer_id, tag_id FROM customer_tags ORDER BY tag_id")
        ).all()
        history = conn.execute(sa.text("SELECT customer_id FROM segment_history")).all()
    assert [tuple(t) for t in rows] == [("C", "baby"), ("C", "beauty"), ("C", "vip")]
    assert [tuple(h) for h in history] == [("C",)]
    assert changed == 3  # baby, beauty and one history row moved; the duplicates were dropped
