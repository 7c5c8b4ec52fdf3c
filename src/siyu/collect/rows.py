"""Columnar rows (Arrow tables) built from validated calls.

Each builder turns a list of calls into the Arrow table of one stored table. Only the fields the
schema keeps are built; JSON documents are serialised once with orjson.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from siyu.collect.ecommerce import (
    CONSENT_UPDATED,
    ORDER_CANCELLED,
    ORDER_COMPLETED,
    ORDER_REFUNDED,
    SYSTEM_EVENTS,
    ConsentUpdated,
    OrderCompleted,
    OrderRefunded,
    Product,
)
from siyu.collect.validate import ValidCall

MONEY = pa.decimal128(18, 4)
TS = pa.timestamp("us")
Q = Decimal("0.0001")
THREADED_GROUP_BY = 20_000  # rows from which a group-by uses Acero's threads


def customer_key(workspace_id: str, user_id: str | None, anonymous_id: str | None) -> str | None:
    """The provisional customer id of a call: one per userId, else per anonymousId.

    Identity resolution (One-ID) later merges these into people; the key is stable so that the
    same sender always lands on the same provisional customer.
    """
    if user_id:
        key = "u:" + user_id
    elif anonymous_id:
        key = "a:" + anonymous_id
    else:
        return None
    digest = _BLAKE2B_10.copy()  # a copy skips parsing the constructor's keyword arguments
    digest.update(f"{workspace_id}|{key}".encode())
    return "cus_" + digest.hexdigest()


_BLAKE2B_10 = hashlib.blake2b(digest_size=10)


def keep_new_calls(
    workspace_id: str,
    valid: list[ValidCall],
    seen: set[str],
    keys: dict[tuple[str | None, str | None], str | None],
    calls: list[ValidCall],
) -> tuple[int, int]:
    """Append to ``calls`` the calls whose messageId is not in ``seen``, with their customer.

    ``seen`` and ``keys`` (sender -> provisional customer, as senders repeat) carry over from
    one slice of a chunk to the next. Returns how many calls repeated a messageId, and how
    many of those were identify calls (a repeat customer's unchanged details, whose messageId
    an importer derives from the details: reported apart from duplicate orders).
    """
    duplicates = 0
    repeated_details = 0
    # customer_key written out with the workspace prefix hashed once: the same digest as
    # hashing "workspace|u:user" in one go (tests/collect/test_pipeline.py checks).
    prefix = _BLAKE2B_10.copy()
    prefix.update(f"{workspace_id}|".encode())
    for v in valid:
        if v.message_id in seen:
            duplicates += 1
            if v.fields["type"] == "identify":
                repeated_details += 1
            continue
        seen.add(v.message_id)
        fields = v.fields
        user_id: str | None = fields["user_id"]
        anonymous_id: str | None = fields["anonymous_id"]
        sender = (user_id, anonymous_id)
        key = keys.get(sender, "")
        if key == "":
            if user_id:
                digest = prefix.copy()
                digest.update(("u:" + user_id).encode())
                key = "cus_" + digest.hexdigest()
            elif anonymous_id:
                digest = prefix.copy()
                digest.update(("a:" + anonymous_id).encode())
                key = "cus_" + digest.hexdigest()
            else:
                key = None
            keys[sender] = key
        v.customer_id = key
        calls.append(v)
    return duplicates, repeated_details


def _json(value: Any) -> str | None:
    if not value:
        return None
    return orjson.dumps(value, default=str).decode()


def constant(value: datetime, n: int) -> pa.Array:
    """A timestamp column of ``n`` times ``value`` (naive UTC).

    ``pa.array([value] * n)`` converts every element and asks each for its UTC offset: about
    0.2 us per row, for a column that holds one value.
    """
    return pa.array(np.full(n, np.datetime64(value, "us")), TS)


def events_table(
    workspace_id: str, calls: list[ValidCall], source_id: str | None, received_at: datetime
) -> pa.Table:
    n = len(calls)
    f = [v.fields for v in calls]
    dumps = orjson.dumps
    return pa.table(
        {
            "workspace_id": pa.array([workspace_id] * n, pa.string()),
            "message_id": pa.array([v.message_id for v in calls], pa.string()),
            "type": pa.array([x["type"] for x in f], pa.string()),
            "event": pa.array([x.get("event") for x in f], pa.string()),
            "name": pa.array([x.get("name") for x in f], pa.string()),
            "user_id": pa.array([x["user_id"] for x in f], pa.string()),
            "anonymous_id": pa.array([x["anonymous_id"] for x in f], pa.string()),
            "customer_id": pa.array([v.customer_id for v in calls], pa.string()),
            "source_id": pa.array([source_id] * n, pa.string()),
            "group_id": pa.array([x.get("group_id") for x in f], pa.string()),
            "previous_id": pa.array([x.get("previous_id") for x in f], pa.string()),
            "timestamp": pa.array([v.timestamp for v in calls], TS),
            "received_at": constant(received_at, n),
            # _json written out: one call fewer per value
            "properties": pa.array(
                [dumps(p, default=str).decode() if (p := x.get("properties")) else None for x in f],
                pa.string(),
            ),
            "traits": pa.array(
                [dumps(t, default=str).decode() if (t := x.get("traits")) else None for x in f],
                pa.string(),
            ),
            "context": pa.array(
                [dumps(c, default=str).decode() if (c := x["context"]) else None for x in f],
                pa.string(),
            ),
        }
    )


@dataclass(frozen=True)
class OrderRow:
    """An order derived from an Order Completed call (amounts in the order currency)."""

    call: ValidCall
    props: OrderCompleted
    currency: str
    total: Decimal
    revenue: Decimal
    lines: list[Product]


def order_row(v: ValidCall, base_currency: str) -> OrderRow:
    """Derive the order's amounts by the Segment convention.

    revenue = subtotal - discount (excl. shipping and tax); total = revenue + shipping + tax.
    Amounts the sender omitted are derived from the lines; amounts it sent are kept as sent.
    """
    assert isinstance(v.props, OrderCompleted)
    p = v.props
    lines = list(p.products)
    lines_sum = sum(
        ((line.price or Decimal(0)) * line.quantity for line in lines), Decimal(0)
    ).quantize(Q)
    discount = p.discount or Decimal(0)
    if p.revenue is not None:
        revenue = p.revenue
    elif p.subtotal is not None:
        revenue = p.subtotal - discount
    elif not lines and p.total is not None:
        revenue = p.total - (p.shipping or Decimal(0)) - (p.tax or Decimal(0))
    else:
        revenue = lines_sum - discount
    total = (
        p.total
        if p.total is not None
        else revenue + (p.shipping or Decimal(0)) + (p.tax or Decimal(0))
    )
    return OrderRow(
        v, p, p.currency or base_currency, total.quantize(Q), revenue.quantize(Q), lines
    )


def orders_table(
    workspace_id: str,
    rows: list[OrderRow],
    source_id: str | None,
    base_currency: str,
    now: datetime,
) -> pa.Table:
    n = len(rows)
    calls = [r.call.fields for r in rows]
    return pa.table(
        {
            "workspace_id": pa.array([workspace_id] * n, pa.string()),
            "order_id": pa.array([r.props.order_id for r in rows], pa.string()),
            "customer_id": pa.array([r.call.customer_id for r in rows], pa.string()),
            "user_id": pa.array([c["user_id"] for c in calls], pa.string()),
            "anonymous_id": pa.array([c["anonymous_id"] for c in calls], pa.string()),
            "source_id": pa.array([source_id] * n, pa.string()),
            "message_id": pa.array([r.call.message_id for r in rows], pa.string()),
            "placed_at": pa.array([r.call.timestamp for r in rows], TS),
            "currency": pa.array([r.currency for r in rows], pa.string()),
            "total": pa.array([r.total for r in rows], MONEY),
            "subtotal": pa.array([r.props.subtotal for r in rows], MONEY),
            "revenue": pa.array([r.revenue for r in rows], MONEY),
            "shipping": pa.array([r.props.shipping for r in rows], MONEY),
            "tax": pa.array([r.props.tax for r in rows], MONEY),
            "discount": pa.array([r.props.discount for r in rows], MONEY),
            "coupon": pa.array([r.props.coupon for r in rows], pa.string()),
            "line_count": pa.array([len(r.lines) for r in rows], pa.int32()),
            "base_currency": pa.array([base_currency] * n, pa.string()),
            "refunded": pa.array([Decimal(0)] * n, MONEY),
            "status": pa.array(["completed"] * n, pa.string()),
            "updated_at": constant(now, n),
        }
    )


def lines_table(workspace_id: str, rows: list[OrderRow]) -> pa.Table:
    cols: dict[str, list[Any]] = {
        k: []
        for k in (
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
    }
    for r in rows:
        for i, line in enumerate(r.lines, start=1):
            cols["order_id"].append(r.props.order_id)
            cols["line_no"].append(i)
            cols["product_id"].append(line.product_id or line.sku)
            cols["sku"].append(line.sku)
            cols["name"].append(line.name)
            cols["category"].append(line.category)
            cols["brand"].append(line.brand)
            cols["variant"].append(line.variant)
            cols["price"].append((line.price or Decimal(0)).quantize(Q))
            cols["quantity"].append(line.quantity)
            cols["currency"].append(r.currency)
    n = len(cols["order_id"])
    return pa.table(
        {
            "workspace_id": pa.array([workspace_id] * n, pa.string()),
            "order_id": pa.array(cols["order_id"], pa.string()),
            "line_no": pa.array(cols["line_no"], pa.int32()),
            "product_id": pa.array(cols["product_id"], pa.string()),
            "sku": pa.array(cols["sku"], pa.string()),
            "name": pa.array(cols["name"], pa.string()),
            "category": pa.array(cols["category"], pa.string()),
            "brand": pa.array(cols["brand"], pa.string()),
            "variant": pa.array(cols["variant"], pa.string()),
            "price": pa.array(cols["price"], MONEY),
            "quantity": pa.array(cols["quantity"], pa.int32()),
            "currency": pa.array(cols["currency"], pa.string()),
        }
    )


def is_refund(v: ValidCall) -> bool:
    return v.event in (ORDER_REFUNDED, ORDER_CANCELLED)


def is_order(v: ValidCall) -> bool:
    return v.event == ORDER_COMPLETED


def is_consent(v: ValidCall) -> bool:
    return v.event == CONSENT_UPDATED


def refund_amount(v: ValidCall) -> Decimal | None:
    """The refunded amount, or None for 'the whole remaining order' (cancellations)."""
    assert isinstance(v.props, OrderRefunded)
    if v.event == ORDER_CANCELLED:
        return None
    if v.props.total is not None:
        return v.props.total
    if v.props.products:
        return sum(
            ((p.price or Decimal(0)) * p.quantity for p in v.props.products), Decimal(0)
        ).quantize(Q)
    return None


def products_table(workspace_id: str, calls: list[ValidCall], now: datetime) -> pa.Table:
    """Latest known attributes of each product seen in the chunk (last call wins)."""
    latest: dict[str, tuple[Product, str | None, datetime]] = {}
    for v in calls:
        props = v.props
        if props is None:
            continue
        values_of = props.__dict__
        currency = values_of.get("currency")
        items: list[Product] = [props] if isinstance(props, Product) else []
        if isinstance(values_of.get("products"), list):
            items = values_of["products"]
        for item in items:
            pid = item.product_id or item.sku
            if pid:
                latest[pid] = (item, currency, v.timestamp)
    n = len(latest)
    values = list(latest.items())
    return pa.table(
        {
            "workspace_id": pa.array([workspace_id] * n, pa.string()),
            "product_id": pa.array([k for k, _ in values], pa.string()),
            "sku": pa.array([p.sku for _, (p, _, _) in values], pa.string()),
            "name": pa.array([p.name for _, (p, _, _) in values], pa.string()),
            "category": pa.array([p.category for _, (p, _, _) in values], pa.string()),
            "brand": pa.array([p.brand for _, (p, _, _) in values], pa.string()),
            "price": pa.array([p.price for _, (p, _, _) in values], MONEY),
            "currency": pa.array([c for _, (_, c, _) in values], pa.string()),
            "first_seen_at": pa.array([t for _, (_, _, t) in values], TS),
            "updated_at": constant(now, n),
        }
    )


TRAIT_COLUMNS = ("email", "phone", "first_name", "last_name", "language", "timezone")


def _trait(traits: dict[str, Any], key: str) -> str | None:
    value = traits.get(key)
    if value is None and key in ("first_name", "last_name"):
        value = traits.get(key.replace("_n", "N"))
    return str(value).strip() or None if value not in (None, "") else None


def _country(traits: dict[str, Any]) -> str | None:
    value = traits.get("country")
    address = traits.get("address")
    if not value and isinstance(address, dict):
        value = address.get("country")
    if isinstance(value, str) and len(value.strip()) == 2:
        return value.strip().upper()
    return None


def _birthday(traits: dict[str, Any]) -> date | None:
    value = traits.get("birthday")
    if isinstance(value, str):
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def identify_traits(calls: list[ValidCall]) -> dict[str, tuple[datetime, dict[str, Any]]]:
    """Per customer: the time of its newest identify with traits, and the chunk's traits merged
    in time order (the stored row compares that time: see ``pipeline._customer_updates``)."""
    merged: dict[str, tuple[datetime, dict[str, Any]]] = {}
    for v in sorted((v for v in calls if v.fields["type"] == "identify"), key=_at):
        traits = v.fields.get("traits")
        if traits and v.customer_id:
            before = merged[v.customer_id][1] if v.customer_id in merged else {}
            merged[v.customer_id] = (v.timestamp, {**before, **traits})
    return merged


def trait_columns(traits_of: list[dict[str, Any]]) -> dict[str, pa.Array]:
    """The customers table's trait columns for customers with these merged traits."""
    n = len(traits_of)
    with_traits = [i for i, t in enumerate(traits_of) if t]  # the per-trait work only for them

    def column(fn: Any, arrow_type: pa.DataType) -> pa.Array:
        if not with_traits:  # a chunk without identify calls: no Python list of n Nones
            return pa.nulls(n, arrow_type)
        values: list[Any] = [None] * n
        for i in with_traits:
            values[i] = fn(traits_of[i])
        return pa.array(values, arrow_type)

    data: dict[str, pa.Array] = {}
    for col in TRAIT_COLUMNS:
        data[col] = column(lambda t, c=col: _trait(t, c), pa.string())
    data["country"] = column(_country, pa.string())
    data["currency"] = column(
        lambda t: str(t["currency"]).upper()[:3] if t.get("currency") else None, pa.string()
    )
    data["birthday"] = column(_birthday, pa.date32())
    data["traits"] = column(_json, pa.string())
    return data


