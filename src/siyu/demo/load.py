"""Load the demo brand into a workspace through the same pipeline as real data (no side door)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from typing import TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from siyu.access import Workspace
from siyu.collect import IngestReport, Part
from siyu.collect.sources import ensure_source
from siyu.gcpause import collector_paused
from siyu.money.fx import fill_base_values, store_rates
from siyu.runtime import Runtime
from siyu.store import schema
from siyu.store.bulk import append

HISTORY_DAYS = 800
T = TypeVar("T")
GENERATOR_PROCESS_FROM = 20_000
"""From this many customers the generator runs in a process of its own
(:mod:`siyu.demo.elsewhere`): starting it costs about a second, which a small demo would not
win back."""


def load_demo(
    rt: Runtime,
    workspace: Workspace,
    *,
    customers: int,
    seed: int,
    as_of: date | None = None,
    on_records: Callable[[int], None] | None = None,
) -> IngestReport:
    """Generate and ingest the demo brand; store FX rates first and the true persons aside."""
    from siyu.demo import SOURCES, fx_rates, generate_with_truth
    from siyu.demo.elsewhere import generated_elsewhere

    day = as_of or datetime.now(UTC).date()
    ws = workspace.workspace_id
    rates = fx_rates(day, seed, HISTORY_DAYS)
    rates = rates.set_column(
        rates.schema.get_field_index("rate"),
        "rate",
        pc.cast(rates["rate"], pa.decimal128(24, 10)),
    )
    with rt.db.engine.begin() as conn:
        sources = {name: ensure_source(conn, ws, name, kind).source_id for name, kind in SOURCES}
        store_rates(conn, ws, rates.select(["day", "currency", "base_currency", "rate"]), "demo")
    pipeline = rt.pipeline(workspace)

    def parts() -> Iterator[Part]:
        """Every chunk's sources in turn; a chunk's true persons are stored once it is read."""
        made = (
            generated_elsewhere(customers, seed, day)
            if customers >= GENERATOR_PROCESS_FROM
            else _ahead(generate_with_truth(customers, seed, day))
        )
        for chunks, people in made:
            chunks.reverse()
            while chunks:  # popped: a source's messages are freed once ingested
                chunk = chunks.pop()
                yield Part(chunk.records, sources[chunk.source], f"demo:{chunk.source}")
            _store_truth(rt, ws, people)

    # The collector stays paused for the whole load: the generator thread's and the pipeline's
    # own pauses otherwise re-enabled it for each other, and each re-enabling scanned the
    # chunk's live dicts (about 6 s of a 50K demo's load, measured with py-spy).
    with collector_paused():
        report = pipeline.ingest_parts(parts(), progress=on_records)
    with rt.db.engine.begin() as conn:
        fill_base_values(conn, ws)
    return report


def _store_truth(rt: Runtime, workspace_id: str, people: pa.Table) -> None:
    """Keep a chunk's true persons aside (``demo_truth``), for measuring identity resolution."""
    n = people.num_rows
    data = people.select(["person_id", "kind", "value", "source", "adversarial"])
    with rt.db.write_lock, rt.db.engine.begin() as conn:
        append(
            conn,
            schema.demo_truth,
            data.add_column(0, "workspace_id", pa.array([workspace_id] * n, pa.string())),
        )


def _ahead(items: Iterator[T]) -> Iterator[T]:
    """Yield ``items`` while a worker thread already makes the next one.

    The generator is plain Python, the pipeline's writes mostly database work without the GIL:
    making chunk n+1 during the writes of chunk n uses the second core. At most one item is
    made ahead, so memory holds two chunks at most.
    """
    with ThreadPoolExecutor(1, thread_name_prefix="siyu-demo") as pool:
        pending = pool.submit(next, items, None)
        while (item := pending.result()) is not None:
            pending = pool.submit(next, items, None)
            yield item
