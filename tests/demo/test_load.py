"""The demo brand goes through the real pipeline on both engines, losing nothing."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa

from siyu.demo.load import load_demo
from siyu.runtime import Runtime


def test_demo_loads_through_the_pipeline(rt: Runtime) -> None:
    seen: list[int] = []
    report = load_demo(
        rt, rt.workspace(), customers=300, seed=3, as_of=date(2025, 6, 30), on_records=seen.append
    )
    assert report.read == sum(seen) > 0
    assert report.stored == report.read
    assert report.quarantined == 0
    with rt.db.engine.connect() as conn:

        def one(sql: str) -> int:
            return int(conn.execute(sa.text(sql)).scalar_one())

        assert one("SELECT count(*) FROM events") == report.stored
        assert one("SELECT count(*) FROM orders") == report.orders > 0
        assert one("SELECT count(*) FROM orders WHERE total_base IS NULL") == 0
        assert one("SELECT count(DISTINCT person_id) FROM demo_truth") == 300
        assert one("SELECT count(*) FROM sources") == 7
        assert one("SELECT count(DISTINCT source_id) FROM events") == 7
        assert one("SELECT count(*) FROM events WHERE timestamp >= '2025-06-30'") == 0
    # Loading again adds nothing: every record is a duplicate.
    again = load_demo(rt, rt.workspace(), customers=300, seed=3, as_of=date(2025, 6, 30))
    assert again.stored == 0
    assert again.duplicates == again.read


def test_generate_with_truth_is_generate_and_truth_in_one_pass() -> None:
    from siyu.demo import generate, generate_with_truth, truth

    args = (1_200, 5, date(2025, 6, 30))
    both = list(generate_with_truth(*args, chunk_customers=500))
    assert [(c.source, c.records) for chunks, _ in both for c in chunks] == [
        (c.source, c.records) for c in generate(*args, chunk_customers=500)
    ]
    assert [t for _, t in both] == list(truth(*args, chunk_customers=500))
