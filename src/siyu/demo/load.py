"""Load the demo brand into a workspace through the same pipeline as real data (no side door)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

import pyarrow as pa
import pyarrow.compute as pc

from siyu.access import Workspace
from siyu.collect import IngestReport
from siyu.collect.sources import ensure_source
from siyu.money.fx import fill_base_values, store_rates
from siyu.runtime import Runtime
from siyu.store import schema
from siyu.store.bulk import append

HISTORY_DAYS = 800


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
    from siyu.demo import SOURCES, fx_rates, generate, truth

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
    report = IngestReport()
    for chunk in generate(customers, seed, day):
        part = pipeline.ingest(
            chunk.records, source_id=sources[chunk.source], origin=f"demo:{chunk.source}"
        )
        report.add(part)
        if on_records is not None:
            on_records(len(chunk.records))
    with rt.db.engine.begin() as conn:
        for table in truth(customers, seed, day):
            n = table.num_rows
            data = table.select(["person_id", "kind", "value", "source", "adversarial"])
            append(
                conn,
                schema.demo_truth,
                data.add_column(0, "workspace_id", pa.array([ws] * n, pa.string())),
            )
        fill_base_values(conn, ws)
    return report
