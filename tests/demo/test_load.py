"""The demo brand goes through the real pipeline on both engines, losing nothing."""

from __future__ import annotations

from datetime import date

import pytest
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


def test_the_generator_process_sends_exactly_the_generators_chunks() -> None:
    """From GENERATOR_PROCESS_FROM customers the demo is made in a child process: the same
    chunks in the same order, and the child ends with the last one."""
    from siyu.demo import generate_with_truth
    from siyu.demo.elsewhere import generated_elsewhere

    day = date(2025, 6, 30)
    here = list(generate_with_truth(700, 5, day))
    sent = list(generated_elsewhere(700, 5, day))
    assert len(sent) == len(here) > 0
    for (chunks_a, people_a), (chunks_b, people_b) in zip(here, sent, strict=True):
        assert [(c.source, c.records) for c in chunks_a] == [
            (c.source, c.records) for c in chunks_b
        ]
        assert people_a.equals(people_b)


def test_a_failure_in_the_generator_process_is_raised_with_its_traceback() -> None:

    from siyu.demo.elsewhere import generated_elsewhere
    from siyu.errors import SiyuError

    with pytest.raises(SiyuError, match="demo generator failed") as caught:
        list(generated_elsewhere(10, -1, date(2025, 6, 30)))  # a negative seed: refused
    assert "InvalidInput" in caught.value.message


@pytest.mark.timeout(120)  # a regression hangs: fail it, not the whole run at 900 s
def test_a_generator_process_that_dies_is_an_error_not_a_hang() -> None:
    """Killed in the middle of sending a chunk: the second chunk is made while the first is
    handed over, then the child waits in ``send`` with part of it in the pipe (a chunk is
    megabytes, the pipe's buffer 64 KB). A queue whose write end the parent also held left
    the parent waiting for the rest of that chunk for good (seen once in CI)."""
    import multiprocessing
    import os
    import signal
    import time

    from siyu.demo.elsewhere import generated_elsewhere
    from siyu.errors import SiyuError

    made = generated_elsewhere(12_000, 5, date(2025, 6, 30))  # three chunks
    next(made)
    time.sleep(3)  # the next chunk is made and partly written
    children = [c for c in multiprocessing.active_children() if c.name == "siyu-demo-generator"]
    assert len(children) == 1
    assert children[0].pid is not None
    os.kill(children[0].pid, signal.SIGKILL)
    with pytest.raises(SiyuError, match="stopped before sending every chunk"):
        list(made)
