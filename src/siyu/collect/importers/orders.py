"""Order exports -> canonical messages: grouping line rows into orders, statuses, consent.

An order export has one row per order line. Rows of one order are adjacent; the order-level
values (totals, status, customer) are either on the first row only (Shopify: "only the first
row carries the totals") or repeated on every row, or (Amazon) spread over the lines and summed.
Grouping, amounts and dates are computed on whole Arrow columns; Python then builds one message
per order (the pipeline's input is messages).

Message ids are deterministic, from the vendor, the order id and the content of the message,
so the same order in two overlapping exports is a duplicate, while an order whose total
changed between exports is stored once and the changed copy is quarantined as a conflict.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from siyu.collect.columnar import ColumnarBatch
from siyu.collect.importers.columnar import (
    ColumnContext,
    OrderKeys,
    build_batch,
    order_keys,
    plain_orders,
    unit_prices,
)
from siyu.collect.importers.prep import DATE_FORMATS, canonical, flag
from siyu.collect.validate import Record

ORDER_FIELDS = (
    "order_id", "created_at", "cancelled_at", "status", "email", "phone", "user_id",
    "first_name", "last_name", "country", "currency", "total", "subtotal", "shipping", "tax",
    "discount", "refunded", "accepts_email", "accepts_sms", "coupon",
)  # fmt: skip
LINE_FIELDS = ("line_name", "line_sku", "line_product_id", "line_variant", "line_price",
               "line_quantity")  # fmt: skip
DATES = ("created_at", "cancelled_at")
AMOUNTS = ("total", "subtotal", "shipping", "tax", "discount", "refunded", "line_price")
YES = ("yes", "true", "1", "y", "subscribed", "opt_in")

# Status categories; the values that mean each, lower-cased. Unknown statuses are completed.
DEFAULT_STATUSES: dict[str, tuple[str, ...]] = {
    "pending": ("pending", "unpaid", "failed", "checkout-draft", "voided", "expired",
                "awaiting payment", "wc-pending", "wc-failed"),
    "cancelled": ("cancelled", "canceled", "wc-cancelled"),
    "refunded": ("refunded", "wc-refunded"),
    "partially_refunded": ("partially_refunded", "partially refunded"),
}  # fmt: skip


@dataclass(frozen=True)
class OrderSpec:
    """How one vendor's order export maps onto canonical orders."""

    name: str
    vendor: str
    description: str
    delimiter: str
    columns: Mapping[str, Sequence[str]]  # canonical field -> candidate column names
    totals: Literal["first_row", "sum"] = "first_row"
    # For "sum": per-line amount columns added (+1) or subtracted (-1) into the order total.
    total_parts: Mapping[str, int] = field(default_factory=dict)
    statuses: Mapping[str, Sequence[str]] = field(default_factory=lambda: DEFAULT_STATUSES)
    skip_order_ids: frozenset[str] = frozenset()  # e.g. TikTok's description row
    date_formats: Sequence[str] = DATE_FORMATS
    timezone: str = "UTC"
    line_price_is_total: bool = False  # Amazon item-price is price x quantity
    group_field: str = "order_id"

    @property
    def source_columns(self) -> frozenset[str]:
        """The export columns this spec reads (the reader converts only these)."""
        return frozenset(n for names in self.columns.values() for n in names) | frozenset(
            self.total_parts
        )

    def build(self, table: pa.Table, origin_row: int) -> Iterator[Record]:
        """Messages of the complete orders in ``table`` (its first row is file row origin_row)."""
        return OrderBuilder(self, origin_row).messages(table)

    def build_columns(
        self, table: pa.Table, origin_row: int, context: ColumnContext
    ) -> tuple[ColumnarBatch | None, list[Record], int]:
        """The plain orders of ``table`` as columns, the messages of all the others, and the
        number of messages left out of the columns as repeats within the slice."""
        starts = group_starts(table["order_id"])
        if len(starts) == 0:
            return None, [], 0
        keys = order_keys(self, table, starts)
        # Summed totals are in ``keys.heads``; per-line totals become unit prices here, for
        # the columns only (the message path divides them itself).
        priced = unit_prices(table) if self.line_price_is_total else table
        plain = plain_orders(
            self, priced, keys, context.now, context.max_future_skew, context.max_event_bytes
        )
        batch, repeated = (
            build_batch(
                self, priced, keys, plain, origin_row, context.base_currency, context.workspace_id
            )
            if plain.any()
            else (None, 0)
        )
        rest = list(OrderBuilder(self, origin_row).messages_of(table, keys, ~plain))
        return batch, rest, repeated

    def prepare(self, batch: pa.RecordBatch | pa.Table) -> pa.Table:
        wanted = {f: self.columns.get(f, ()) for f in (*ORDER_FIELDS, *LINE_FIELDS)}
        table = canonical(
            batch, wanted, dates=DATES, amounts=AMOUNTS, formats=self.date_formats,
            tz=self.timezone,
        )  # fmt: skip
        if self.totals == "sum":
            parts = [
                pc.multiply(pc.cast(canonical(batch, {p: [p]}, dates=(), amounts=(p,))[p]
                                    .fill_null("0"), pa.float64(), safe=False), sign)
                for p, sign in self.total_parts.items()
            ]  # fmt: skip
            line_total = parts[0] if parts else pa.array([0.0] * batch.num_rows)
            for p in parts[1:]:
                line_total = pc.add(line_total, p)
            table = table.append_column("line_total", line_total)
        return table


