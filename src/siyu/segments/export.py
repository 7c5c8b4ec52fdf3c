"""Export a segment's members with their contact details to CSV or Parquet, streaming.

The members query runs on the database and comes back as Arrow record batches, each written
as it arrives (``pyarrow.csv.CSVWriter`` / ``pyarrow.parquet.ParquetWriter``): memory stays at
one batch however large the segment, and a progress callback sees every batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ibis
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from siyu.compute import tables
from siyu.errors import InvalidInput
from siyu.segments.saved import get_segment, membership_table
from siyu.store import Database

FORMATS = ("csv", "parquet")
EXPORT_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "user_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "country",
    "language",
    "timezone",
)
BATCH_ROWS = 50_000

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ExportReport:
    segment_id: str
    path: Path
    format: str
    rows: int
    as_of: datetime


def members_query(db: Database, workspace_id: str, segment_id: str, as_of: datetime) -> Any:
    """Ibis table of the segment's members now, with :data:`EXPORT_COLUMNS`."""
    segment = get_segment(db, workspace_id, segment_id)
    table = membership_table(db, workspace_id, {"_in": segment.expression}, as_of)
    ids = table.filter(table["_in"]).select("customer_id")
    customers = tables(db, workspace_id).customers
    joined = ids.join(customers, "customer_id")
    return joined.select(*EXPORT_COLUMNS).order_by("customer_id")


def record_batches(query: Any, rows: int) -> Iterator[pa.RecordBatch]:
    """Stream ``query`` as Arrow batches of about ``rows`` rows.

    Ibis 12's DuckDB ``to_pyarrow_batches`` calls a cursor method DuckDB 2 removed, so on DuckDB
    the compiled SQL runs through DuckDB's own Arrow reader; other engines use Ibis.
    """
    backend = ibis.get_backend(query)
    if backend.name == "duckdb":
        sql = ibis.to_sql(query, dialect="duckdb")
        yield from backend.con.sql(str(sql)).to_arrow_reader(rows)
    else:
        yield from query.to_pyarrow_batches(chunk_size=rows)


def export_segment(
    db: Database,
    workspace_id: str,
    segment_id: str,
    path: Path,
    *,
    fmt: str | None = None,
    as_of: datetime | None = None,
    progress: Progress | None = None,
) -> ExportReport:
    """Write the members of ``segment_id`` to ``path``; ``fmt`` defaults to the file suffix."""
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise InvalidInput(
            f"Export format {fmt or '(none)'!r} is not supported.",
            hint="Use a .csv or .parquet file name, or --format csv|parquet.",
            field="format",
        )
    as_of = as_of or datetime.now(UTC).replace(tzinfo=None)
    query = members_query(db, workspace_id, segment_id, as_of)
    total = int(query.count().execute())
    schema = pa.schema([(name, pa.string()) for name in EXPORT_COLUMNS])
    rows = 0
    writer: Any = (
        pacsv.CSVWriter(str(path), schema)
        if fmt == "csv"
        else pq.ParquetWriter(str(path), schema, compression="zstd")
    )
    try:
        if progress:
            progress(0, total)
        for batch in record_batches(query, BATCH_ROWS):
            columns = [batch.column(name).cast(pa.string()) for name in EXPORT_COLUMNS]
            out = pa.record_batch(columns, schema=schema)
            if fmt == "csv":
                writer.write(out)
            else:
                writer.write_batch(out)
            rows += out.num_rows
            if progress:
                progress(rows, total)
    finally:
        writer.close()
    return ExportReport(segment_id, path, fmt, rows, as_of)


__all__ = ["EXPORT_COLUMNS", "FORMATS", "ExportReport", "export_segment", "members_query"]
