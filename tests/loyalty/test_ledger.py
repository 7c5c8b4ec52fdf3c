"""The points ledger on both engines: lots, FIFO redemption, expiry, refund reversal."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest
import sqlalchemy as sa

from siyu.errors import Conflict, InvalidInput
from siyu.loyalty.ledger import (
    InsufficientPoints,
    _reverse_in_database,
    balances,
    earn,
    earn_many,
    ensure_accounts,
    expire,
    locked,
    redeem,
    reverse,
    short_key,
)
from siyu.loyalty.tables import points_ledger
from siyu.runtime import Runtime

T0 = datetime(2026, 1, 10, 12, 0)


def _lines(rt: Runtime, key: str) -> list[tuple[str | None, int, int]]:
    with rt.db.engine.connect() as conn:
        rows = conn.execute(
            sa.select(points_ledger.c.lot_id, points_ledger.c.amount, points_ledger.c.shortfall)
            .where(points_ledger.c.idempotency_key == key)
            .order_by(points_ledger.c.line_no)
        ).all()
    return [(r[0], int(r[1]), int(r[2])) for r in rows]


def _balance(rt: Runtime, customer: str) -> int:
    with rt.db.engine.connect() as conn:
        return balances(conn, rt.workspace().workspace_id, [customer])[customer]


def test_redemption_takes_lots_first_in_first_out(rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    earn(rt.db, ws, "c1", 100, key="a", reason="signup", now=T0)
    earn(rt.db, ws, "c1", 50, key="b", reason="review", now=T0.replace(day=11))
    entry = redeem(rt.db, ws, "c1", 120, key="r1", now=T0.replace(day=20))
    assert entry.points == -120
    assert entry.created
    assert _lines(rt, "r1") == [("a", -100, 0), ("b", -20, 0)]
    assert _balance(rt, "c1") == 30
    # The same key again: the first result, nothing new.
    again = redeem(rt.db, ws, "c1", 120, key="r1", now=T0.replace(day=21))
    assert not again.created
    assert _balance(rt, "c1") == 30
    with pytest.raises(Conflict, match="was used for 120 points"):
        redeem(rt.db, ws, "c1", 10, key="r1", now=T0.replace(day=21))


def test_overspending_is_refused_with_the_available_balance(rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    earn(rt.db, ws, "c1", 40, key="a", reason="signup", now=T0)
    with pytest.raises(InsufficientPoints, match="has 40 points available; 41") as info:
        redeem(rt.db, ws, "c1", 41, key="r", now=T0)
    assert info.value.details == {"available": 40, "requested": 41}
    assert _balance(rt, "c1") == 40
    with pytest.raises(InvalidInput, match="positive whole number"):
        redeem(rt.db, ws, "c1", 0, key="r0", now=T0)


def test_lots_expire_individually_after_their_months(rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    earn(rt.db, ws, "c1", 100, key="old", reason="signup", now=T0)
    earn(rt.db, ws, "c1", 70, key="new", reason="review", now=datetime(2026, 6, 1))
    redeem(rt.db, ws, "c1", 30, key="r", now=datetime(2026, 7, 1))  # from "old" (FIFO)
    with rt.db.engine.begin() as conn:
        assert expire(conn, ws, datetime(2027, 1, 9)) == 0  # not yet
        assert expire(conn, ws, datetime(2027, 1, 10, 12, 0)) == 1
        assert expire(conn, ws, datetime(2027, 1, 11)) == 0  # idempotent
    assert _balance(rt, "c1") == 70
    assert [x[1] for x in _lines(rt, "expire:" + short_key("old"))] == [-70]
    # An expired lot cannot be redeemed even before the expiry job ran.
    with pytest.raises(InsufficientPoints, match="has 0 points"):
        redeem(rt.db, ws, "c1", 1, key="late", now=datetime(2027, 6, 2))


def test_reversal_claws_back_what_is_left_and_records_the_shortfall(rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    earn(rt.db, ws, "c1", 100, key="order:o1", reason="order", now=T0)
    earn(rt.db, ws, "c1", 20, key="bonus", reason="review", now=T0.replace(day=11))
    redeem(rt.db, ws, "c1", 90, key="spend", now=T0.replace(day=12))  # 90 of order:o1
    demand = pd.DataFrame(
        {
            "customer_id": ["c1"],
            "key": ["rev1"],
            "want": [100],
            "preferred_lot": ["order:o1"],
            "reference": ["o1"],
        }
    )
    assert reverse(rt.db, ws, demand, now=T0.replace(day=13)) == 1
    # 10 left on the order's lot, then 20 from the bonus; 70 were spent: shortfall.
    assert _lines(rt, "rev1") == [("order:o1", -10, 0), ("bonus", -20, 0), (None, 0, 70)]
    assert _balance(rt, "c1") == 0
    assert reverse(rt.db, ws, demand, now=T0.replace(day=14)) == 0


def test_bulk_paths_beyond_one_statements_parameters(rt: Runtime) -> None:
    # 300 customers: more than SMALL_BATCH, so accounts and rows go through the Arrow append and
    # the customer lists through one array parameter on PostgreSQL.
    ws = rt.workspace().workspace_id
    n = 300
    ids = [f"b{i:03d}" for i in range(n)]
    credits = pd.DataFrame(
        {
            "customer_id": ids * 2,
            "points": [30] * n + [50] * n,
            "key": [f"lot:a:{c}" for c in ids] + [f"lot:b:{c}" for c in ids],
            "reference": None,
            "expires_at": [datetime(2026, 6, 1)] * n + [datetime(2026, 9, 1)] * n,
        }
    )
    with rt.db.engine.begin() as conn:
        ensure_accounts(conn, ws, ids)
        earn_many(conn, ws, credits, reason="order", now=T0)
    demands = pd.DataFrame(
        {
            "customer_id": ids,
            "key": [f"rev:{c}" for c in ids],
            "want": [i % 100 for i in range(n)],  # 0..99 of the 80 each has
            "preferred_lot": "",
            "reference": "bulk",
        }
    )
    assert reverse(rt.db, ws, demands[demands["want"] > 0], now=T0) == n - n // 100
    with rt.db.engine.connect() as conn:
        got = balances(conn, ws, ids)
        accounts = conn.execute(sa.text("SELECT count(*) FROM loyalty_accounts")).scalar_one()
    assert accounts == n
    assert got == {c: max(80 - i % 100, 0) for i, c in enumerate(ids)}
    # FIFO: a claw-back of 45 takes the 30 expiring first, then 15 of the later lot.
    assert _lines(rt, "rev:b045") == [("lot:a:b045", -30, 0), ("lot:b:b045", -15, 0)]
    assert _lines(rt, "rev:b099") == [("lot:a:b099", -30, 0), ("lot:b:b099", -50, 0), (None, 0, 19)]


def test_claw_back_in_the_database_posts_what_the_vectorised_path_posts(rt: Runtime) -> None:
    # The same lots for two groups; group p goes through the pandas path, group s through the
    # in-database path: their lines must be the same (preferred lot first, FIFO, shortfall).
    ws = rt.workspace().workspace_id
    n = 40
    rows = []
    for g in ("p", "s"):
        for i in range(n):
            for j, (pts, exp) in enumerate(((30, 6), (50, 9), (20, 12))):
                rows.append(
                    {
                        "customer_id": f"{g}{i:02d}",
                        "points": pts,
                        "key": f"lot{j}:{g}{i:02d}",
                        "reference": None,
                        "expires_at": datetime(2026, exp, 1),
                    }
                )
    with rt.db.engine.begin() as conn:
        ensure_accounts(conn, ws, sorted({r["customer_id"] for r in rows}))
        earn_many(conn, ws, pd.DataFrame(rows), reason="order", now=T0)

    def demands(g: str) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "customer_id": [f"{g}{i:02d}" for i in range(n)],
                "key": [f"rev:{g}{i:02d}" for i in range(n)],
                "want": [(i * 7) % 120 + 1 for i in range(n)],
                "preferred_lot": [f"lot1:{g}{i:02d}" if i % 3 == 0 else "" for i in range(n)],
                "reference": "o",
            }
        )

    assert reverse(rt.db, ws, demands("p"), now=T0) == n
    with locked(rt.db, ws, [f"s{i:02d}" for i in range(n)]) as conn:
        assert _reverse_in_database(conn, ws, demands("s"), T0) == n

    def lines(g: str) -> list[tuple[str, int, str | None, int, int]]:
        with rt.db.engine.connect() as conn:
            got = conn.execute(
                sa.select(
                    points_ledger.c.idempotency_key,
                    points_ledger.c.line_no,
                    points_ledger.c.lot_id,
                    points_ledger.c.amount,
                    points_ledger.c.shortfall,
                )
                .where(points_ledger.c.kind == "reverse", points_ledger.c.customer_id.like(g + "%"))
                .order_by(points_ledger.c.idempotency_key, points_ledger.c.line_no)
            ).all()
        return [
            (k[5:], int(n), lot and lot[:5] + lot[6:], int(a), int(s)) for k, n, lot, a, s in got
        ]

    assert lines("p") == lines("s")
    assert lines("p")[:3] == [
        ("00", 0, "lot1:00", -1, 0),
        ("01", 0, "lot0:01", -8, 0),
        ("02", 0, "lot0:02", -15, 0),
    ]
