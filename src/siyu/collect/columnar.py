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

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

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
    ``kind`` (order | identify | consent), ``order_id`` (order messages), ``t_*`` (identify
    traits) and ``c_*`` (consent channel, status, evidence JSON). ``orders``: one row per order
    message (amounts in the order currency, ``message_id``, ``position``). ``lines``: the
    order lines, with ``raw_price`` (as sent), ``props_currency`` and ``placed_at``.
    """

    events: pa.Table
    orders: pa.Table
    lines: pa.Table


def _first_of_each(events: pa.Table) -> pa.Table:
    """The first row of each message id (a resent message within the batch is a duplicate)."""
    index = pa.array(np.arange(events.num_rows), pa.int64())
    first = (
        pa.table({"m": events["message_id"], "i": index})
        .group_by("m", use_threads=False)
        .aggregate([("i", "min")])["i_min"]
    )
    if len(first) == events.num_rows:
        return events
    return events.take(pa.array(np.sort(first.to_numpy()), pa.int64()))  # keep input order


def stored_keys(
    conn: sa.Connection, table: sa.Table, workspace_id: str, column: str, keys: pa.Array
) -> pa.Array:
    """Which of ``keys`` are stored in ``table.column`` for the workspace (one set query)."""
    if len(keys) == 0:
        return pa.array([], pa.string())
    probe = pa.table({"workspace_id": pa.array([workspace_id] * len(keys)), column: keys})
    name = stage(conn, table, probe)
    try:
        result = conn.exec_driver_sql(
            f'SELECT t."{column}" FROM "{table.name}" t JOIN {name} s '
            f'ON t.workspace_id = s.workspace_id AND t."{column}" = s."{column}"'
        )
        return pa.array([str(r[0]) for r in result], pa.string())
    finally:
        unstage(conn, name)


def _known_orders(
    conn: sa.Connection, workspace_id: str, orders: pa.Table
) -> list[tuple[str, Decimal, str, bool]]:
    """Stored orders among ``orders``: (order_id, total, currency, conflicts with the batch)."""
    if orders.num_rows == 0:
        return []
    probe = pa.table(
        {
            "workspace_id": pa.array([workspace_id] * orders.num_rows, pa.string()),
            "order_id": orders["order_id"],
            "total": orders["total"],
            "currency": orders["currency"],
        }
    )
    name = stage(conn, schema.orders, probe)
    try:
        result = conn.exec_driver_sql(
            f"SELECT o.order_id, o.total, o.currency, "
            f"(o.total <> s.total OR o.currency <> s.currency) FROM orders o JOIN {name} s "
            "ON o.workspace_id = s.workspace_id AND o.order_id = s.order_id"
        )
        return [(str(r[0]), Decimal(r[1]).quantize(rows.Q), str(r[2]), bool(r[3])) for r in result]
    finally:
        unstage(conn, name)


def _conflicts(
    orders: pa.Table, known: list[tuple[str, Decimal, str, bool]], events: pa.Table
) -> tuple[list[Rejection], list[str]]:
    """A quarantine record (and the message id) per order message whose order is stored with
    another total or currency."""
    stored = {k[0]: k for k in known if k[3]}
    if not stored:
        return [], []
    bad = orders.filter(pc.is_in(orders["order_id"], pa.array(list(stored), pa.string())))
    messages = events.filter(pc.is_in(events["message_id"], bad["message_id"]))
    by_id = {r["message_id"]: r for r in messages.to_pylist()}
    out, ids = [], []
    for o in bad.to_pylist():
        _, total, currency, _ = stored[o["order_id"]]
        e = by_id[o["message_id"]]
        payload = {
            "type": "track",
            "event": "Order Completed",
            "messageId": e["message_id"],
            "timestamp": e["timestamp"].isoformat() + "Z",
            "properties": orjson.loads(e["properties"]),
        }
        if e["user_id"]:
            payload["userId"] = e["user_id"]
        else:
            payload["anonymousId"] = e["anonymous_id"]
        ids.append(e["message_id"])
        out.append(
            Rejection(
                int(o["position"]),
                "order_conflict",
                f"order {o['order_id']} is already stored with total {total} {currency}; "
                f"this record says {Decimal(o['total']).quantize(rows.Q)} {o['currency']}. "
                "Send 'Order Updated' for a change, or correct the record and replay it",
                orjson.dumps(payload).decode(),
                "properties.total",
            )
        )
    return out, ids


def ingest_columns(
    pipeline: Pipeline,
    batch: ColumnarBatch,
    *,
    source_id: str | None,
    origin: str,
    received_at: datetime | None = None,
) -> IngestReport:
    """Store ``batch`` in one transaction; return what happened to each of its messages."""
    from siyu.collect.pipeline import IngestReport

    ws = pipeline.workspace.workspace_id
    base = pipeline.workspace.base_currency
    now = received_at or datetime.now(UTC).replace(tzinfo=None)
    report = IngestReport(read=batch.events.num_rows)
    if batch.events.num_rows == 0:
        return report
    events = _first_of_each(batch.events)
    report.duplicates = batch.events.num_rows - events.num_rows
    db = pipeline.db
    with db.write_lock, db.engine.begin() as conn:
        existing = stored_keys(conn, schema.events, ws, "message_id", events["message_id"])
        if len(existing):
            events = events.filter(pc.invert(pc.is_in(events["message_id"], existing)))
            report.duplicates += len(existing)
        orders = batch.orders.filter(pc.is_in(batch.orders["message_id"], events["message_id"]))
        known = _known_orders(conn, ws, orders)
        rejected, dropped = _conflicts(orders, known, events)
        if rejected:
            drop = pa.array(dropped, pa.string())
            events = events.filter(pc.invert(pc.is_in(events["message_id"], drop)))
            orders = orders.filter(pc.invert(pc.is_in(orders["message_id"], drop)))
        fresh = orders.filter(
            pc.invert(pc.is_in(orders["order_id"], pa.array([k[0] for k in known], pa.string())))
        )
        if fresh.num_rows:
            _insert_orders(conn, _orders_rows(ws, fresh, source_id, base, now))
            lines = batch.lines.filter(pc.is_in(batch.lines["order_id"], fresh["order_id"]))
            append(conn, schema.order_lines, _lines_rows(ws, lines))
        report.orders = fresh.num_rows
        stored = _store_events(conn, ws, events, source_id, now)
        report.duplicates += events.num_rows - stored.num_rows
        report.stored = stored.num_rows
        report.stored_ids = stored["message_id"].to_pylist()
        order_ids = stored.filter(pc.equal(stored["kind"], "order"))["order_id"]
        lines = batch.lines.filter(pc.is_in(batch.lines["order_id"], order_ids))
        from siyu.collect.pipeline import upsert_customers, upsert_products

        upsert_products(conn, _products_rows(ws, lines, now))
        upsert_customers(conn, _customers_rows(ws, stored, now))
        consents = stored.filter(pc.equal(stored["kind"], "consent"))
        if consents.num_rows:
            insert_new(
                conn, schema.consents, _consent_rows(ws, consents, source_id), ("consent_id",)
            )
        _after_ingest(conn, ws, report.stored_ids, pipeline)
        report.quarantine_ids = store_rejections(
            conn, ws, rejected, source_id=source_id, origin=origin, received_at=now
        )
        report.quarantined = len(rejected)
    return report


def _after_ingest(conn: sa.Connection, ws: str, ids: list[str], pipeline: Pipeline) -> None:
    """The identity slice's post-ingest hook: the same call Pipeline makes per chunk."""
    try:
        from siyu.identity.hook import after_ingest
    except ImportError:  # an identity slice without the hook
        return
    after_ingest(conn, ws, ids, pipeline.settings)


