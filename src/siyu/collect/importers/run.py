"""Running an import: stream, prepare, build messages, ingest, checkpoint, summarise.

The file is identified by its SHA-256. After every slice of complete orders is ingested (one
pipeline call, committed), the number of rows done is saved in ``import_checkpoints``; an
interrupted import (even SIGKILL) resumes after the last saved slice. Rows ingested after the
last checkpoint are sent again on resume and are duplicates, because message ids are
deterministic: the result equals an uninterrupted import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
import sqlalchemy as sa

from siyu.collect.columnar import ColumnarBatch, ingest_columns
from siyu.collect.importers.columnar import ColumnContext
from siyu.collect.importers.orders import group_starts
from siyu.collect.importers.reader import batches, file_hash
from siyu.collect.pipeline import Pipeline
from siyu.collect.tables import import_checkpoints
from siyu.collect.validate import Record
from siyu.errors import NotFound


class Importer(Protocol):
    """What ``registry.importers`` holds: a file format and its translation."""

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def delimiter(self) -> str: ...

    @property
    def group_field(self) -> str | None:
        """Rows sharing this field's value are one record (an order); None: one row each."""

    def prepare(self, batch: pa.RecordBatch | pa.Table) -> pa.Table: ...

    def build(self, table: pa.Table, origin_row: int) -> Iterator[Record]: ...


@runtime_checkable
class ColumnarImporter(Importer, Protocol):
    """An importer that builds its plain records as columns (see importers/columnar.py)."""

    def build_columns(
        self, table: pa.Table, origin_row: int, context: ColumnContext
    ) -> tuple[ColumnarBatch | None, list[Record]]: ...


def _context(pipeline: Pipeline) -> ColumnContext:
    settings = pipeline.settings
    return ColumnContext(
        workspace_id=pipeline.workspace.workspace_id,
        base_currency=pipeline.workspace.base_currency,
        now=_now(),
        max_future_skew=timedelta(seconds=settings.max_future_skew_seconds),
        max_event_bytes=settings.max_event_bytes,
    )


@dataclass
class ImportSummary:
    """Rows read this run; messages and what became of them, over all runs of this file."""

    file_hash: str
    rows: int = 0
    resumed_at: int = 0
    already_done: bool = False
    messages: int = 0
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _load(conn: sa.Connection, key: dict[str, str]) -> Any:
    t = import_checkpoints
    return conn.execute(sa.select(t).where(*(t.c[k] == v for k, v in key.items()))).first()


def _save(engine: sa.Engine, key: dict[str, str], name: str, s: ImportSummary, rows: int,
          finished: bool) -> None:  # fmt: skip
    t = import_checkpoints
    values = {
        "file_name": name[:500],
        "rows_done": rows,
        "finished": finished,
        "stored": s.stored,
        "duplicates": s.duplicates,
        "quarantined": s.quarantined,
        "updated_at": _now(),
    }
    with engine.begin() as conn:
        if _load(conn, key) is None:
            conn.execute(t.insert().values(**key, **values))
        else:
            conn.execute(t.update().where(*(t.c[k] == v for k, v in key.items())).values(**values))


def _cuts(table: pa.Table, group_field: str | None, rows: int) -> tuple[list[int], int]:
    """Slice ends of about ``rows`` rows at order boundaries, and where the held-back (possibly
    incomplete) last order begins."""
    n = table.num_rows
    starts = group_starts(table[group_field]) if group_field else np.arange(n, dtype=np.int64)
    complete = int(starts[-1]) if group_field and len(starts) else n
    targets = np.arange(rows, complete, rows)
    ends = sorted({int(starts[np.searchsorted(starts, t)]) for t in targets if t < complete})
    return [e for e in ends if 0 < e < complete] + ([complete] if complete else []), complete


def run_import(
    pipeline: Pipeline,
    importer: Importer,
    path: Path,
    *,
    source_id: str | None = None,
    batch_rows: int = 20_000,
    progress: Callable[[int], None] | None = None,
    on_checkpoint: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Import ``path`` with ``importer`` through the pipeline; resumable and idempotent."""
    if not path.is_file():
        raise NotFound(f"File {path} does not exist.", hint="Check the path.")
    digest = file_hash(path)
    key = {
        "workspace_id": pipeline.workspace.workspace_id,
        "importer": importer.name,
        "file_hash": digest,
    }
    summary = ImportSummary(digest)
    engine = pipeline.db.engine
    with engine.connect() as conn:
        saved = _load(conn, key)
    skip = 0
    if saved is not None:
        summary.stored, summary.duplicates = saved.stored, saved.duplicates
        summary.quarantined = saved.quarantined
        if saved.finished:
            summary.already_done = True
            return summary
        skip = summary.resumed_at = int(saved.rows_done)
    origin = f"import:{importer.name}:{path.name}"
    done = skip  # data rows fully ingested (from the start of the file)
    carry: pa.Table | None = None

    def flush(table: pa.Table) -> None:
        nonlocal done
        origin_row = done + 2  # header is row 1
        reports = []
        if isinstance(importer, ColumnarImporter):
            batch, records = importer.build_columns(table, origin_row, _context(pipeline))
            if batch is not None:
                reports.append(ingest_columns(pipeline, batch, source_id=source_id, origin=origin))
        else:
            records = list(importer.build(table, origin_row=origin_row))
        reports.append(pipeline.ingest(records, source_id=source_id, origin=origin))
        for report in reports:
            summary.messages += report.read
            summary.stored += report.stored
            summary.duplicates += report.duplicates
            summary.quarantined += report.quarantined
        done += table.num_rows
        _save(engine, key, path.name, summary, done, False)
        if on_checkpoint is not None:
            on_checkpoint(done)

    for batch in batches(path, importer.delimiter):
        n = batch.num_rows
        if skip >= n:
            skip -= n
            continue
        if skip:
            batch, skip = batch.slice(skip), 0
        summary.rows += batch.num_rows
        prepared = importer.prepare(batch)
        table = pa.concat_tables([carry, prepared]) if carry is not None else prepared
        ends, complete = _cuts(table, importer.group_field, batch_rows)
        begin = 0
        for end in ends:
            flush(table.slice(begin, end - begin))
            begin = end
        carry = table.slice(complete) if complete < table.num_rows else None
        if progress is not None:
            progress(n)
    if carry is not None and carry.num_rows:
        flush(carry)
    _save(engine, key, path.name, summary, done, True)
    return summary