CUSTOMER_TRAIT_COLUMNS = (*TRAIT_COLUMNS, "country", "currency", "birthday", "traits", "traits_at")


def traits_table(merged: dict[str, tuple[datetime, dict[str, Any]]]) -> pa.Table:
    """One row per customer with identify traits in the chunk: its trait columns and their time."""
    ids = list(merged)
    data: dict[str, Any] = {"customer_id": pa.array(ids, pa.string())}
    data.update(trait_columns([merged[cid][1] for cid in ids]))
    data["traits_at"] = pa.array([merged[cid][0] for cid in ids], TS)
    return pa.table(data)


_SYSTEM_EVENT_NAMES = pa.array(SYSTEM_EVENTS, pa.string())


def system_events_mask(events: pa.Table) -> pa.ChunkedArray | None:
    """Which of a chunk's events are about a customer, not by her (None: none is).

    :data:`~siyu.collect.ecommerce.SYSTEM_EVENTS` (a message sent, points expired, a tier
    changed) are stored as the customer's own events, but they are not her activity: a
    customer's seen times must not move with them, or a win-back segment on ``last_seen_at``
    would lose everyone the moment the win-back message is sent.
    """
    mask = pc.fill_null(pc.is_in(events["event"], value_set=_SYSTEM_EVENT_NAMES), False)
    return mask if pc.any(mask).as_py() else None