def _ws(ws: str, n: int) -> pa.Array:
    return pa.array([ws] * n, pa.string())


def _store_events(
    conn: sa.Connection, ws: str, events: pa.Table, source_id: str | None, now: datetime
) -> pa.Table:
    """Append the events; return those stored (a concurrent PostgreSQL writer may win some)."""
    n = events.num_rows
    data = pa.table(
        {
            "workspace_id": _ws(ws, n),
            **{
                c: events[c]
                for c in ("message_id", "type", "event", "user_id", "anonymous_id", "customer_id")
            },
            "source_id": pa.array([source_id] * n, pa.string()),
            "timestamp": events["timestamp"],
            "received_at": pa.array([now] * n, rows.TS),
            "properties": events["properties"],
            "traits": events["traits"],
        }
    )
    if conn.dialect.name == "duckdb":
        append_new(conn, schema.events, data)
        return events
    inserted = insert_new(conn, schema.events, data, ("message_id",))
    if len(inserted) == n:
        return events
    keep = pa.array([str(r[0]) for r in inserted], pa.string())
    return events.filter(pc.is_in(events["message_id"], keep))


def _orders_rows(
    ws: str, orders: pa.Table, source_id: str | None, base: str, now: datetime
) -> pa.Table:
    n = orders.num_rows
    cols = [c for c in orders.column_names if c != "position"]
    return pa.table(
        {
            "workspace_id": _ws(ws, n),
            **{c: orders[c] for c in cols},
            "source_id": pa.array([source_id] * n, pa.string()),
            "base_currency": pa.array([base] * n, pa.string()),
            "refunded": pa.array([Decimal(0)] * n, rows.MONEY),
            "status": pa.array(["completed"] * n, pa.string()),
            "updated_at": pa.array([now] * n, rows.TS),
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
            "updated_at": pa.array([now] * n, rows.TS),
        }
    )


def _customers_rows(ws: str, events: pa.Table, now: datetime) -> pa.Table:
    """One row per customer: seen times of the batch, identify traits merged latest last."""
    # Acero's thread pool costs milliseconds of hand-off per call: worth it only for a big
    # chunk, and a small one (an HTTP request's) is latency-bound.
    seen = (
        events.filter(pc.is_valid(events["customer_id"]))
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
    identify = events.filter(pc.equal(events["kind"], "identify"))
    identify = identify.take(pc.sort_indices(identify["timestamp"]))  # stable: input order ties
    merged = identify.group_by("customer_id", use_threads=False).aggregate(
        [("t_" + k, "last") for k in _TRAITS]
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
            "updated_at": pa.array([now] * n, rows.TS),
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
            "purpose": pa.array(["marketing"] * n, pa.string()),
            "channel": consents["c_channel"],
            "status": consents["c_status"],
            "source_id": pa.array([source_id] * n, pa.string()),
            "message_id": consents["message_id"],
            "timestamp": consents["timestamp"],
            "evidence": consents["c_evidence"],
        }
    )
