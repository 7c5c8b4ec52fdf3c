"""Running an import: stream, prepare, build messages, ingest, checkpoint, summarise.

The file is identified by its SHA-256. After every slice of complete orders is ingested (one
transaction, its parts stored as they are built; see ``SliceWriter``), the number of rows done
is saved in ``import_checkpoints``, in the slice's transaction when it is all columns; an
interrupted import (even SIGKILL) resumes after the last saved slice. Rows ingested after the
last checkpoint are sent again on resume and are duplicates, because message ids are
deterministic: the result equals an uninterrupted import.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np
import pyarrow as pa
import sqlalchemy as sa

from siyu.collect.columnar import ColumnarBatch, Expectation, SliceWriter
from siyu.collect.importers.columnar import ColumnContext
from siyu.collect.importers.orders import group_starts
from siyu.collect.importers.reader import batches, file_hash
from siyu.collect.pipeline import IngestReport, Pipeline
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
    ) -> tuple[ColumnarBatch | None, list[Record], int]:
        """Columns of the plain records, messages of the others, and how many identify
        messages were left out as repeats within the slice (counted as read and repeated
        details)."""


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
    """Rows read this run; messages and what became of them, over all runs of this file:
    ``messages = stored + duplicates + repeated_details + quarantined``.

    ``duplicates`` are messages stored before (an overlapping export, a file imported again);
    ``repeated_details`` are a customer's identify messages whose details were already known
    (the same details with each order of a repeat customer, or from an earlier export): not
    duplicate rows, so a first import of an export shows no duplicates.
    """

    file_hash: str
    rows: int = 0
    resumed_at: int = 0
    already_done: bool = False
    messages: int = 0
    stored: int = 0
    duplicates: int = 0
    repeated_details: int = 0
    quarantined: int = 0


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _load(conn: sa.Connection, key: dict[str, str]) -> Any:
    t = import_checkpoints
    return conn.execute(sa.select(t).where(*(t.c[k] == v for k, v in key.items()))).first()


def _save(engine: sa.Engine, key: dict[str, str], name: str, s: ImportSummary, rows: int,
          finished: bool) -> None:  # fmt: skip
    with engine.begin() as conn:
        _write_checkpoint(conn, key, name, s, rows, finished)


def _write_checkpoint(conn: sa.Connection, key: dict[str, str], name: str, s: ImportSummary,
                      rows: int, finished: bool) -> None:  # fmt: skip
    t = import_checkpoints
    values = {
        "file_name": name[:500],
        "rows_done": rows,
        "finished": finished,
        "stored": s.stored,
        "duplicates": s.duplicates,
        "repeated_details": s.repeated_details,
        "quarantined": s.quarantined,
        "updated_at": _now(),
    }
    if _load(conn, key) is None:
        conn.execute(t.insert().values(**key, **values))
    else:
        conn.execute(t.update().where(*(t.c[k] == v for k, v in key.items())).values(**values))


def _cuts(table: pa.Table, group_field: str | None, rows: int, final: bool) -> list[int]:
    """Ends of slices of about ``rows`` rows, each at an order boundary.

    Rows after the last end are carried into the next call: the last order may continue in
    the next block, and a short remainder is better ingested with the next slice than alone.
    On the ``final`` call the last slice ends at the table's end.
    """
    n = table.num_rows
    if n == 0:
        return []
    if group_field:
        candidates = group_starts(table[group_field])[1:]
        if final:
            candidates = np.append(candidates, n)
    else:
        candidates = np.arange(1, n + 1, dtype=np.int64)
    if len(candidates) == 0:
        return []
    targets = np.arange(rows, int(candidates[-1]) + 1, rows)
    ends = sorted(set(candidates[np.searchsorted(candidates, targets)].tolist()))
    if final and (not ends or ends[-1] != n):
        ends.append(n)
    return [int(e) for e in ends]


T = TypeVar("T")
_END = object()


def ahead(items: Iterable[T], depth: int = 1) -> Generator[T, None, None]:
    """Iterate ``items`` in a worker thread, at most ``depth`` items ahead of the consumer.

    Arrow kernels and the database both release the GIL, so building the next slice runs
    while the current one is stored. An error in the worker is raised here; when the
    consumer stops early (an error, an interrupt), the worker stops after its current item.
    """
    channel: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[bool, Any]) -> bool:
        while not stop.is_set():
            try:
                channel.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    return
            put((True, _END))
        except BaseException as exc:  # handed to the consumer, raised there
            put((False, exc))

    worker = threading.Thread(target=work, name="siyu-import-ahead", daemon=True)
    worker.start()
    try:
        while True:
            ok, item = channel.get()
            if not ok:
                raise item
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        worker.join()


def run_import(
    pipeline: Pipeline,
    importer: Importer,
    path: Path,
    *,
    source_id: str | None = None,
    batch_rows: int = 20_000,
    part_rows: int = 125_000,
    progress: Callable[[int], None] | None = None,
    on_checkpoint: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Import ``path`` with ``importer`` through the pipeline; resumable and idempotent.

    ``batch_rows``: rows per slice (one transaction, one checkpoint); ``part_rows``: rows per
    part of a slice, built while the previous part is stored.
    """
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
        summary.repeated_details = saved.repeated_details
        summary.quarantined = saved.quarantined
        if saved.finished:
            summary.already_done = True
            return summary
        skip = summary.resumed_at = int(saved.rows_done)
    origin = f"import:{importer.name}:{path.name}"
    # Slices are stored without the key conflict checks until one meets a stored message.
    expect = Expectation()
    done = skip  # data rows fully ingested (from the start of the file)
    part = max(1, min(batch_rows, part_rows))

    def parts() -> Iterator[tuple[pa.Table, int, bool]]:
        """Prepared parts of slices of complete orders, each with the number of data rows
        before it and whether it ends its slice. A slice (about ``batch_rows`` rows) is one
        transaction and one checkpoint; its parts (about ``part_rows`` rows) are built one
        after the other while the previous one is stored. The reader's blocks are a few MiB;
        they are gathered up to ``batch_rows`` rows before preparing, so per-slice costs
        (commits, checkpoints) are paid per slice."""
        to_skip, before = skip, skip
        carry: pa.Table | None = None
        pending: list[pa.RecordBatch] = []
        pending_rows = 0

        def cut(raw: list[pa.RecordBatch], final: bool) -> Iterator[tuple[pa.Table, int, bool]]:
            nonlocal carry, before
            table = importer.prepare(pa.Table.from_batches(raw)) if raw else None
            if carry is not None:
                table = pa.concat_tables([carry, table]) if table is not None else carry
            if table is None:
                return
            begin = 0
            for end in _cuts(table, importer.group_field, batch_rows, final):
                piece = table.slice(begin, end - begin)
                start = 0
                ends = _cuts(piece, importer.group_field, part, True) if part < batch_rows else [
                    piece.num_rows]  # fmt: skip
                for k, stop in enumerate(ends):
                    yield piece.slice(start, stop - start), before, k == len(ends) - 1
                    before += stop - start
                    start = stop
                begin = end
            carry = table.slice(begin) if begin < table.num_rows else None

        # Importers naming the columns they read have only those converted.
        wanted: frozenset[str] | None = getattr(importer, "source_columns", None)
        for batch in batches(path, importer.delimiter, columns=wanted):
            n = batch.num_rows
            if to_skip >= n:
                to_skip -= n
                continue
            if to_skip:
                batch, to_skip = batch.slice(to_skip), 0
            summary.rows += batch.num_rows
            pending.append(batch)
            pending_rows += batch.num_rows
            if pending_rows >= batch_rows:
                yield from cut(pending, final=False)
                pending, pending_rows = [], 0
        yield from cut(pending, final=True)

    def build(
        table: pa.Table, before: int, last: bool
    ) -> tuple[int, ColumnarBatch | None, list[Record], int, bool]:
        """The columns and messages of one part (no database access: runs ahead)."""
        origin_row = before + 2  # header is row 1
        if isinstance(importer, ColumnarImporter):
            batch, records, repeated = importer.build_columns(table, origin_row, _context(pipeline))
            return table.num_rows, batch, records, repeated, last
        records = list(importer.build(table, origin_row=origin_row))
        return table.num_rows, None, records, 0, last

    def count(report: IngestReport) -> None:
        summary.messages += report.read
        summary.stored += report.stored
        summary.duplicates += report.duplicates - report.repeated_details
        summary.repeated_details += report.repeated_details
        summary.quarantined += report.quarantined

    writer = SliceWriter(pipeline, source_id=source_id, origin=origin, expect=expect)
    in_slice = 0  # rows of the current slice stored so far

    def store(
        rows: int, batch: ColumnarBatch | None, records: list[Record], repeated: int, last: bool
    ) -> None:
        nonlocal in_slice
        # Identify messages the importer left out as repeats within the part: read, and
        # repeated details.
        summary.messages += repeated
        summary.repeated_details += repeated
        if batch is not None:
            writer.add(batch)
        if records:
            # The message path writes through its own transactions: the columns stored so
            # far are committed first, without a checkpoint (a crash before the slice's
            # checkpoint sends them again: duplicates).
            for report in writer.commit():
                count(report)
            count(pipeline.ingest(records, source_id=source_id, origin=origin))
        in_slice += rows
        if progress is not None:
            progress(rows)
        if last:
            finish()

    def finish() -> None:
        """End the slice: its checkpoint, in the same transaction as its last rows."""
        nonlocal done, in_slice
        rows_done = done + in_slice

        def checkpoint(conn: sa.Connection, reports: list[IngestReport]) -> None:
            for report in reports:
                count(report)
            _write_checkpoint(conn, key, path.name, summary, rows_done, False)

        if writer.open:
            writer.commit(checkpoint)
        else:
            _save(engine, key, path.name, summary, rows_done, False)
        done, in_slice = rows_done, 0
        if on_checkpoint is not None:
            on_checkpoint(done)

    # Reading, preparing and building the next part overlaps with storing this one.
    try:
        for item in ahead(build(table, before, last) for table, before, last in parts()):
            store(*item)
        if in_slice or writer.open:  # the file ended inside a slice
            finish()
    finally:
        writer.abort()  # an error or interrupt: the open transaction (if any) is rolled back
    _save(engine, key, path.name, summary, done, True)
    return summary