def customers_table(
    workspace_id: str, calls: list[ValidCall], events: pa.Table, now: datetime
) -> tuple[pa.Table, pa.Table]:
    """One row per provisional customer in the chunk: seen times and latest identify traits.

    Returns the customers with an act of their own in the chunk (to upsert: seen times
    widened, traits merged) and those with only :func:`system_events_mask` events (to insert
    where the row is missing, seen at their first such event; a stored row is left as it is).
    Seen times aggregate columnar over the chunk's events; only identify calls (few) are
    visited one by one to merge their traits in time order. (On DuckDB the pipeline does the
    same in SQL over the staged events: ``pipeline.upsert_customers_from_events``.)
    """
    events = events.filter(pc.is_valid(events["customer_id"]))
    system = system_events_mask(events)
    own = events if system is None else events.filter(pc.invert(system))
    active = _customer_rows(workspace_id, calls, own, now)
    if system is None:
        return active, active.slice(0, 0)
    others = events.filter(system)
    ids = pc.unique(others["customer_id"])
    passive_ids = ids.filter(pc.invert(pc.is_in(ids, value_set=active["customer_id"])))
    passive = others.filter(pc.is_in(others["customer_id"], value_set=passive_ids))
    return active, _customer_rows(workspace_id, [], passive, now)