def group_starts(order_ids: pa.ChunkedArray | pa.Array) -> np.ndarray[Any, Any]:
    """Indices where a new order begins (rows of one order are adjacent).

    Each id is compared with the previous one by an Arrow kernel (no Python string per row).
    """
    n = len(order_ids)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    ids = pc.fill_null(order_ids, "")
    ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    change = np.empty(n, dtype=bool)
    change[0] = True
    change[1:] = pc.not_equal(ids.slice(1), ids.slice(0, n - 1)).to_numpy(zero_copy_only=False)
    return np.flatnonzero(change)


def _digest(*parts: Any) -> str:
    blob = orjson.dumps(parts, option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(blob).hexdigest()[:32]


def _status_category(spec: OrderSpec, status: str | None) -> str:
    value = (status or "").strip().lower()
    for category, values in spec.statuses.items():
        if value in values:
            return category
    return "completed"


@dataclass
class OrderBuilder:
    """Builds the messages of complete orders of one prepared table."""

    spec: OrderSpec
    origin_row: int  # file row number of the table's first row (header = row 1)

    def messages(self, table: pa.Table) -> Iterator[Record]:
        starts = group_starts(table["order_id"])
        if len(starts) == 0:
            return
        yield from self.messages_of(table, order_keys(self.spec, table, starts))

    def messages_of(
        self, table: pa.Table, keys: OrderKeys, only: np.ndarray[Any, Any] | None = None
    ) -> Iterator[Record]:
        """Messages of the orders of ``table`` (those where ``only`` is true, if given).

        Only the selected orders are turned into Python values.
        """
        n = table.num_rows
        sizes = np.diff(np.append(keys.starts, n))
        chosen = np.arange(keys.count) if only is None else np.flatnonzero(only)
        if len(chosen) == 0:
            return
        rows_of = np.repeat(chosen, sizes[chosen])  # order index of each selected row
        first = np.repeat(keys.starts[chosen], sizes[chosen])
        row_index = first + (np.arange(len(rows_of)) - np.repeat(
            np.cumsum(sizes[chosen]) - sizes[chosen], sizes[chosen]))  # fmt: skip
        pick = pa.array(chosen, pa.int64())
        heads = keys.heads.take(pick).to_pylist()
        user_ids = keys.user_id.take(pick).to_pylist()
        anonymous_ids = keys.anonymous_id.take(pick).to_pylist()
        traits_of = keys.traits.take(pick).to_pylist()
        accepts = flag(keys.heads["accepts_email"].take(pick), YES).to_pylist()
        accepts_sms = flag(keys.heads["accepts_sms"].take(pick), YES).to_pylist()
        lines = table.select(list(LINE_FIELDS)).take(pa.array(row_index, pa.int64())).to_pylist()
        order_digests = keys.order_digest.take(pick).to_pylist()
        identify_digests = keys.identify_digest.take(pick).to_pylist()
        bounds = np.append(np.cumsum(sizes[chosen]) - sizes[chosen], len(rows_of)).tolist()
        for j, head in enumerate(heads):
            k = int(chosen[j])
            if head["order_id"] in self.spec.skip_order_ids:
                continue
            row = self.origin_row + int(keys.starts[k])
            group = lines[bounds[j] : bounds[j + 1]]
            head["accepts_email"] = accepts[j]
            head["accepts_sms"] = accepts_sms[j]
            ids = {"userId": user_ids[j]} if user_ids[j] else {"anonymousId": anonymous_ids[j]}
            traits = {t: v for t, v in traits_of[j].items() if v}
            yield from self._order(
                head, group, row, ids, traits, (order_digests[j], identify_digests[j])
            )

    def _order(
        self,
        head: dict[str, Any],
        group: list[dict[str, Any]],
        row: int,
        ids: dict[str, Any],
        traits: dict[str, Any],
        digests: tuple[str, str],
    ) -> Iterator[Record]:
        spec, oid = self.spec, head["order_id"]
        products = []
        for line in group:
            qty = line["line_quantity"] or "1"
            price = line["line_price"]
            if spec.line_price_is_total and price and qty.isdigit() and int(qty) > 0:
                price = f"{float(price) / int(qty):.4f}"
            products.append(
                {
                    k: v
                    for k, v in {
                        "name": line["line_name"] or None,
                        "sku": line["line_sku"] or None,
                        "product_id": line["line_product_id"] or line["line_sku"] or None,
                        "variant": line["line_variant"] or None,
                        "price": price,
                        "quantity": int(qty) if qty.isdigit() else qty,
                    }.items()
                    if v is not None
                }
            )
        props = {
            "order_id": oid,
            "affiliation": spec.vendor,
            "total": head["total"],
            "subtotal": head["subtotal"],
            "shipping": head["shipping"],
            "tax": head["tax"],
            "discount": head["discount"],
            "coupon": head["coupon"] or None,
            "currency": head["currency"] or None,
            "status": head["status"] or None,
            "products": products,
        }
        props = {k: v for k, v in props.items() if v is not None}
        category = _status_category(spec, head["status"])
        event = "Checkout Started" if category == "pending" else "Order Completed"
        when = head["created_at"]
        base = f"import:{spec.vendor}:{oid}"
        if traits:
            yield Record(row, {
                # Keyed by customer and traits, not order: repeated details are duplicates.
                "type": "identify",
                "messageId": f"import:{spec.vendor}:identify:{digests[1]}",
                "timestamp": when, "traits": traits, **ids,
            })  # fmt: skip
        if event == "Checkout Started":
            props = {**props, "value": props.pop("total", None)}
            props = {k: v for k, v in props.items() if v is not None}
        yield Record(row, {
            "type": "track", "event": event, "messageId": f"{base}:{digests[0]}",
            "timestamp": when, "properties": props, **ids,
        })  # fmt: skip
        if event == "Order Completed":
            yield from self._after(head, ids, row, base, category)

    def _after(
        self, head: dict[str, Any], ids: dict[str, Any], row: int, base: str, category: str
    ) -> Iterator[Record]:
        """Refunds, cancellation and consents that follow an order."""
        currency = head["currency"] or None
        refunded = head["refunded"]
        if refunded in ("0", "0.00", "0.0"):
            refunded = None
        if category in ("refunded", "partially_refunded") or refunded:
            amount = refunded or (head["total"] if category == "refunded" else None)
            props = {"order_id": head["order_id"], "total": amount, "currency": currency}
            yield Record(row, {
                "type": "track", "event": "Order Refunded",
                "messageId": f"{base}:refund:{_digest(amount, currency)}",
                "timestamp": head["cancelled_at"] or head["created_at"],
                "properties": {k: v for k, v in props.items() if v is not None}, **ids,
            })  # fmt: skip
        if head["cancelled_at"] or category == "cancelled":
            yield Record(row, {
                "type": "track", "event": "Order Cancelled", "messageId": f"{base}:cancelled",
                "timestamp": head["cancelled_at"] or head["created_at"],
                "properties": {"order_id": head["order_id"]}, **ids,
            })  # fmt: skip
        for channel, accepted in (("email", head["accepts_email"]), ("sms", head["accepts_sms"])):
            if accepted is None:
                continue
            status = "granted" if accepted else "denied"
            yield Record(row, {
                "type": "track", "event": "Consent Updated",
                "messageId": f"{base}:consent:{channel}:{status}",
                "timestamp": head["created_at"],
                "properties": {"purpose": "marketing", "channel": channel, "status": status,
                               "evidence": f"{self.spec.name} export: accepts {channel} "
                                           "marketing column"},
                **ids,
            })  # fmt: skip
