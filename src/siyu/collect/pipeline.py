"""The ingestion pipeline: the one path every record takes into siyu.

validate -> normalise -> deduplicate on (workspace, messageId) within and across batches ->
append events in bulk -> maintain orders, order lines, refunds, products, customers and consents
-> quarantine every record that cannot be stored, with its reason and position.

Input streams in chunks (``ingest_chunk_size``), so memory does not grow with input size. Each
chunk is one database transaction: a crash loses at most the chunk in flight, and re-sending it
stores nothing twice because every derived row is keyed by the event that produced it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import islice
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from siyu.access.workspaces import Workspace
from siyu.collect import rows
from siyu.collect.ecommerce import (
    CONSENT_UPDATED,
    ORDER_CANCELLED,
    ORDER_COMPLETED,
    ORDER_REFUNDED,
    OrderRefunded,
    own_act_sql,
)
from siyu.collect.quarantine import Rejection, store_rejections
from siyu.collect.validate import ValidCall, _dump, validate_chunk
from siyu.config import Settings
from siyu.gcpause import collector_paused
from siyu.identity.hook import after_ingest
from siyu.money.fx import fill_base_values
from siyu.store import schema
from siyu.store.bulk import (
    KeyStored,
    append,
    append_new,
    insert_all,
    insert_new,
    insert_new_keys,
    insert_select_new,
    stage,
    unstage,
    upsert,
    upsert_select,
)
from siyu.store.database import Database

Progress = Callable[[int], None]

# Records validated and turned into event rows together (Pipeline._prepare_chunk): a slice's
# dicts stay in the CPU caches through every stage. 2,048 is also DuckDB's vector size.
PREPARE_SLICE = 2_048


@dataclass
class IngestReport:
    """What happened to every input record: read = stored + duplicates + quarantined.

    ``repeated_details`` counts the identify messages among the duplicates: an importer keys
    a customer's identify message by the customer and the details, so a repeat customer's
    unchanged details come again as a duplicate, which an import summary reports apart from
    orders already imported.
    """

    read: int = 0
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    repeated_details: int = 0
    orders: int = 0
    refunds: int = 0
    quarantine_ids: list[str] = field(default_factory=list)
    stored_ids: list[str] = field(default_factory=list)

    def add(self, other: IngestReport) -> None:
        self.read += other.read
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.quarantined += other.quarantined
        self.repeated_details += other.repeated_details
        self.orders += other.orders
        self.refunds += other.refunds
        self.quarantine_ids += other.quarantine_ids
        self.stored_ids += other.stored_ids

    def as_dict(self) -> dict[str, int]:
        return {
            "read": self.read,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "quarantined": self.quarantined,
            "orders": self.orders,
            "refunds": self.refunds,
        }


@dataclass
class _Prepared:
    """A chunk validated and deduplicated within itself, ready to be written."""

    read: int
    now: datetime  # received_at of the chunk's records
    calls: list[ValidCall]  # valid, first of each messageId, customer_id set
    events: pa.Table  # the event rows of ``calls``, in their order
    rejected: list[Rejection]
    duplicates: int  # repeats of a messageId within the chunk
    repeated_details: int  # of which identify messages


@dataclass(frozen=True)
class Part:
    """The records of one source in a multi-source run (:meth:`Pipeline.ingest_parts`).

    ``start_position`` numbers the part's first record, as :meth:`Pipeline.ingest` does: a
    quarantined record's position is its place in its own part.
    """

    records: Iterable[Any]
    source_id: str | None = None
    origin: str = "api"
    start_position: int = 1


@dataclass(frozen=True)
class _Chunk:
    """One chunk of one part: what a worker thread prepares and this thread then writes."""

    records: list[Any]
    position: int  # of the chunk's first record within its part
    source_id: str | None
    origin: str


class Pipeline:
    """Ingest records into one workspace of one database."""

    def __init__(self, db: Database, workspace: Workspace, settings: Settings) -> None:
        self.db = db
        self.workspace = workspace
        self.settings = settings
        # DuckDB: whether the next chunk's events are expected to be new (see _write).
        self._expect_new = True

    def ingest(
        self,
        records: Iterable[Any],
        *,
        source_id: str | None = None,
        origin: str = "api",
        received_at: datetime | None = None,
        start_position: int = 1,
        progress: Progress | None = None,
        keep_ids: bool = False,
    ) -> IngestReport:
        """Ingest ``records`` (dicts, JSON text or :class:`Record`); return what happened.

        With more than one chunk, the next chunk is validated and turned into rows in a worker
        thread while this thread writes the current one: the database work (DuckDB's engine,
        PostgreSQL's COPY and round trips) runs without the GIL, so on two cores the Python
        work of one chunk overlaps the database work of the previous one. Chunks are still
        written one at a time and in input order, so the outcome is that of a plain loop.
        """
        return self.ingest_parts(
            [Part(records, source_id, origin, start_position)],
            received_at=received_at,
            progress=progress,
            keep_ids=keep_ids,
        )

    def ingest_parts(
        self,
        parts: Iterable[Part],
        *,
        received_at: datetime | None = None,
        progress: Progress | None = None,
        keep_ids: bool = False,
    ) -> IngestReport:
        """Ingest several sources' records in one run: :meth:`ingest` of each part in turn.

        The outcome is that of one :meth:`ingest` call per part, in order, but the chunks of all
        parts form one stream, so the next chunk is prepared while the current one is written
        even where a part changes: a loader that sends many parts of a few thousand records
        each (the demo brand: seven sources per slice of customers) otherwise prepared and
        wrote every part one after the other on one core. A chunk never mixes parts.
        """
        report = IngestReport()

        def finish(part: IngestReport, n: int) -> None:
            if not keep_ids:
                part.stored_ids = []
            report.add(part)
            if progress is not None:
                progress(n)

        work = self._work(parts)  # read in this thread only: the input may not be threadsafe
        first = next(work, None)
        if first is None:
            return report
        second = next(work, None)
        if second is None:  # one chunk (an HTTP batch): no thread hand-off on its latency
            prepared = self._prepare(first.records, first.position, first.source_id, received_at)
            finish(self._write(prepared, first.source_id, first.origin), len(first.records))
            return report
        # One pause of the cyclic collector for the whole run, not one per chunk and thread:
        # the collector's switch is process-wide, so the two threads' pauses re-enabled it
        # for each other, and a collection then ran on the preparing thread (the critical
        # path) over every live container, the caller's input included: 0.9 s of a 5.9 s run
        # of 300k events. A streamed run of 500k events left no cyclic garbage to collect.
        with (
            collector_paused(),
            _duckdb_threads_for_ingest(self.db),
            ThreadPoolExecutor(1, thread_name_prefix="siyu-ingest") as pool,
        ):
            current = first
            upcoming: _Chunk | None = second
            pending = pool.submit(
                self._prepare, first.records, first.position, first.source_id, received_at
            )
            while True:
                following = (
                    None
                    if upcoming is None
                    else pool.submit(
                        self._prepare,
                        upcoming.records,
                        upcoming.position,
                        upcoming.source_id,
                        received_at,
                    )
                )
                prepared = pending.result()
                finish(self._write(prepared, current.source_id, current.origin), prepared.read)
                del prepared  # freed before the next write, while the collector is paused
                if upcoming is None or following is None:
                    break
                current, pending, upcoming = upcoming, following, next(work, None)
        return report

    def _work(self, parts: Iterable[Part]) -> Iterator[_Chunk]:
        """The chunks of every part in order, each at most ``ingest_chunk_size`` records."""
        size = self.settings.ingest_chunk_size
        for part in parts:
            stream = iter(part.records)
            position = part.start_position
            while chunk := list(islice(stream, size)):
                yield _Chunk(chunk, position, part.source_id, part.origin)
                position += len(chunk)

    def _prepare(
        self, chunk: list[Any], start: int, source_id: str | None, received_at: datetime | None
    ) -> _Prepared:
        """Validate a chunk, deduplicate it and build its event rows (no database access)."""
        with collector_paused():
            return self._prepare_chunk(chunk, start, source_id, received_at)

    def _prepare_chunk(
        self, chunk: list[Any], start: int, source_id: str | None, received_at: datetime | None
    ) -> _Prepared:
        """Validate, deduplicate and build the event rows slice by slice (PREPARE_SLICE).

        Every stage walks its records once; over a whole chunk (tens of MB of dicts) each walk
        misses the CPU caches again, while a slice stays in them from validation to event
        rows: measured 18.1 -> 12.0 us per event. The outcome is the same as one pass: each
        record is validated on its own, and the first of each messageId in the chunk is kept.
        """
        now = received_at or datetime.now(UTC).replace(tzinfo=None)
        ws_id = self.workspace.workspace_id
        skew = timedelta(seconds=self.settings.max_future_skew_seconds)
        duplicates = repeated_details = 0
        seen: set[str] = set()
        keys: dict[tuple[str | None, str | None], str | None] = {}  # senders repeat in a chunk
        calls: list[ValidCall] = []
        tables: list[pa.Table] = []
        rejected: list[Rejection] = []
        for offset in range(0, len(chunk), PREPARE_SLICE):
            result = validate_chunk(
                chunk[offset : offset + PREPARE_SLICE],
                start=start + offset,
                received_at=now,
                max_event_bytes=self.settings.max_event_bytes,
                max_future_skew=skew,
            )
            rejected += result.rejected
            first = len(calls)
            repeats, details = rows.keep_new_calls(ws_id, result.valid, seen, keys, calls)
            duplicates += repeats
            repeated_details += details
            tables.append(rows.events_table(ws_id, calls[first:], source_id, now))
        events = pa.concat_tables(tables) if tables else rows.events_table(ws_id, [], None, now)
        return _Prepared(len(chunk), now, calls, events, rejected, duplicates, repeated_details)

    def _write(self, prepared: _Prepared, source_id: str | None, origin: str) -> IngestReport:
        """Store one prepared chunk in one transaction; return what happened to its records.

        On DuckDB the chunk's events first go in with a plain ``INSERT``: the primary key
        still refuses a stored messageId, but without ``ON CONFLICT``'s second look-up and the
        returned keys (about 1.2 us of CPU per event less, measured in isolation). A stored
        key fails the statement, and DuckDB then aborts the whole transaction (it has no
        savepoints), so the chunk is written again from the start with the conflict-checking
        insert; nothing of the first attempt remains. After a chunk with stored duplicates (a
        replay, a resent file) the next chunk goes straight to the checking insert, and back
        to the plain one after a chunk without. PostgreSQL does the same inside the insert
        under a savepoint (``store.bulk.insert_new_keys``).
        """
        with collector_paused():
            if self._expect_new and self.db.engine.dialect.name == "duckdb":
                try:
                    return self._write_chunk(prepared, source_id, origin, expect_new=True)
                except _StoredKey:
                    self._expect_new = False
            report = self._write_chunk(prepared, source_id, origin, expect_new=False)
            self._expect_new = report.duplicates == prepared.duplicates  # none was stored
            return report

    def _write_chunk(
        self, prepared: _Prepared, source_id: str | None, origin: str, *, expect_new: bool
    ) -> IngestReport:
        report = IngestReport(
            read=prepared.read,
            duplicates=prepared.duplicates,
            repeated_details=prepared.repeated_details,
        )
        rejected = prepared.rejected
        now = prepared.now
        ws = self.workspace.workspace_id
        with self.db.write_lock, self.db.engine.begin() as conn:
            new, events = self._insert_events_first(
                conn, prepared.calls, prepared.events, rejected, report, source_id, now, expect_new
            )
            report.stored = len(new)
            report.stored_ids = [v.message_id for v in new]
            if len(new) != events.num_rows:
                keep = pa.array(report.stored_ids, pa.string())
                events = events.filter(pc.is_in(events["message_id"], value_set=keep))
            self._profiles(conn, new, events, source_id, now)
            after_ingest(conn, ws, report.stored_ids, self.settings, received_at=now)  # One-ID
            report.quarantine_ids = store_rejections(
                conn, ws, rejected, source_id=source_id, origin=origin, received_at=now
            )
            report.quarantined = len(rejected)
        return report

    def _insert_events_first(
        self,
        conn: sa.Connection,
        candidates: list[ValidCall],
        events: pa.Table,
        rejected: list[Rejection],
        report: IngestReport,
        source_id: str | None,
        now: datetime,
        expect_new: bool,
    ) -> tuple[list[ValidCall], pa.Table]:
        """Insert the chunk's events, keep those the key did not refuse, then orders.

        The insert's own conflict check (ON CONFLICT DO NOTHING RETURNING) says which events
        are new, through the primary-key index, in the statement that stores them. A separate
        "which are stored?" query first would cost a second pass: on DuckDB a scan of every
        stored event (it looks a composite key up by index only when checking a conflict), on
        PostgreSQL a second staging copy and round trips. Events of orders or refunds then
        refused (conflicting totals, unknown orders) are deleted again in the same transaction,
        so the outcome equals checking first; a concurrent writer's events are refused by the
        key, so they count as duplicates. ``expect_new``: a plain insert, which raises
        :class:`_StoredKey` when a messageId is stored (see :meth:`_write`).
        """
        ws = self.workspace.workspace_id
        if expect_new:
            try:
                insert_all(conn, schema.events, events)
            except KeyStored as exc:
                raise _StoredKey from exc
            inserted_count = len(candidates)
        else:
            keys = insert_new_keys(conn, schema.events, events, ("message_id",))
            inserted_count = keys.num_rows
        report.duplicates += len(candidates) - inserted_count
        if inserted_count == len(candidates):
            new = candidates
        else:
            inserted = set(keys.column(0).to_pylist())
            new = [v for v in candidates if v.message_id in inserted]
            report.repeated_details += sum(
                1
                for v in candidates
                if v.message_id not in inserted and v.fields["type"] == "identify"
            )
        kept, order_report = self._orders(conn, new, rejected, source_id, now)
        report.orders, report.refunds = order_report
        if len(kept) != len(new):
            keep_ids = {v.message_id for v in kept}
            refused = [v.message_id for v in new if v.message_id not in keep_ids]
            e = schema.events
            conn.execute(e.delete().where(e.c.workspace_id == ws, e.c.message_id.in_(refused)))
        return kept, events

    def _orders(
        self,
        conn: sa.Connection,
        new: list[ValidCall],
        rejected: list[Rejection],
        source_id: str | None,
        now: datetime,
    ) -> tuple[list[ValidCall], tuple[int, int]]:
        """Store orders, lines and refunds of new events; reject conflicting ones.

        Returns the events that may be stored and (orders created, refunds applied).
        """
        ws = self.workspace.workspace_id
        base = self.workspace.base_currency
        orders, refund_calls = _orders_and_refunds(new)
        if not orders and not refund_calls:
            return new, (0, 0)
        order_calls = [rows.order_row(v, base) for v in orders]
        wanted = [o.props.order_id for o in order_calls] + [
            v.props.order_id for v in refund_calls if isinstance(v.props, OrderRefunded)
        ]
        stored = _lookup_orders(conn, ws, wanted)
        drop: set[str] = set()
        fresh: dict[str, rows.OrderRow] = {}
        for o in order_calls:
            oid = o.props.order_id
            known = stored.get(oid) or (
                (fresh[oid].total, fresh[oid].currency, Decimal(0)) if oid in fresh else None
            )
            if known is None:
                fresh[oid] = o
            elif (known[0], known[1]) != (o.total, o.currency):
                drop.add(o.call.message_id)
                rejected.append(
                    Rejection(
                        o.call.position,
                        "order_conflict",
                        f"order {oid} is already stored with total {known[0]} {known[1]}; "
                        f"this record says {o.total} {o.currency}. Send 'Order Updated' for a "
                        "change, or correct the record and replay it",
                        _dump(o.call.payload),
                        "properties.total",
                    )
                )
        created = list(fresh.values())
        if created:
            append(conn, schema.orders, rows.orders_table(ws, created, source_id, base, now))
            append(conn, schema.order_lines, rows.lines_table(ws, created))
        refunds = self._refunds(conn, refund_calls, stored, fresh, rejected, drop)
        touched = list(fresh) + [r[1] for r in refunds]
        if touched:
            fill_base_values(conn, ws, touched)
        return [v for v in new if v.message_id not in drop], (len(created), len(refunds))

    def _refunds(
        self,
        conn: sa.Connection,
        refund_calls: list[ValidCall],
        stored: dict[str, tuple[Decimal, str, Decimal]],
        fresh: dict[str, rows.OrderRow],
        rejected: list[Rejection],
        drop: set[str],
    ) -> list[tuple[str, str, datetime, str, Decimal]]:
        """Apply refunds to known orders; a refund that cannot apply is quarantined."""
        ws = self.workspace.workspace_id
        state: dict[str, tuple[Decimal, str, Decimal]] = dict(stored)
        state.update({oid: (o.total, o.currency, Decimal(0)) for oid, o in fresh.items()})
        applied: list[tuple[str, str, datetime, str, Decimal]] = []
        for v in refund_calls:
            assert isinstance(v.props, OrderRefunded)
            oid = v.props.order_id
            reason: tuple[str, str, str] | None = None
            if oid not in state:
                reason = (
                    "refund_unknown_order",
                    f"refund for order {oid}, which is not stored; import the order first, "
                    "then replay this record",
                    "properties.order_id",
                )
            else:
                total, currency, refunded = state[oid]
                amount = rows.refund_amount(v)
                remaining = total - refunded
                amount = remaining if amount is None else amount
                if v.props.currency and v.props.currency != currency:
                    reason = (
                        "invalid",
                        f"refund currency {v.props.currency} differs from order {oid}'s "
                        f"currency {currency}",
                        "properties.currency",
                    )
                elif amount > remaining:
                    reason = (
                        "refund_exceeds_order",
                        f"refund of {amount} {currency} exceeds the {remaining} {currency} "
                        f"left to refund on order {oid}",
                        "properties.total",
                    )
                else:
                    state[oid] = (total, currency, refunded + amount)
                    applied.append((v.message_id, oid, v.timestamp, str(currency), amount))
            if reason is not None:
                drop.add(v.message_id)
                rejected.append(
                    Rejection(v.position, reason[0], reason[1], _dump(v.payload), reason[2])
                )
        if applied:
            data = pa.table(
                {
                    "workspace_id": pa.array([ws] * len(applied), pa.string()),
                    "message_id": pa.array([a[0] for a in applied], pa.string()),
                    "order_id": pa.array([a[1] for a in applied], pa.string()),
                    "refunded_at": pa.array([a[2] for a in applied], rows.TS),
                    "currency": pa.array([a[3] for a in applied], pa.string()),
                    "amount": pa.array([a[4] for a in applied], rows.MONEY),
                }
            )
            append(conn, schema.refunds, data)
            _recompute_refunded(conn, ws, sorted({a[1] for a in applied}))
        return applied

    def _profiles(
        self,
        conn: sa.Connection,
        new: list[ValidCall],
        events: pa.Table,
        source_id: str | None,
        now: datetime,
    ) -> None:
        """Maintain products, customers and the consent ledger from stored events."""
        ws = self.workspace.workspace_id
        if not new:
            return
        upsert_products(conn, rows.products_table(ws, new, now))
        if conn.dialect.name == "duckdb":
            upsert_customers_from_events(conn, events, rows.identify_traits(new), now)
        else:
            active, passive = rows.customers_table(ws, new, events, now)
            upsert_customers(conn, active)
            if passive.num_rows:
                append_new(conn, schema.customers, passive)
        consent_calls = [
            v for v in new if v.props is not None and v.fields.get("event") == CONSENT_UPDATED
        ]
        if consent_calls:
            insert_new(
                conn,
                schema.consents,
                rows.consents_table(ws, consent_calls, source_id),
                ("consent_id",),
            )


_threads_lock = threading.Lock()
_threads_users: dict[int, tuple[int, int]] = {}  # id(Database) -> (runs, DuckDB threads before)


def _usable_cores() -> int:
    """The cores this process may run on (all of the machine's where affinity is unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


@contextmanager
def _duckdb_threads_for_ingest(db: Database) -> Iterator[None]:
    """Leave one core to the preparing thread while a multi-chunk ingest runs on DuckDB.

    DuckDB's ``threads`` setting is global to the database (it cannot be set per connection):
    it is lowered to the cores this process may use minus one for the first of overlapping
    runs on ``db`` and restored by the last. On two cores DuckDB then runs each statement in
    the writing thread alone: its own workers took the preparing thread's core and cost more
    CPU for the same work (50k-event chunks: about 1.3 us of CPU per event less).
    """
    if db.kind != "duckdb":
        yield
        return
    want = max(1, _usable_cores() - 1)
    key = id(db)
    with _threads_lock:
        runs, before = _threads_users.get(key, (0, 0))
        if runs == 0:
            cursor = db.duckdb_cursor()
            try:
                row = cursor.execute("SELECT current_setting('threads')").fetchone()
                before = int(row[0]) if row else 0
                if before > want:
                    cursor.execute(f"SET threads = {want}")
            finally:
                cursor.close()
        _threads_users[key] = (runs + 1, before)
    try:
        yield
    finally:
        with _threads_lock:
            runs, before = _threads_users.pop(key)
            if runs > 1:
                _threads_users[key] = (runs - 1, before)
            elif before > want:
                cursor = db.duckdb_cursor()
                try:
                    cursor.execute(f"SET threads = {before}")
                finally:
                    cursor.close()


class _StoredKey(Exception):
    """A chunk's plain events insert met a stored messageId (its transaction is void)."""


_REFUNDS = frozenset((ORDER_REFUNDED, ORDER_CANCELLED))


def _orders_and_refunds(calls: list[ValidCall]) -> tuple[list[ValidCall], list[ValidCall]]:
    """The order calls and the refund calls among ``calls``, in input order.

    One pass that reads each documented call's event name once (``rows.is_order`` and
    ``rows.is_refund`` give the same answer): this runs in the writing thread for every
    stored event, where a function call per event showed in the profile.
    """
    orders: list[ValidCall] = []
    refunds: list[ValidCall] = []
    for v in calls:
        if v.props is None:  # orders and refunds are documented events
            continue
        event = v.fields.get("event")
        if event == ORDER_COMPLETED:
            orders.append(v)
        elif event in _REFUNDS:
            refunds.append(v)
    return orders, refunds


_PRODUCT_ATTRIBUTES = ("sku", "name", "category", "brand", "price", "currency")


def upsert_products(conn: sa.Connection, data: pa.Table) -> None:
    """Insert new products; for known ones keep the latest non-empty attributes.

    Only rows that change something are written: a catalogue's products are in nearly every
    chunk, and an upsert of unchanged rows still writes a new version of each (the 50K demo's
    load: 4.2 s of its writing thread in about a hundred upserts of a few hundred products).
    ``updated_at`` is therefore the time a product last changed, not the last time it was seen.
    """
    if data.num_rows == 0:
        return
    name = stage(conn, schema.products, data)
    changes = " OR ".join(
        [f"(s.{c} IS NOT NULL AND s.{c} IS DISTINCT FROM p.{c})" for c in _PRODUCT_ATTRIBUTES]
        + ["p.product_id IS NULL", "s.first_seen_at < p.first_seen_at"]
    )
    try:
        upsert_select(
            conn,
            schema.products,
            data.column_names,
            f"SELECT {', '.join('s.' + c for c in data.column_names)} FROM {name} s "
            "LEFT JOIN products p ON p.workspace_id = s.workspace_id "
            f"AND p.product_id = s.product_id WHERE {changes}",
            ("workspace_id", "product_id"),
            {c: f"coalesce(excluded.{c}, t.{c})" for c in _PRODUCT_ATTRIBUTES}
            | {
                "first_seen_at": "least(t.first_seen_at, excluded.first_seen_at)",
                "updated_at": "excluded.updated_at",
            },
        )
    finally:
        unstage(conn, name)


def _customer_updates(conn: sa.Connection) -> dict[str, str]:
    """How a stored customer row takes in a chunk's row: traits merged, seen times widened.

    Traits follow the time they were said (``traits_at``), not the order rows arrive in: an
    import of older data after live tracking only fills values the row lacks. A row without a
    time (stored before migration 0018, or no identify yet) counts as the oldest; ties go to the
    incoming row.
    """
    duckdb = conn.dialect.name == "duckdb"
    newer = "(t.traits_at IS NULL OR excluded.traits_at >= t.traits_at)"

    def json_merge(base: str, top: str) -> str:
        if duckdb:
            return (
                f"json_merge_patch(coalesce({base}.traits, '{{}}'), coalesce({top}.traits, '{{}}'))"
            )
        return f"coalesce({base}.traits, '{{}}'::jsonb) || coalesce({top}.traits, '{{}}'::jsonb)"

    keep_latest = {
        c: f"CASE WHEN {newer} THEN coalesce(excluded.{c}, t.{c}) "
        f"ELSE coalesce(t.{c}, excluded.{c}) END"
        for c in (*rows.TRAIT_COLUMNS, "country", "currency", "birthday")
    }
    return keep_latest | {
        "traits": f"CASE WHEN {newer} THEN {json_merge('t', 'excluded')} "
        f"ELSE {json_merge('excluded', 't')} END",
        "traits_at": "greatest(t.traits_at, excluded.traits_at)",
        "first_seen_at": "least(t.first_seen_at, excluded.first_seen_at)",
        "last_seen_at": "greatest(t.last_seen_at, excluded.last_seen_at)",
        "updated_at": "excluded.updated_at",
    }


_CUSTOMER_KEY = ("workspace_id", "customer_id")
# Customer columns set from identify traits alone (``traits`` itself is merged, not kept).
_TRAIT_ONLY = frozenset(rows.CUSTOMER_TRAIT_COLUMNS) - {"traits"}


def upsert_customers(conn: sa.Connection, data: pa.Table) -> None:
    """Insert new customers; for known ones merge traits and widen the seen times."""
    upsert(conn, schema.customers, data, _CUSTOMER_KEY, _customer_updates(conn))


def upsert_customers_from_events(
    conn: sa.Connection,
    events: pa.Table,
    traits: dict[str, tuple[datetime, dict[str, Any]]],
    now: datetime,
) -> None:
    """:func:`upsert_customers` of the rows ``rows.customers_table`` would build, in SQL.

    The database groups the chunk's stored events by customer (seen times, the smallest user
    and anonymous id) and joins the few customers with identify traits, so the writing thread
    builds no per-customer rows in Python. DuckDB only: it reads the Arrow events in place
    (PostgreSQL would need them copied again) and compares strings byte-wise, as Arrow does.
    As there, events about a customer that are not her acts (``rows.system_events_mask``) do
    not move her seen times; a customer with only such events gets a row if she has none.
    """
    if events.num_rows == 0:
        return
    with_system = rows.system_events_mask(events) is not None
    name = stage(conn, schema.events, events)
    staged_traits = stage(conn, schema.customers, rows.traits_table(traits)) if traits else None
    try:
        own = own_act_sql("e") if with_system else ""
        trait_values = [
            f"any_value(t.{c})" if staged_traits else "NULL" for c in rows.CUSTOMER_TRAIT_COLUMNS
        ]
        join = f" LEFT JOIN {staged_traits} t ON t.customer_id = e.customer_id"

        def grouped(values: list[str], where: str) -> str:
            return (
                "SELECT e.workspace_id, e.customer_id, min(e.user_id), min(e.anonymous_id), "
                + ", ".join(values)
                + ', min(e."timestamp"), max(e."timestamp"), '
                + f"TIMESTAMP '{now.isoformat(sep=' ')}' FROM {name} e"
                + (join if staged_traits else "")
                + f" WHERE e.customer_id IS NOT NULL{where} GROUP BY e.workspace_id, e.customer_id"
            )

        columns = [
            "workspace_id",
            "customer_id",
            "user_id",
            "anonymous_id",
            *rows.CUSTOMER_TRAIT_COLUMNS,
            "first_seen_at",
            "last_seen_at",
            "updated_at",
        ]
        updates = _customer_updates(conn)
        if not staged_traits:
            # No identify call in the chunk: every incoming trait column is NULL, so
            # coalesce(excluded.c, t.c) keeps each stored value; DuckDB would still write a
            # new version of each of these columns for every updated customer (upsert of
            # 300k track events: 2.8-3.3 -> 2.6-2.8 us of CPU per event, alternated).
            updates = {c: e for c, e in updates.items() if c not in _TRAIT_ONLY}
        select = grouped(trait_values, f" AND {own}" if own else "")
        upsert_select(conn, schema.customers, columns, select, _CUSTOMER_KEY, updates)
        if with_system:
            nothing = ["NULL"] * len(rows.CUSTOMER_TRAIT_COLUMNS)
            passive = grouped(nothing, "") + f" HAVING NOT bool_or({own})"
            insert_select_new(conn, schema.customers, columns, passive)
    finally:
        unstage(conn, name)
        if staged_traits:
            unstage(conn, staged_traits)


def _lookup_orders(
    conn: sa.Connection, workspace_id: str, order_ids: list[str]
) -> dict[str, tuple[Decimal, str, Decimal]]:
    """Stored (total, currency, refunded) of the given orders."""
    ids = sorted(set(order_ids))
    if not ids:
        return {}
    probe = pa.table(
        {
            "workspace_id": pa.array([workspace_id] * len(ids), pa.string()),
            "order_id": pa.array(ids, pa.string()),
        }
    )
    name = stage(conn, schema.orders, probe)
    try:
        result = conn.exec_driver_sql(
            f"SELECT o.order_id, o.total, o.currency, o.refunded FROM orders o JOIN {name} s "
            "ON o.workspace_id = s.workspace_id AND o.order_id = s.order_id"
        )
        return {
            str(r[0]): (Decimal(r[1]).quantize(rows.Q), str(r[2]), Decimal(r[3])) for r in result
        }
    finally:
        unstage(conn, name)


def _recompute_refunded(conn: sa.Connection, workspace_id: str, order_ids: list[str]) -> None:
    """Set each order's refunded total and status from its refunds (idempotent)."""
    o, r = schema.orders, schema.refunds
    refunded = (
        sa.select(sa.func.coalesce(sa.func.sum(r.c.amount), 0))
        .where(r.c.workspace_id == o.c.workspace_id, r.c.order_id == o.c.order_id)
        .scalar_subquery()
    )
    conn.execute(
        o.update()
        .where(o.c.workspace_id == workspace_id, o.c.order_id.in_(order_ids))
        .values(refunded=refunded)
    )
    conn.execute(
        o.update()
        .where(o.c.workspace_id == workspace_id, o.c.order_id.in_(order_ids))
        .values(
            status=sa.case(
                (o.c.refunded >= o.c.total, "refunded"),
                (o.c.refunded > 0, "partially_refunded"),
                else_="completed",
            ),
            refunded_base=sa.func.round(o.c.refunded * o.c.fx_rate, 4),
        )
    )