def _customer_rows(
    workspace_id: str, calls: list[ValidCall], events: pa.Table, now: datetime
) -> pa.Table:
    """A row per customer of ``events``: seen times from them, traits from ``calls``."""
    # Acero's thread pool costs milliseconds of hand-off per call: worth it only for a big
    # chunk, and a small one (an HTTP request's) is latency-bound.
    threads = events.num_rows > THREADED_GROUP_BY
    seen = events.group_by("customer_id", use_threads=threads).aggregate(
        [
            ("timestamp", "min"),
            ("timestamp", "max"),
            ("user_id", "min"),
            ("anonymous_id", "min"),
        ]
    )
    merged = identify_traits(calls)
    n = seen.num_rows
    data: dict[str, Any] = {
        "workspace_id": pa.array([workspace_id] * n, pa.string()),
        "customer_id": seen["customer_id"],
        "user_id": seen["user_id_min"],
        "anonymous_id": seen["anonymous_id_min"],
    }
    if merged:
        said = [merged.get(c) for c in seen["customer_id"].to_pylist()]
        data.update(trait_columns([m[1] if m else {} for m in said]))
        traits_at = pa.array([m[0] if m else None for m in said], TS)
    else:  # no identify call in the chunk: no Python value per customer
        data.update(trait_columns([{}] * n))
        traits_at = pa.nulls(n, TS)
    data["first_seen_at"] = seen["timestamp_min"]
    data["last_seen_at"] = seen["timestamp_max"]
    data["updated_at"] = constant(now, n)
    data["traits_at"] = traits_at
    return pa.table(data)


