"""Property: whatever sequence of earn, redeem, refund and expire, the books hold.

- the sum of the ledger equals the sum of the derived balances (nothing is lost or created
  outside a posting), and every row pairs with its system account (double entry);
- no balance and no lot is ever negative;
- a redemption succeeds exactly when the available (unexpired) balance covers it.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import pandas as pd
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siyu.loyalty.ledger import InsufficientPoints, earn, expire, open_lots, redeem, reverse
from siyu.runtime import Runtime

_run = itertools.count()

op = st.one_of(
    st.tuples(st.just("earn"), st.integers(0, 1), st.integers(1, 500)),
    st.tuples(st.just("redeem"), st.integers(0, 1), st.integers(1, 600)),
    st.tuples(st.just("refund"), st.integers(0, 1), st.integers(1, 600)),
    st.tuples(st.just("wait"), st.just(0), st.integers(1, 400)),  # days; lots expire after 365
)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(op, min_size=1, max_size=8))
def test_no_sequence_breaks_the_books(rt: Runtime, ops: list[tuple[str, int, int]]) -> None:
    ws = rt.workspace().workspace_id
    run = next(_run)
    people = [f"p{run}-a", f"p{run}-b"]
    now = datetime(2026, 1, 1)
    for step, (kind, who, amount) in enumerate(ops):
        cid = people[who]
        key = f"{run}-{step}"
        if kind == "earn":
            earn(rt.db, ws, cid, amount, key=key, reason="order", reference=key, now=now)
        elif kind == "redeem":
            with rt.db.engine.connect() as conn:
                available = int(open_lots(conn, ws, [cid], now)["remaining"].sum())
            try:
                redeem(rt.db, ws, cid, amount, key=key, now=now)
                assert available >= amount
            except InsufficientPoints:
                assert available < amount
        elif kind == "refund":
            demand = pd.DataFrame(
                {
                    "customer_id": [cid],
                    "key": [key],
                    "want": [amount],
                    "preferred_lot": [f"{run}-0"],
                    "reference": [key],
                }
            )
            reverse(rt.db, ws, demand, now=now)
        else:
            now += timedelta(days=amount)
            with rt.db.engine.begin() as conn:
                expire(conn, ws, now)
        _check_books(rt, ws)


def _check_books(rt: Runtime, ws: str) -> None:
    with rt.db.engine.connect() as conn:
        total = conn.execute(
            sa.text("SELECT COALESCE(SUM(amount), 0) FROM points_ledger WHERE workspace_id = :ws"),
            {"ws": ws},
        ).scalar_one()
        per_customer = conn.execute(
            sa.text(
                "SELECT customer_id, SUM(amount) FROM points_ledger WHERE workspace_id = :ws "
                "GROUP BY customer_id"
            ),
            {"ws": ws},
        ).all()
        lots = conn.execute(
            sa.text(
                "SELECT lot_id, SUM(amount) FROM points_ledger WHERE workspace_id = :ws "
                "AND lot_id IS NOT NULL GROUP BY lot_id"
            ),
            {"ws": ws},
        ).all()
        unbalanced = conn.execute(
            sa.text(
                "SELECT COUNT(*) FROM points_ledger WHERE workspace_id = :ws AND ("
                "(kind = 'earn' AND (amount <= 0 OR contra_account NOT LIKE 'issued:%')) OR "
                "(kind <> 'earn' AND amount > 0))"
            ),
            {"ws": ws},
        ).scalar_one()
    balances = {c: int(b) for c, b in per_customer}
    assert int(total) == sum(balances.values())
    assert all(b >= 0 for b in balances.values()), balances
    assert all(int(left) >= 0 for _, left in lots)
    assert unbalanced == 0
