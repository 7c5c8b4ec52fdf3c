"""Property tests of the pipeline (hypothesis), on DuckDB and PostgreSQL.

- every input record ends up stored exactly once, a duplicate, or quarantined: nothing is lost;
- re-sending and shuffling batches changes nothing that is stored;
- order totals equal the sum of their lines where the source says so.
"""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siyu.collect import Pipeline
from siyu.runtime import Runtime
from tests.collect.helpers import order, track

GOOD = st.builds(
    lambda i, event: track(f"m{i}", event, user=f"u{i % 5}"),
    st.integers(0, 40),
    st.sampled_from(["Product Viewed", "Email Opened", "Signed Up"]),
)


def _order(i: int, n_lines: int) -> dict[str, Any]:
    # Content is a function of the message id: one messageId is one event (Segment semantics).
    lines = [
        (f"sku{j}", float((i * 37 + j * 11) % 500 + 1), 1 + (i + j) % 4) for j in range(n_lines)
    ]
    return order(f"o{i}-{n_lines}", lines=lines, mid=f"ord{i}-{n_lines}")


ORDERS = st.builds(_order, st.integers(0, 10), st.integers(1, 4))
BAD = st.sampled_from(
    [
        "{broken",
        {"type": "track", "event": "X"},
        {"type": "track", "userId": "u", "event": "X", "timestamp": "2025-01-01T00:00:00"},
        {"type": "nope", "userId": "u"},
        order("bad", total=1, currency="ZZZ"),
    ]
)
RECORDS = st.lists(st.one_of(GOOD, GOOD, ORDERS, BAD), min_size=1, max_size=40)

SETTINGS = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    derandomize=True,
)


def _snapshot(rt: Runtime) -> dict[str, Any]:
    with rt.db.engine.connect() as conn:
        events = conn.execute(sa.text("SELECT message_id FROM events ORDER BY 1")).fetchall()
        orders = conn.execute(
            sa.text("SELECT order_id, total, line_count FROM orders ORDER BY 1")
        ).fetchall()
        lines = conn.execute(
            sa.text("SELECT order_id, line_no, price, quantity FROM order_lines ORDER BY 1, 2")
        ).fetchall()
    return {"events": events, "orders": orders, "lines": lines}


def _reset(rt: Runtime) -> None:
    with rt.db.engine.begin() as conn:
        for table in ("events", "orders", "order_lines", "quarantine", "customers", "products"):
            conn.execute(sa.text(f"DELETE FROM {table}"))


@SETTINGS
@given(records=RECORDS, seed=st.integers(0, 10_000))
def test_nothing_lost_and_resend_or_shuffle_changes_nothing(
    rt: Runtime, records: list[Any], seed: int
) -> None:
    _reset(rt)
    pipeline = Pipeline(rt.db, rt.workspace(), rt.settings)
    report = pipeline.ingest(records)
    assert report.read == len(records)
    assert report.stored + report.duplicates + report.quarantined == report.read
    with rt.db.engine.connect() as conn:
        quarantined = conn.execute(sa.text("SELECT count(*) FROM quarantine")).scalar_one()
    assert quarantined == report.quarantined
    before = _snapshot(rt)

    shuffled = list(records)
    random.Random(seed).shuffle(shuffled)
    again = pipeline.ingest(shuffled)
    assert again.stored == 0
    assert _snapshot(rt) == before

    _reset(rt)
    pipeline.ingest(shuffled)
    # Same set of stored events and orders whatever the order of arrival (conflicting orders
    # aside: which of two conflicting totals wins depends on arrival, so none are generated).
    assert _snapshot(rt) == before


@SETTINGS
@given(orders=st.lists(ORDERS, min_size=1, max_size=10))
def test_order_totals_equal_sum_of_lines(rt: Runtime, orders: list[Any]) -> None:
    _reset(rt)
    Pipeline(rt.db, rt.workspace(), rt.settings).ingest(orders)
    with rt.db.engine.connect() as conn:
        pairs = conn.execute(
            sa.text(
                "SELECT o.order_id, o.total, sum(l.price * l.quantity) FROM orders o "
                "JOIN order_lines l USING (workspace_id, order_id) GROUP BY o.order_id, o.total"
            )
        ).fetchall()
    assert pairs
    for order_id, total, lines in pairs:
        assert Decimal(total) == Decimal(lines), order_id
