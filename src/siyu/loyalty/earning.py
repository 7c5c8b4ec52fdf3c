"""Points from orders and their refunds, set-based over the orders table.

``earn_orders`` is one ``INSERT ... SELECT`` over the orders: points = floor(base-currency total
x the customer's market rate x the tier multiplier), one lot per order keyed ``order:<id>``, so
running it again (``siyu loyalty sync``, after every import) posts only the new orders.
``reverse_refunds`` compares, per order, the points that a refund should take back
(proportionally: earned x refunded / total, cumulative over partial refunds) with what was
already taken back, and posts the difference through the ledger's FIFO claw-back.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from siyu.loyalty.ledger import reverse, short_key
from siyu.loyalty.program import Program
from siyu.loyalty.tables import loyalty_accounts, points_ledger, tier_states
from siyu.store import schema
from siyu.store.bulk import insert_new
from siyu.store.database import Database


def order_key(order_id: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
    """'order:<id>' (an md5 of the id when it is too long for the key column)."""
    return sa.case(
        (sa.func.length(order_id) <= 190, sa.literal("order:") + order_id),
        else_=sa.literal("order:") + sa.func.md5(order_id),
    )


def earn_orders(conn: sa.Connection, workspace_id: str, program: Program, now: datetime) -> int:
    """Credit every completed order not credited yet; return the number of new lots."""
    o, c, t = schema.orders, schema.customers, tier_states
    rate: sa.ColumnElement[object] = sa.literal(program.points_per_unit)
    if program.market_points_per_unit:
        rate = sa.case(
            *[(c.c.country == k, sa.literal(v)) for k, v in program.market_points_per_unit.items()],
            else_=sa.literal(program.points_per_unit),
        )
    multiplier = sa.case(
        *[(t.c.tier == tier.name, sa.literal(tier.multiplier)) for tier in program.tiers],
        else_=sa.literal(1),
    )
    points = sa.cast(sa.func.floor(o.c.total_base * rate * multiplier), sa.BigInteger)
    expires = o.c.placed_at + sa.literal_column(f"INTERVAL '{int(program.expiry_months)} months'")
    where = [
        o.c.workspace_id == workspace_id,
        o.c.customer_id.is_not(None),
        o.c.total_base.is_not(None),
        o.c.status != "refunded",
        o.c.placed_at <= now,
        points > 0,
    ]
    if program.earn_orders_since is not None:
        where.append(o.c.placed_at >= program.earn_orders_since)
    key = order_key(o.c.order_id)
    source = (
        sa.select(
            o.c.workspace_id,
            key.label("idempotency_key"),
            sa.literal(0).label("line_no"),
            o.c.customer_id,
            sa.literal("earn").label("kind"),
            points.label("amount"),
            sa.literal("issued:order").label("contra_account"),
            key.label("lot_id"),
            expires.label("expires_at"),
            sa.literal("order").label("reason"),
            o.c.order_id.label("reference"),
            sa.literal(0).label("shortfall"),
            sa.literal(now, sa.DateTime()).label("created_at"),
        )
        .select_from(
            o.outerjoin(
                c, sa.and_(c.c.workspace_id == o.c.workspace_id, c.c.customer_id == o.c.customer_id)
            ).outerjoin(
                t, sa.and_(t.c.workspace_id == o.c.workspace_id, t.c.customer_id == o.c.customer_id)
            )
        )
        .where(*where)
    )
    cols = [col.name for col in points_ledger.columns]
    inserted = conn.execute(
        pg_insert(points_ledger)
        .from_select(cols, source)
        .on_conflict_do_nothing()
        .returning(points_ledger.c.customer_id)
    ).all()
    new_customers = sorted({str(r[0]) for r in inserted})
    # One staged insert: a multi-row VALUES statement of every new member (30k in the 50K demo)
    # took SQLAlchemy longer to compile than the database to run.
    n = len(new_customers)
    insert_new(
        conn,
        loyalty_accounts,
        pa.table(
            {
                "workspace_id": pa.array([workspace_id] * n, pa.string()),
                "customer_id": pa.array(new_customers, pa.string()),
                "created_at": pa.array([now] * n, pa.timestamp("us")),
            }
        ),
        ("workspace_id", "customer_id"),
    )
    return len(inserted)


def refund_demands(conn: sa.Connection, workspace_id: str) -> pd.DataFrame:
    """Per refunded order with points: what is still to be taken back (customer, key, want)."""
    rows = conn.execute(
        sa.text(
            """
            WITH earned AS (
                SELECT reference AS order_id, min(customer_id) AS customer_id,
                       min(idempotency_key) AS lot_id, sum(amount) AS pts
                FROM points_ledger
                WHERE workspace_id = :ws AND kind = 'earn' AND reason = 'order'
                GROUP BY reference),
            reversed AS (
                SELECT reference AS order_id, sum(shortfall - amount) AS pts
                FROM points_ledger
                WHERE workspace_id = :ws AND kind = 'reverse' AND reason = 'refund'
                GROUP BY reference)
            SELECT e.customer_id, e.order_id, e.lot_id,
                   CAST(ROUND(e.pts * CASE WHEN o.refunded >= o.total THEN 1
                                           ELSE o.refunded / o.total END) AS BIGINT) AS target,
                   COALESCE(r.pts, 0) AS done
            FROM earned e
            JOIN orders o ON o.workspace_id = :ws AND o.order_id = e.order_id
            LEFT JOIN reversed r ON r.order_id = e.order_id
            WHERE o.refunded > 0 AND o.total > 0
            """
        ),
        {"ws": workspace_id},
    ).all()
    df = pd.DataFrame(rows, columns=["customer_id", "order_id", "lot_id", "target", "done"])
    df["want"] = df["target"].astype("int64") - df["done"].astype("int64")
    df = df[df["want"] > 0]
    return pd.DataFrame(
        {
            "customer_id": df["customer_id"],
            "key": [
                f"reverse:{short_key(o)}:{int(t)}"
                for o, t in zip(df["order_id"], df["target"], strict=True)
            ],
            "want": df["want"].astype("int64"),
            "preferred_lot": df["lot_id"],
            "reference": df["order_id"],
        }
    )


def reverse_refunds(db: Database, workspace_id: str, now: datetime) -> int:
    with db.engine.connect() as conn:
        demands = refund_demands(conn, workspace_id)
    return reverse(db, workspace_id, demands, now=now)
