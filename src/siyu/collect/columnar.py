"""Storing a batch that arrives as columns: the pipeline's storage steps, set-based.

Importers build their plain orders as Arrow columns (``collect/importers/columnar.py``); this
module stores such a batch with the same rules as :class:`siyu.collect.pipeline.Pipeline`:
deduplicate on (workspace, messageId) within the batch and against stored events, recognise an
order already stored (same total: nothing new; another total: quarantined as a conflict), append
orders, lines and events in bulk, fill base-currency values, and maintain products, customers
(seen times, identify traits latest first) and the consent ledger. One transaction per batch.
The per-record work is column kernels and SQL; Python touches only conflicting orders.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from siyu.collect import rows
from siyu.collect.quarantine import Rejection, store_rejections
from siyu.store import schema
from siyu.store.bulk import append, append_new, insert_new, stage, unstage

if TYPE_CHECKING:
    from siyu.collect.pipeline import IngestReport, Pipeline

_TRAITS = ("email", "phone", "first_name", "last_name", "country")


@dataclass
class ColumnarBatch:
    """Validated messages as columns.

    ``events``: one row per message, the events-table columns plus ``position`` (input row),
    ``kind`` (order | identify | consent | refund), ``order_id`` (order and refund messages),
    ``t_*`` (identify traits) and ``c_*`` (consent channel, status, evidence JSON). ``orders``:
    one row per order message (amounts in the order currency, ``message_id``, ``position``).
    ``lines``: the order lines, with ``raw_price`` (as sent), ``props_currency`` and
    ``placed_at``. ``refunds``: one row per Order Refunded / Order Cancelled message
    (``amount`` null: the rest of the order; ``currency`` as sent; ``seq`` orders the messages
    of one order).
    """

    events: pa.Table
    orders: pa.Table
    lines: pa.Table
    refunds: pa.Table = field(default_factory=lambda: pa.table({}))


def _first_of_each(events: pa.Table) -> pa.Table:
    """The first row of each message id (a resent message within the batch is a duplicate)."""
    codes = pc.dictionary_encode(events["message_id"]).combine_chunks().indices
    _, first = np.unique(np.asarray(codes), return_index=True)
    if len(first) == events.num_rows:
        return events
    return events.take(pa.array(np.sort(first), pa.int64()))  # keep input order


def _identify_count(events: pa.Table) -> int:
    """How many of ``events`` are identify messages (counted as repeated details)."""
    if events.num_rows == 0:
        return 0
    return int(pc.sum(pc.equal(events["type"], "identify")).as_py() or 0)


def _arrow(conn: sa.Connection, sql: str) -> pa.Table:
    """The result of ``sql`` as an Arrow table (DuckDB hands it over without Python rows)."""
    if conn.dialect.name == "duckdb":
        raw = conn.connection.driver_connection
        with warnings.catch_warnings():
            # "makes an extra copy": of the few rows a look-up or RETURNING yields, accepted.
            warnings.filterwarnings("ignore", message="Arrow output on a DB-API result")
            table: pa.Table = raw.execute(sql).to_arrow_table()  # type: ignore[union-attr]
        return table
    result = conn.exec_driver_sql(sql)
    names = list(result.keys())
    got = [tuple(r) for r in result]
    return pa.table({n: [r[i] for r in got] for i, n in enumerate(names)})


def _stored_rows(
    conn: sa.Connection,
    table: sa.Table,
    workspace_id: str,
    key: str,
    values: pa.ChunkedArray | pa.Array,
    columns: tuple[str, ...] = (),
) -> pa.Table:
    """``key`` (and ``columns``) of ``table``'s stored rows among ``values`` in the workspace.

    The values are staged and joined (a few: one slice's), not bound one parameter each.
    """
    probe = pa.table({"workspace_id": _ws(workspace_id, len(values)), key: values})
    name = stage(conn, table, probe)
    extra = "".join(f", t.{c}" for c in columns)
    try:
        return _arrow(
            conn,
            f"SELECT t.{key}{extra} FROM {table.name} t JOIN {name} s "
            f"ON t.workspace_id = s.workspace_id AND t.{key} = s.{key}",
        )
    finally:
        unstage(conn, name)


def _stored_orders(conn: sa.Connection, workspace_id: str, order_ids: pa.Array) -> pa.Table:
    """(order_id, total, currency, refunded) of the stored orders among ``order_ids``."""
    empty = pa.table(
        {
            "order_id": pa.array([], pa.string()),
            "total": pa.array([], rows.MONEY),
            "currency": pa.array([], pa.string()),
            "refunded": pa.array([], rows.MONEY),
        }
    )
    if len(order_ids) == 0:
        return empty
    got = _stored_rows(
        conn, schema.orders, workspace_id, "order_id", order_ids, ("total", "currency", "refunded")
    )
    if got.num_rows == 0:
        return empty
    return pa.table(
        {
            "order_id": pc.cast(got["order_id"], pa.string()),
            "total": pc.cast(got["total"], rows.MONEY),
            "currency": pc.cast(got["currency"], pa.string()),
            "refunded": pc.cast(got["refunded"], rows.MONEY),
        }
    )


def _payload(e: dict[str, Any]) -> str:
    """The message of one stored-event row, as the quarantine keeps it."""
    payload: dict[str, Any] = {
        "type": "track",
        "event": e["event"],
        "messageId": e["message_id"],
        "timestamp": e["timestamp"].isoformat() + "Z",
        "properties": orjson.loads(e["properties"]),
    }
    if e["user_id"]:
        payload["userId"] = e["user_id"]
    else:
        payload["anonymousId"] = e["anonymous_id"]
    return orjson.dumps(payload).decode()


def _conflicts(
    orders: pa.Table, known: pa.Table, events: pa.Table
) -> tuple[list[Rejection], list[str]]:
    """A quarantine record (and the message id) per order message whose order is stored with
    another total or currency."""
    if known.num_rows == 0 or orders.num_rows == 0:
        return [], []
    at = pc.index_in(orders["order_id"], value_set=known["order_id"])
    found = pc.is_valid(at)
    stored_total = pc.take(known["total"], at)
    stored_currency = pc.take(known["currency"], at)
    differs = pc.or_(
        pc.not_equal(pc.cast(orders["total"], rows.MONEY), stored_total),
        pc.not_equal(orders["currency"], stored_currency),
    )
    bad_mask = pc.fill_null(pc.and_(found, differs), False)
    if not pc.any(bad_mask).as_py():
        return [], []
    bad = orders.filter(bad_mask)
    state = {
        r["order_id"]: r for r in known.filter(pc.is_in(known["order_id"], bad["order_id"]))
        .to_pylist()
    }  # fmt: skip
    messages = events.filter(pc.is_in(events["message_id"], bad["message_id"]))
    by_id = {r["message_id"]: r for r in messages.to_pylist()}
    out, ids = [], []
    for o in bad.to_pylist():  # conflicts only: a handful
        stored = state[o["order_id"]]
        total = Decimal(stored["total"]).quantize(rows.Q)
        ids.append(o["message_id"])
        out.append(
            Rejection(
                int(o["position"]),
                "order_conflict",
                f"order {o['order_id']} is already stored with total {total} "
                f"{stored['currency']}; this record says "
                f"{Decimal(o['total']).quantize(rows.Q)} {o['currency']}. "
                "Send 'Order Updated' for a change, or correct the record and replay it",
                _payload(by_id[o["message_id"]]),
                "properties.total",
            )
        )
    return out, ids


_UNITS = pa.scalar(Decimal(10_000), pa.decimal128(5, 0))


def _units(values: pa.Array | pa.ChunkedArray) -> np.ndarray[Any, Any]:
    """Amounts (MONEY) as integer ten-thousandths; null -> -1 (amounts are never negative)."""
    scaled = pc.cast(pc.multiply(pc.cast(values, rows.MONEY), _UNITS), pa.int64())
    return np.array(pc.fill_null(scaled, -1).to_numpy(zero_copy_only=False), dtype=np.int64)


def _money(units: np.ndarray[Any, Any]) -> pa.Array:
    scaled = pc.cast(pa.array(units, pa.int64()), pa.decimal128(19, 0))
    return pc.cast(pc.divide(scaled, _UNITS), rows.MONEY)


@dataclass
class _Refunds:
    """What the refunds of a batch do: applied rows, refunded sums, rejections."""

    applied: pa.Table  # message_id, order_id, refunded_at, currency, amount
    refunded: pa.Table  # order_id, refunded (sum over stored and applied refunds)
    rejected: list[Rejection]
    dropped: list[str]


def _apply_refunds(refunds: pa.Table, state: pa.Table, events: pa.Table) -> _Refunds:
    """Apply refunds in message order against each order's state (total, currency, refunded),
    as the message path does one by one: a refund larger than what is left, in another
    currency, or of an unknown order is quarantined; a cancellation refunds what is left.

    One pass per rank (the n-th refund of an order in the batch), each a vector operation.
    """
    refunds = refunds.take(pc.sort_indices(refunds, [("position", "ascending"),
                                                     ("seq", "ascending")]))  # fmt: skip
    n = refunds.num_rows
    at = pc.index_in(refunds["order_id"], value_set=state["order_id"])
    known = np.asarray(pc.is_valid(at).to_numpy(zero_copy_only=False), dtype=bool)
    idx = np.asarray(pc.fill_null(at, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    total = _units(state["total"])
    done = _units(state["refunded"])
    amount = _units(refunds["amount"])
    state_currency = np.asarray(state["currency"].to_numpy(zero_copy_only=False), dtype=object)
    sent = pc.fill_null(refunds["currency"], "")
    same_currency = np.asarray(
        pc.or_(pc.equal(sent, ""), pc.equal(sent, pa.array(state_currency[idx], pa.string())))
        .to_numpy(zero_copy_only=False),
        dtype=bool,
    ) if len(state_currency) else np.ones(n, dtype=bool)  # fmt: skip
    # Rank of each refund within its order (refunds sorted by position, then seq).
    order_key = np.where(known, idx, -1 - np.arange(n))
    by_order = np.argsort(order_key, kind="stable")
    sorted_key = order_key[by_order]
    first = np.r_[True, sorted_key[1:] != sorted_key[:-1]]
    group_start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    rank = np.empty(n, dtype=np.int64)
    rank[by_order] = np.arange(n) - group_start
    applied_amount = np.zeros(n, dtype=np.int64)
    left_at = np.zeros(n, dtype=np.int64)
    reason = np.zeros(n, dtype=np.int8)  # 0 applied, 1 unknown, 2 currency, 3 exceeds
    reason[~known] = 1
    for r in range(int(rank.max()) + 1 if n else 0):
        sel = np.flatnonzero((rank == r) & known)
        left = total[idx[sel]] - done[idx[sel]]
        want = np.where(amount[sel] < 0, left, amount[sel])
        bad_currency = ~same_currency[sel]
        exceeds = ~bad_currency & (want > left)
        ok = ~bad_currency & ~exceeds
        reason[sel[bad_currency]] = 2
        reason[sel[exceeds]] = 3
        applied_amount[sel] = want
        left_at[sel] = left
        done[idx[sel[ok]]] += want[ok]
    good = reason == 0
    applied = pa.table(
        {
            "message_id": refunds["message_id"],
            "order_id": refunds["order_id"],
            "refunded_at": refunds["refunded_at"],
            "currency": pa.array(
                np.where(known, state_currency[idx] if len(state_currency) else "", ""), pa.string()
            ),
            "amount": _money(applied_amount),
        }
    ).filter(pa.array(good))
    touched = pc.is_in(state["order_id"], applied["order_id"])
    refunded = pa.table({"order_id": state["order_id"], "refunded": _money(done)}).filter(touched)
    rejected, dropped = [], []
    bad_rows = np.flatnonzero(~good)
    if len(bad_rows):  # quarantined refunds: a handful, described one by one
        take = pa.array(bad_rows, pa.int64())
        bad = refunds.take(take).to_pylist()
        messages = events.filter(pc.is_in(events["message_id"], refunds.take(take)["message_id"]))
        by_id = {r["message_id"]: r for r in messages.to_pylist()}
        for j, row in zip(bad_rows.tolist(), bad, strict=True):
            oid, code = row["order_id"], int(reason[j])
            currency = state_currency[idx[j]] if known[j] else None
            asked = Decimal(int(applied_amount[j])) / 10_000
            left = (Decimal(int(left_at[j])) / 10_000).quantize(rows.Q)
            if code == 1:
                why = ("refund_unknown_order",
                       f"refund for order {oid}, which is not stored; import the order first, "
                       "then replay this record", "properties.order_id")  # fmt: skip
            elif code == 2:
                why = ("invalid", f"refund currency {row['currency']} differs from order "
                       f"{oid}'s currency {currency}", "properties.currency")  # fmt: skip
            else:
                sent = orjson.loads(by_id[row["message_id"]]["properties"]).get("total")
                amount_text = Decimal(sent) if sent is not None else asked  # as sent
                why = ("refund_exceeds_order",
                       f"refund of {amount_text} {currency} exceeds the {left} {currency} "
                       f"left to refund on order {oid}", "properties.total")  # fmt: skip
            dropped.append(row["message_id"])
            rejected.append(
                Rejection(
                    int(row["position"]),
                    why[0],
                    why[1],
                    _payload(by_id[row["message_id"]]),
                    why[2],
                )
            )
    return _Refunds(applied, refunded, rejected, dropped)


def _insert_events(
    conn: sa.Connection,
    ws: str,
    events: pa.Table,
    source_id: str | None,
    now: datetime,
    optimistic: bool = False,
) -> pa.ChunkedArray | None:
    """Insert the events whose message id is not stored yet; return which were inserted
    (a bool per event), or None when every event was.

    The key's own conflict check decides, through its index: no query compares the batch
    with every stored event, so the cost follows the batch, not the table. ``optimistic``
    (DuckDB): only the identify messages (a repeat customer's recur across slices and
    files) are checked, by a look-up of their ids; the batch is inserted plainly, and a
    stored message among the others raises a constraint error (the caller then stores the
    batch again without this option). The check costs about a third of the insert
    (measured: 200k events 0.53-0.64 s CPU with it, 0.36-0.40 s without).
    """
    n = events.num_rows
    data = pa.table(
        {
            "workspace_id": _ws(ws, n),
            **{
                c: events[c]
                for c in ("message_id", "type", "event", "user_id", "anonymous_id", "customer_id")
            },
            "source_id": pa.repeat(pa.scalar(source_id, pa.string()), n),
            "timestamp": events["timestamp"],
            "received_at": pa.repeat(pa.scalar(now, rows.TS), n),
            "properties": events["properties"],
            "traits": events["traits"],
        }
    )
    if conn.dialect.name != "duckdb":
        got = insert_new(conn, schema.events, data, ("message_id",))
        inserted = pa.chunked_array([pa.array([str(r[0]) for r in got], pa.string())])
        if len(inserted) == n:
            return None
        return pc.is_in(events["message_id"], inserted)
    cols = ", ".join(f'"{c}"' for c in data.column_names)
    if not optimistic:
        name = stage(conn, schema.events, data)
        try:
            inserted = _arrow(
                conn,
                f"INSERT INTO events ({cols}) SELECT {cols} FROM {name} "
                "ON CONFLICT DO NOTHING RETURNING message_id",
            )["message_id"]
        finally:
            unstage(conn, name)
        if len(inserted) == n:
            return None
        return pc.is_in(events["message_id"], pc.cast(inserted, pa.string()))
    # The identify messages already stored are looked up first (a join of the few identify
    # ids, not of the batch), so that the batch goes into the table in ONE statement: with a
    # second INSERT into events in the same transaction (the identify messages with
    # ON CONFLICT, then the rest), DuckDB's commit and checkpoint of a big transaction cost
    # more (measured on the benchmark's 200k-row export in one transaction: 1.9-2.2 s CPU
    # for every table's insert, commit and checkpoint in one statement each, 2.8-3.0 s with
    # events in two statements, mostly in the checkpoint). The look-up scans the stored
    # message ids (DuckDB uses no index for a two-column key): about 55 ms per million
    # stored events, so past _LOOKUP_RATIO stored events per event of the batch the
    # ON CONFLICT insert is used instead.
    identify = pc.equal(events["kind"], "identify")
    if not _lookup_pays(conn, n):
        return _insert_checking_identify(conn, cols, data, events, identify)
    stored = _stored_ids(conn, ws, events["message_id"].filter(identify))
    keep = None
    if len(stored):
        keep = pc.invert(pc.and_(identify, pc.is_in(events["message_id"], stored)))
        data = data.append_column("keep", keep)
    name = stage(conn, schema.events, data)
    try:
        conn.exec_driver_sql(
            f"INSERT INTO events ({cols}) SELECT {cols} FROM {name}"
            + (" WHERE keep" if keep is not None else "")
        )
    finally:
        unstage(conn, name)
    return keep


_LOOKUP_RATIO = 20


def _lookup_pays(conn: sa.Connection, batch_events: int) -> bool:
    """Whether the events table is small enough, next to a batch of ``batch_events``, for the
    look-up of stored identify ids to cost less than a second insert statement saves (about
    0.15 s CPU per 100k events of the batch, against 55 ms per million stored events)."""
    stored = conn.exec_driver_sql(
        "SELECT estimated_size FROM duckdb_tables() WHERE table_name = 'events' "
        "AND schema_name = current_schema() AND database_name = current_database()"
    ).scalar()
    return int(stored or 0) <= _LOOKUP_RATIO * batch_events


def _insert_checking_identify(
    conn: sa.Connection, cols: str, data: pa.Table, events: pa.Table, identify: pa.ChunkedArray
) -> pa.ChunkedArray | None:
    """The identify messages with the key's conflict check (its index), then the others
    plainly: two statements, whose cost does not grow with the table."""
    name = stage(conn, schema.events, data.append_column("kind", events["kind"]))
    try:
        inserted = _arrow(
            conn,
            f"INSERT INTO events ({cols}) SELECT {cols} FROM {name} WHERE kind = 'identify' "
            "ON CONFLICT DO NOTHING RETURNING message_id",
        )["message_id"]
        conn.exec_driver_sql(
            f"INSERT INTO events ({cols}) SELECT {cols} FROM {name} WHERE kind <> 'identify'"
        )
    finally:
        unstage(conn, name)
    if len(inserted) == pc.sum(identify).as_py():
        return None
    return pc.or_(
        pc.invert(identify), pc.is_in(events["message_id"], pc.cast(inserted, pa.string()))
    )


def _stored_ids(conn: sa.Connection, ws: str, message_ids: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Which of ``message_ids`` (a few: a slice's distinct identify messages) are stored."""
    if len(message_ids) == 0:
        return pa.array([], pa.string())
    got = _stored_rows(conn, schema.events, ws, "message_id", message_ids)["message_id"]
    return pc.cast(got, pa.string()).combine_chunks()


def _delete_events(conn: sa.Connection, ws: str, message_ids: list[str]) -> None:
    """Remove events inserted first and then refused (conflicts, refunds that cannot apply),
    through a staged key list: a re-export with every total changed refuses a whole slice,
    more ids than a statement may bind."""
    if not message_ids:
        return
    probe = pa.table({"workspace_id": _ws(ws, len(message_ids)),
                      "message_id": pa.array(message_ids, pa.string())})  # fmt: skip
    name = stage(conn, schema.events, probe)
    try:
        conn.execute(
            sa.text(
                "DELETE FROM events WHERE workspace_id = :ws "
                f"AND message_id IN (SELECT message_id FROM {name})"
            ),
            {"ws": ws},
        )
    finally:
        unstage(conn, name)


def _empty_refunds() -> pa.Table:
    return pa.table(
        {
            "message_id": pa.array([], pa.string()),
            "order_id": pa.array([], pa.string()),
            "amount": pa.array([], rows.MONEY),
            "currency": pa.array([], pa.string()),
            "refunded_at": pa.array([], rows.TS),
            "position": pa.array([], pa.int64()),
            "seq": pa.array([], pa.int32()),
        }
    )


@dataclass
class Expectation:
    """Whether an import's next slices are likely all new messages (see ``optimistic`` of
    :func:`_insert_events`): true until a slice meets a stored one, then false for the rest
    of the import, since an overlapping or re-imported file would meet them on every slice."""

    new: bool = True


def ingest_columns(
    pipeline: Pipeline,
    batch: ColumnarBatch,
    *,
    source_id: str | None,
    origin: str,
    received_at: datetime | None = None,
    before_commit: Callable[[sa.Connection, IngestReport], None] | None = None,
    expect: Expectation | None = None,
) -> IngestReport:
    """Store ``batch`` in one transaction; return what happened to each of its messages.

    ``before_commit`` runs last in the same transaction (an import saves its checkpoint
    there, so a slice and its checkpoint are committed together). With ``expect`` (DuckDB,
    while ``expect.new``) the batch is first stored without the conflict checks of event and
    consent keys; if a key is already stored, that transaction is rolled back, ``expect.new``
    turns false and the batch is stored again with the checks: the same rows either way.
    """
    from siyu.collect.pipeline import IngestReport

    now = received_at or datetime.now(UTC).replace(tzinfo=None)
    db = pipeline.db

    def attempt(optimistic: bool) -> IngestReport:
        with db.engine.connect() as conn:
            stored = False
            try:
                with conn.begin():
                    report = (
                        store_columns(
                            conn,
                            pipeline,
                            batch,
                            source_id=source_id,
                            origin=origin,
                            now=now,
                            optimistic=optimistic,
                        )
                        if batch.events.num_rows
                        else IngestReport()
                    )
                    stored = True
                    if before_commit is not None:
                        before_commit(conn, report)
            except Exception as exc:
                # (Arrow tables staged in the aborted transaction, which refused to
                # unregister them, are released by its rollback.)
                if optimistic and not stored and _key_conflict(exc):
                    raise _Stored from exc
                raise
        return report

    with db.write_lock:
        if expect is not None and expect.new and db.engine.dialect.name == "duckdb":
            try:
                return attempt(True)
            except _Stored:
                expect.new = False
        return attempt(False)


class _Stored(Exception):
    """A key of an optimistic store was already stored (its transaction is rolled back)."""


def _key_conflict(exc: BaseException) -> bool:
    """A primary-key violation, raised through SQLAlchemy or by DuckDB itself, possibly
    followed by the error of a clean-up that the aborted transaction refused."""
    import duckdb

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (sa.exc.IntegrityError, duckdb.ConstraintException)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class SliceWriter:
    """Stores several batches in ONE transaction: the parts of an import's slice, each
    stored as soon as it is built, committed with the slice's checkpoint.

    Why: DuckDB stores a big transaction for less CPU than the same rows in several (the
    benchmark's 200k-row export: 1.9-2.2 s for insert, commit and checkpoint in one, 2.7-2.9
    s in two; see docs/importers.md); a big slice built whole would leave the storing thread
    idle while it is built, and parts keep building and storing overlapped. With an
    :class:`Expectation` (DuckDB, while ``expect.new``) the parts are stored without the
    event and consent key checks; a stored key rolls the transaction back, and its parts are
    stored again with the checks (as :func:`ingest_columns`).
    """

    def __init__(
        self, pipeline: Pipeline, *, source_id: str | None, origin: str, expect: Expectation
    ) -> None:
        self.pipeline = pipeline
        self.source_id = source_id
        self.origin = origin
        self.expect = expect
        self._conn: sa.Connection | None = None
        self._tx: sa.RootTransaction | None = None
        self._batches: list[tuple[ColumnarBatch, datetime]] = []
        self._reports: list[IngestReport] = []
        self._optimistic = False

    @property
    def open(self) -> bool:
        return self._conn is not None

    def _begin(self) -> sa.Connection:
        db = self.pipeline.db
        db.write_lock.acquire()
        try:
            self._conn = db.engine.connect()
            self._tx = self._conn.begin()
        except BaseException:
            db.write_lock.release()
            raise
        self._optimistic = self.expect.new and db.engine.dialect.name == "duckdb"
        return self._conn

    def _end(self, commit: bool) -> None:
        assert self._conn is not None
        assert self._tx is not None
        try:
            if commit:
                self._tx.commit()
            else:
                self._tx.rollback()
        finally:
            self._conn.close()
            self._conn = self._tx = None
            self._batches, self._reports = [], []
            self.pipeline.db.write_lock.release()

    def _store(self, conn: sa.Connection, batch: ColumnarBatch, now: datetime) -> IngestReport:
        return store_columns(
            conn, self.pipeline, batch, source_id=self.source_id, origin=self.origin, now=now,
            optimistic=self._optimistic,
        )  # fmt: skip

    def add(self, batch: ColumnarBatch) -> None:
        """Store ``batch`` in the open transaction (opened if none is)."""
        if batch.events.num_rows == 0:
            return
        conn = self._conn or self._begin()
        now = datetime.now(UTC).replace(tzinfo=None)
        self._batches.append((batch, now))
        try:
            self._reports.append(self._store(conn, batch, now))
        except Exception as exc:
            optimistic, kept = self._optimistic, list(self._batches)
            self._end(commit=False)
            if not (optimistic and _key_conflict(exc)):
                raise
            # A stored message: the transaction's parts again, with the checks.
            self.expect.new = False
            conn = self._begin()
            self._batches = kept
            self._reports = [self._store(conn, b, at) for b, at in kept]

    def commit(
        self, before_commit: Callable[[sa.Connection, list[IngestReport]], None] | None = None
    ) -> list[IngestReport]:
        """Run ``before_commit`` in the open transaction, commit it and return the reports of
        its parts; ``[]`` (and nothing run) when no transaction is open."""
        if self._conn is None:
            return []
        reports = self._reports
        try:
            if before_commit is not None:
                before_commit(self._conn, reports)
        except BaseException:
            self._end(commit=False)
            raise
        self._end(commit=True)
        return reports

    def abort(self) -> None:
        """Roll back the open transaction, if any (an error elsewhere in the import)."""
        if self._conn is not None:
            self._end(commit=False)


def store_columns(
    conn: sa.Connection,
    pipeline: Pipeline,
    batch: ColumnarBatch,
    *,
    source_id: str | None,
    origin: str,
    now: datetime,
    optimistic: bool = False,
) -> IngestReport:
    """The storage steps of :func:`ingest_columns` inside the caller's transaction.

    ``optimistic``: event and consent keys are inserted without their conflict check (see
    :func:`_insert_events`); a stored key raises ``IntegrityError``.
    """
    from siyu.collect.pipeline import IngestReport, upsert_customers, upsert_products

    ws = pipeline.workspace.workspace_id
    base = pipeline.workspace.base_currency
    report = IngestReport(read=batch.events.num_rows)
    full = _first_of_each(batch.events)
    report.duplicates = batch.events.num_rows - full.num_rows
    if report.duplicates:
        report.repeated_details = _identify_count(batch.events) - _identify_count(full)
    # Events first: the primary key says which are new (see _insert_events).
    new = _insert_events(conn, ws, full, source_id, now, optimistic)
    # Filtering a table copies every column: the later steps work on the events without
    # their JSON documents (most of the batch's bytes); ``full`` keeps them for the payloads
    # of quarantined messages.
    events = full.drop_columns(["properties", "traits"])
    refused = events.slice(0, 0)
    if new is not None:
        refused = events.filter(pc.invert(new))
        events = events.filter(new)
    report.duplicates += refused.num_rows
    report.repeated_details += _identify_count(refused)
    # A repeat customer's identify message is the usual refused one: the orders and refunds
    # are filtered only when messages of theirs were refused.
    orders = _without(batch.orders, refused, "order")
    refunds = _without(
        batch.refunds if batch.refunds.num_columns else _empty_refunds(), refused, "refund"
    )
    wanted = pc.unique(pa.chunked_array([orders["order_id"], refunds["order_id"]], pa.string()))
    known = _stored_orders(conn, ws, wanted)
    rejected, dropped = _conflicts(orders, known, full)
    fresh = (
        orders.filter(pc.invert(pc.is_in(orders["order_id"], known["order_id"])))
        if known.num_rows
        else orders
    )
    # Every order message of the batch stored: its lines are all the batch's lines.
    all_orders = orders is batch.orders and not dropped
    outcome = None
    if refunds.num_rows:
        state = pa.concat_tables(
            [
                known,
                pa.table(
                    {
                        "order_id": fresh["order_id"],
                        "total": pc.cast(fresh["total"], rows.MONEY),
                        "currency": fresh["currency"],
                        "refunded": pa.array(np.zeros(fresh.num_rows, np.int64), pa.int64())
                        .cast(pa.decimal128(19, 0))
                        .cast(rows.MONEY),
                    }
                ),
            ]
        )
        outcome = _apply_refunds(refunds, state, full)
        rejected += outcome.rejected
        dropped += outcome.dropped
    if dropped:
        _delete_events(conn, ws, dropped)
        events = events.filter(pc.invert(pc.is_in(events["message_id"], pa.array(dropped))))
    if fresh.num_rows:
        refunded = outcome.refunded if outcome is not None else None
        _insert_orders(conn, _orders_rows(ws, fresh, source_id, base, now, refunded))
        lines = (
            batch.lines
            if fresh is batch.orders
            else batch.lines.filter(pc.is_in(batch.lines["order_id"], fresh["order_id"]))
        )
        append(conn, schema.order_lines, _lines_rows(ws, lines))
    report.orders = fresh.num_rows
    if outcome is not None and outcome.applied.num_rows:
        applied = outcome.applied
        append(
            conn,
            schema.refunds,
            pa.table(
                {
                    "workspace_id": _ws(ws, applied.num_rows),
                    **{c: applied[c] for c in applied.column_names},
                }
            ),
        )
        report.refunds = applied.num_rows
        earlier = (
            pc.unique(applied["order_id"])
            .filter(pc.is_in(pc.unique(applied["order_id"]), known["order_id"]))
            .to_pylist()
        )  # orders stored before this batch: a few
        if earlier:
            from siyu.collect.pipeline import _recompute_refunded
            from siyu.money.fx import fill_base_values

            ids = sorted(earlier)
            for start in range(0, len(ids), 5_000):  # bound the statements' parameters
                _recompute_refunded(conn, ws, ids[start : start + 5_000])
                fill_base_values(conn, ws, ids[start : start + 5_000])
    report.stored = events.num_rows
    report.stored_ids = events["message_id"].to_pylist()
    if all_orders:
        lines = batch.lines
    else:
        order_ids = pc.filter(events["order_id"], pc.equal(events["kind"], "order"))
        lines = batch.lines.filter(pc.is_in(batch.lines["order_id"], order_ids))
    upsert_products(conn, _products_rows(ws, lines, now))
    upsert_customers(conn, _customers_rows(ws, events, now))
    consents = events.filter(pc.equal(events["kind"], "consent"))
    if consents.num_rows:
        (append if optimistic else append_new)(
            conn, schema.consents, _consent_rows(ws, consents, source_id)
        )
    _after_ingest(conn, ws, report.stored_ids, pipeline, now)
    report.quarantine_ids = store_rejections(
        conn, ws, rejected, source_id=source_id, origin=origin, received_at=now
    )
    report.quarantined = len(rejected)
    return report


def _without(table: pa.Table, refused: pa.Table, kind: str) -> pa.Table:
    """``table`` (orders or refunds, by ``message_id``) less the rows of refused messages;
    ``table`` itself when no message of that kind was refused."""
    ids = pc.filter(refused["message_id"], pc.equal(refused["kind"], kind))
    if len(ids) == 0:
        return table
    return table.filter(pc.invert(pc.is_in(table["message_id"], ids)))


def _after_ingest(
    conn: sa.Connection, ws: str, ids: list[str], pipeline: Pipeline, received_at: datetime
) -> None:
    """The identity slice's post-ingest hook: the same call Pipeline makes per chunk.

    ``received_at`` is the slice's receipt time (every event of it has the same), so the hook
    finds the slice's events by time (DuckDB skips other blocks) instead of by message id.
    """
    try:
        from siyu.identity.hook import after_ingest
    except ImportError:  # an identity slice without the hook
        return
    after_ingest(conn, ws, ids, pipeline.settings, received_at=received_at)


def _ws(ws: str, n: int) -> pa.Array:
    return pa.repeat(pa.scalar(ws, pa.string()), n)


def _orders_rows(
    ws: str, orders: pa.Table, source_id: str | None, base: str, now: datetime,
    refunded: pa.Table | None = None,
) -> pa.Table:  # fmt: skip
    """Order rows; ``refunded`` (order_id, refunded) gives the refunds applied in the batch,
    and the status follows as in ``pipeline._recompute_refunded``."""
    n = orders.num_rows
    cols = [c for c in orders.column_names if c != "position"]
    zero = pa.scalar(Decimal(0), rows.MONEY)
    status: pa.Array | pa.ChunkedArray = pa.repeat(pa.scalar("completed"), n)
    amount: pa.Array | pa.ChunkedArray
    if refunded is not None and refunded.num_rows:
        at = pc.index_in(orders["order_id"], value_set=refunded["order_id"])
        amount = pc.take(refunded["refunded"], at)
        total = pc.cast(orders["total"], rows.MONEY)
        status = pc.if_else(
            pc.is_null(at),
            "completed",
            pc.if_else(
                pc.greater_equal(amount, total),
                "refunded",
                pc.if_else(pc.greater(amount, zero), "partially_refunded", "completed"),
            ),
        )
        amount = pc.fill_null(amount, zero)
    else:
        amount = pa.repeat(zero, n)
    return pa.table(
        {
            "workspace_id": _ws(ws, n),
            **{c: orders[c] for c in cols},
            "source_id": pa.repeat(pa.scalar(source_id, pa.string()), n),
            "base_currency": pa.repeat(pa.scalar(base), n),
            "refunded": amount,
            "status": status,
            "updated_at": pa.repeat(pa.scalar(now, rows.TS), n),
        }
    )


def _insert_orders(conn: sa.Connection, data: pa.Table) -> None:
    """Append orders with their FX rate and base values filled in the same statement.

    The rate is that of the order's day or the nearest earlier day (as ``money.fx``); no rate
    leaves the base values empty, and ``fill_base_values`` fills them once rates arrive.
    """
    name = stage(conn, schema.orders, data)
    cols = ", ".join(f'"{c}"' for c in data.column_names)
    rate = (
        "CASE WHEN s.currency = s.base_currency THEN 1 ELSE (SELECT f.rate FROM fx_rates f "
        "WHERE f.workspace_id = s.workspace_id AND f.currency = s.currency "
        "AND f.base_currency = s.base_currency AND f.day <= CAST(s.placed_at AS DATE) "
        "ORDER BY f.day DESC LIMIT 1) END"
    )
    try:
        conn.exec_driver_sql(
            f"INSERT INTO orders ({cols}, fx_rate, total_base, refunded_base) "
            f"SELECT {cols}, r, round(total * r, 4), round(refunded * r, 4) "
            f"FROM (SELECT s.*, {rate} AS r FROM {name} s) x"
        )
    finally:
        unstage(conn, name)


def _lines_rows(ws: str, lines: pa.Table) -> pa.Table:
    keep = (
        "order_id",
        "line_no",
        "product_id",
        "sku",
        "name",
        "category",
        "brand",
        "variant",
        "price",
        "quantity",
        "currency",
    )
    return pa.table({"workspace_id": _ws(ws, lines.num_rows), **{c: lines[c] for c in keep}})


def _products_rows(ws: str, lines: pa.Table, now: datetime) -> pa.Table:
    """Latest attributes of each product in the batch (its last line wins, as in rows.py)."""
    lines = lines.filter(pc.is_valid(lines["product_id"]))
    index = pa.array(np.arange(lines.num_rows), pa.int64())
    last = (
        pa.table({"p": lines["product_id"], "i": index})
        .group_by("p", use_threads=False)
        .aggregate([("i", "max")])["i_max"]
    )
    latest = lines.take(last)
    n = latest.num_rows
    return pa.table(
        {
            "workspace_id": _ws(ws, n),
            "product_id": latest["product_id"],
            "sku": latest["sku"],
            "name": latest["name"],
            "category": latest["category"],
            "brand": latest["brand"],
            "price": pc.cast(latest["raw_price"], rows.MONEY),
            "currency": latest["props_currency"],
            "first_seen_at": latest["placed_at"],
            "updated_at": pa.repeat(pa.scalar(now, rows.TS), n),
        }
    )


def _customers_rows(ws: str, events: pa.Table, now: datetime) -> pa.Table:
    """One row per customer: seen times of the batch, identify traits merged latest last."""
    # Acero's thread pool costs milliseconds of hand-off per call: worth it only for a big
    # chunk, and a small one (an HTTP request's) is latency-bound.
    # Only the columns used are filtered (a filter copies every column it carries).
    seen = (
        events.select(["customer_id", "timestamp", "user_id", "anonymous_id"])
        .filter(pc.is_valid(events["customer_id"]))
        .group_by("customer_id", use_threads=events.num_rows > rows.THREADED_GROUP_BY)
        .aggregate(
            [
                ("timestamp", "min"),
                ("timestamp", "max"),
                ("user_id", "min"),
                ("anonymous_id", "min"),
            ]
        )
    )
    identify = events.select(["customer_id", "timestamp", *("t_" + k for k in _TRAITS)]).filter(
        pc.equal(events["kind"], "identify")
    )
    said = pc.is_valid(identify["t_" + _TRAITS[0]])
    for k in _TRAITS[1:]:
        said = pc.or_(said, pc.is_valid(identify["t_" + k]))
    identify = identify.filter(said)  # an identify without traits says nothing about them
    identify = identify.take(pc.sort_indices(identify["timestamp"]))  # stable: input order ties
    merged = identify.group_by("customer_id", use_threads=False).aggregate(
        [*(("t_" + k, "last") for k in _TRAITS), ("timestamp", "max")]
    )
    merged = merged.rename_columns(
        ["traits_at" if c == "timestamp_max" else c for c in merged.column_names]
    )
    table = seen.join(merged, "customer_id", join_type="left outer").combine_chunks()
    n = table.num_rows
    trait = {k: table["t_" + k + "_last"] for k in _TRAITS}
    from siyu.collect.importers.columnar import _member, _object

    doc = _object(*(_member(k, trait[k]) for k in _TRAITS))
    has = pc.is_valid(trait["email"])
    for k in _TRAITS[1:]:
        has = pc.or_(has, pc.is_valid(trait[k]))
    country = pc.utf8_trim_whitespace(trait["country"])
    null = pa.scalar(None, pa.string())
    return pa.table(
        {
            "workspace_id": _ws(ws, n),
            "customer_id": table["customer_id"],
            "user_id": table["user_id_min"],
            "anonymous_id": table["anonymous_id_min"],
            **{k: trait[k] for k in ("email", "phone", "first_name", "last_name")},
            "language": pa.nulls(n, pa.string()),
            "timezone": pa.nulls(n, pa.string()),
            "country": pc.if_else(
                pc.equal(pc.utf8_length(country), 2), pc.utf8_upper(country), null
            ),
            "currency": pa.nulls(n, pa.string()),
            "birthday": pa.nulls(n, pa.date32()),
            "traits": pc.if_else(has, doc, null),
            "first_seen_at": table["timestamp_min"],
            "last_seen_at": table["timestamp_max"],
            "updated_at": pa.repeat(pa.scalar(now, rows.TS), n),
            "traits_at": table["traits_at"],
        }
    )


def _consent_rows(ws: str, consents: pa.Table, source_id: str | None) -> pa.Table:
    n = consents.num_rows
    return pa.table(
        {
            "workspace_id": _ws(ws, n),
            "consent_id": consents["message_id"],
            "customer_id": consents["customer_id"],
            "user_id": consents["user_id"],
            "anonymous_id": consents["anonymous_id"],
            "purpose": pa.repeat(pa.scalar("marketing"), n),
            "channel": consents["c_channel"],
            "status": consents["c_status"],
            "source_id": pa.repeat(pa.scalar(source_id, pa.string()), n),
            "message_id": consents["message_id"],
            "timestamp": consents["timestamp"],
            "evidence": consents["c_evidence"],
        }
    )