def _at(v: ValidCall) -> datetime:
    return v.timestamp


def consents_table(workspace_id: str, calls: list[ValidCall], source_id: str | None) -> pa.Table:
    """A consent ledger row per Consent Updated call (the ledger is append-only)."""
    rows = [v for v in calls if isinstance(v.props, ConsentUpdated)]
    n = len(rows)
    props = [v.props for v in rows]
    return pa.table(
        {
            "workspace_id": pa.array([workspace_id] * n, pa.string()),
            "consent_id": pa.array([v.message_id for v in rows], pa.string()),
            "customer_id": pa.array([v.customer_id for v in rows], pa.string()),
            "user_id": pa.array([v.fields["user_id"] for v in rows], pa.string()),
            "anonymous_id": pa.array([v.fields["anonymous_id"] for v in rows], pa.string()),
            "purpose": pa.array([p.purpose for p in props], pa.string()),  # type: ignore[union-attr]
            "channel": pa.array([p.channel for p in props], pa.string()),  # type: ignore[union-attr]
            "status": pa.array([p.status for p in props], pa.string()),  # type: ignore[union-attr]
            "source_id": pa.array([source_id] * n, pa.string()),
            "message_id": pa.array([v.message_id for v in rows], pa.string()),
            "timestamp": pa.array([v.timestamp for v in rows], TS),
            "evidence": pa.array([_json(getattr(p, "evidence", None)) for p in props], pa.string()),
        }
    )
