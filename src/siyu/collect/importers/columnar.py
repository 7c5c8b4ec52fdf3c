"""The Arrow-native path of order imports: a slice of an export becomes event, order, line,
customer-trait and consent columns through compute kernels, with no Python object per order.

Why: turning each order into a message dict and validating it through the Pydantic models costs
tens of microseconds per order, which caps an import far below what the database can absorb.
Most orders of a real export are plain: completed, parsed dates, plain decimal amounts, a known
currency, whole quantities. A vectorised check (:func:`plain_orders`) finds those; they take
this path. Every other order (refunds, cancellations, checkouts, anything the check does not
recognise: bad dates, odd amounts, unknown currencies, control characters, over-long values)
goes through the message path, which accepts it or quarantines it with the precise reason. So
this path is never more permissive than the models, as ``collect/fastpath.py`` for the API.

Message ids come from :func:`order_keys`, which both paths use, so an order gets the same ids
whichever path it takes, and re-importing (or an overlapping export) deduplicates.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from siyu.collect import rows
from siyu.collect.columnar import ColumnarBatch
from siyu.money.currencies import iso_currencies

if TYPE_CHECKING:
    from siyu.collect.importers.orders import OrderSpec

Col: TypeAlias = pa.Array | pa.ChunkedArray
_SEP = "\x1f"
_PLAIN_MONEY = r"^\d{1,14}(\.\d{1,4})?$"
_ISO_UTC = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"
_CONTROL = r"[\x00-\x1f\x7f]"
_TRAITS = ("email", "phone", "first_name", "last_name", "country")
_LINE_TEXT = (
    "line_name",
    "line_sku",
    "line_product_id",
    "line_variant",
    "line_price",
    "line_quantity",
)
_HEAD_TEXT = (
    "order_id",
    "created_at",
    "cancelled_at",
    "status",
    "total",
    "subtotal",
    "shipping",
    "tax",
    "discount",
    "refunded",
    "coupon",
    "currency",
)


def _digests(text: Col) -> pa.Array:
    """A short content digest of each value (the message-id suffix); the UTF-8 bytes are read
    as binary (no Python string to encode again)."""
    blake2b = hashlib.blake2b
    return pa.array(
        [blake2b(b, digest_size=16).hexdigest() for b in text.cast(pa.binary()).to_pylist()],
        pa.string(),
    )


def _taken(values: Any, at: pa.Array) -> Any:
    """``values.take(at)``; ``values`` itself when ``at`` is every position in order (the
    plain orders are usually all of a slice's, and a take copies every value)."""
    return values if len(at) == len(values) else values.take(at)


def _blank(values: Col) -> Col:
    return pc.fill_null(values, "")


def _none_if_empty(values: Col) -> Col:
    return pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)


@dataclass(frozen=True)
class ColumnContext:
    """What the Arrow path needs to know about the target: workspace, clock and limits."""

    workspace_id: str
    base_currency: str
    now: datetime  # naive UTC
    max_future_skew: timedelta
    max_event_bytes: int


@dataclass(frozen=True)
class OrderKeys:
    """Per order of a prepared slice: where it starts, its sender and its message digests.

    Computed once per slice with column kernels and used by both paths, so the ids of an
    order do not depend on the path it takes.
    """

    starts: np.ndarray[Any, Any]  # row index where each order begins
    heads: pa.Table  # the first row of each order (with the total of summed exports)
    user_id: pa.Array  # userId of the order's messages, or null
    anonymous_id: pa.Array  # anonymousId when there is no userId
    traits: pa.Table  # identify traits (email lower-cased; null where empty)
    order_digest: pa.Array
    identify_digest: pa.Array
    identify_code: np.ndarray[Any, Any]  # per order: which distinct identify message it sends

    @property
    def count(self) -> int:
        return len(self.starts)


def order_keys(spec: OrderSpec, table: pa.Table, starts: np.ndarray[Any, Any]) -> OrderKeys:
    """Senders, traits and message digests of every order of ``table``."""
    n = table.num_rows
    # The order-level columns of each order's first row (line columns stay in ``table``).
    head_columns = [c for c in table.column_names if c not in _LINE_TEXT and c != "line_total"]
    heads = table.select(head_columns).take(pa.array(starts, pa.int64()))
    if spec.totals == "sum":
        sums = np.add.reduceat(table["line_total"].to_numpy(), starts) if n else np.zeros(0)
        total = pa.array([f"{s:.2f}" for s in sums], pa.string())
        heads = heads.set_column(heads.schema.get_field_index("total"), "total", total)
    email = pc.utf8_lower(heads["email"])
    traits = pa.table(
        {
            "email": _none_if_empty(email),
            **{k: _none_if_empty(heads[k]) for k in ("phone", "first_name", "last_name")},
            "country": _none_if_empty(heads["country"]),
        }
    )
    uid = heads["user_id"]
    has_uid = pc.and_(pc.not_equal(uid, ""), pc.invert(pc.is_in(uid, pa.array(["0", "guest"]))))
    vendor = spec.vendor
    anon = pc.if_else(
        pc.not_equal(email, ""),
        pc.binary_join_element_wise(f"{vendor}-email:", email, ""),
        pc.binary_join_element_wise(f"{vendor}-order:", heads["order_id"], ""),
    )
    null = pa.scalar(None, pa.string())
    user_id = pc.if_else(has_uid, uid, null)
    anonymous_id = pc.if_else(has_uid, null, anon)
    sender = pc.if_else(
        has_uid,
        pc.binary_join_element_wise("u", _SEP, uid, ""),
        pc.binary_join_element_wise("a", _SEP, anon, ""),
    )
    identify_text = pc.binary_join_element_wise(sender, *(_blank(traits[k]) for k in _TRAITS), _SEP)
    line_text = _array(pc.binary_join_element_wise(*(_blank(table[c]) for c in _LINE_TEXT), "\x1e"))
    offsets = pa.array(np.append(starts, n).astype(np.int32))
    lines = pc.binary_join(pa.ListArray.from_arrays(offsets, line_text), "\x1d")
    order_text = pc.binary_join_element_wise(
        spec.vendor, *(_blank(heads[c]) for c in _HEAD_TEXT), lines, _SEP
    )
    # A customer's identify details recur on each of their orders: each distinct text is
    # hashed once, and its code tells the orders sending the same identify message apart.
    encoded = pc.dictionary_encode(_array(identify_text))
    codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    return OrderKeys(
        starts=starts,
        heads=heads,
        user_id=_array(user_id),
        anonymous_id=_array(anonymous_id),
        traits=traits,
        order_digest=_array(_digests(order_text)),
        identify_digest=_array(pc.take(_digests(encoded.dictionary), encoded.indices)),
        identify_code=codes,
    )


def categories(spec: OrderSpec, status: Col) -> Col:
    """The status category of each value (as ``orders._status_category``): the first category
    listing the trimmed, lower-cased value, else ``completed``."""
    value = pc.utf8_lower(pc.utf8_trim_whitespace(pc.fill_null(status, "")))
    out = pa.nulls(len(value), pa.string())
    for category, values in spec.statuses.items():
        hit = pc.is_in(value, pa.array([v.lower() for v in values], pa.string()))
        out = pc.if_else(pc.and_(pc.is_null(out), hit), category, out)
    return pc.fill_null(out, "completed")


def _array(values: Col) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _matches(values: Col, pattern: str) -> Col:
    return pc.fill_null(pc.match_substring_regex(values, pattern=pattern), False)


def _empty_or(values: Col, ok: Col) -> Col:
    return pc.or_(pc.fill_null(pc.equal(values, ""), True), ok)


def _short(values: Col, limit: int) -> Col:
    return pc.less_equal(pc.fill_null(pc.utf8_length(values), 0), limit)


def plain_orders(
    spec: OrderSpec, table: pa.Table, keys: OrderKeys, now: datetime, skew: timedelta,
    max_event_bytes: int,
) -> np.ndarray[Any, Any]:  # fmt: skip
    """Which orders the Arrow path may take (bool per order); see the module docstring."""
    if keys.count == 0:
        return np.zeros(0, dtype=bool)
    h = keys.heads
    ok = pc.and_(pc.not_equal(h["order_id"], ""), _short(h["order_id"], 200))
    ok = pc.and_(
        ok, pc.invert(pc.is_in(h["order_id"], pa.array(sorted(spec.skip_order_ids), pa.string())))
    )
    # Checkouts (pending) are other events; refunds and cancellations are columns too.
    ok = pc.and_(ok, pc.not_equal(categories(spec, h["status"]), "pending"))
    limit = pa.scalar(now + skew, rows.TS)
    cancelled = h["cancelled_at"]
    cancelled_at = pc.strptime(
        cancelled, format="%Y-%m-%dT%H:%M:%SZ", unit="us", error_is_null=True
    )
    ok = pc.and_(
        ok,
        pc.or_(
            pc.is_null(cancelled),
            pc.and_(
                _matches(cancelled, _ISO_UTC),
                pc.fill_null(pc.less_equal(cancelled_at, limit), False),
            ),
        ),
    )
    refunded = h["refunded"]
    ok = pc.and_(ok, pc.or_(pc.is_null(refunded), _matches(refunded, _PLAIN_MONEY)))
    ok = pc.and_(ok, _matches(h["created_at"], _ISO_UTC))
    placed = pc.strptime(
        h["created_at"], format="%Y-%m-%dT%H:%M:%SZ", unit="us", error_is_null=True
    )
    ok = pc.and_(ok, pc.fill_null(pc.less_equal(placed, limit), False))
    for name in ("total", "subtotal", "shipping", "tax", "discount"):
        ok = pc.and_(ok, pc.or_(pc.is_null(h[name]), _matches(h[name], _PLAIN_MONEY)))
    currencies = pa.array(sorted(iso_currencies()), pa.string())
    ok = pc.and_(ok, _empty_or(h["currency"], pc.is_in(h["currency"], currencies)))
    for name, limit in (("coupon", 500), ("user_id", 200), ("email", 150), ("status", 500)):
        ok = pc.and_(ok, _short(h[name], limit))
    # No control character in any text column: one search over them joined.
    texts = ("user_id", "email", "phone", "first_name", "last_name", "country", "coupon", "status")
    joined = pc.binary_join_element_wise(*(_blank(h[name]) for name in texts), "")
    ok = pc.and_(ok, pc.invert(_matches(joined, _CONTROL)))
    # Row-level checks, folded per order.
    line_ok = pc.or_(pc.is_null(table["line_price"]), _matches(table["line_price"], _PLAIN_MONEY))
    line_ok = pc.and_(
        line_ok, _empty_or(table["line_quantity"], _matches(table["line_quantity"], r"^\d{1,6}$"))
    )
    line_ok = pc.and_(
        line_ok,
        pc.less_equal(
            pc.cast(
                pc.if_else(pc.equal(table["line_quantity"], ""), "1", table["line_quantity"]),
                pa.int64(),
                safe=False,
            ),
            1_000_000,
        ),
    )
    for name, limit in (("line_name", 500), ("line_variant", 500), ("line_sku", 200),
                        ("line_product_id", 200)):  # fmt: skip
        line_ok = pc.and_(line_ok, _short(table[name], limit))
    # The line's text joined: one control-character search (price and quantity have none when
    # they pass the checks above) and the line's size.
    line_text = pc.binary_join_element_wise(*(_blank(table[c]) for c in _LINE_TEXT), "")
    line_ok = pc.and_(line_ok, pc.invert(_matches(line_text, _CONTROL)))
    bad_rows = np.logical_not(np.asarray(line_ok.to_numpy(zero_copy_only=False), dtype=bool))
    bad_lines = np.add.reduceat(bad_rows.astype(np.int64), keys.starts) > 0
    sizes = np.diff(np.append(keys.starts, table.num_rows))
    # An order's message must stay well under the event size limit and the 1000-line cap.
    row_bytes = np.asarray(
        pc.fill_null(pc.binary_length(line_text), 0).to_numpy(zero_copy_only=False)
    )
    order_bytes = np.add.reduceat(row_bytes + 100, keys.starts)
    fits = (order_bytes < max_event_bytes // 2) & (sizes <= 1000)
    # The same order id twice in a slice: the message path decides which copy wins.
    ids = h["order_id"]
    counts = pc.value_counts(ids)
    repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    once = np.asarray(pc.invert(pc.is_in(ids, repeated)).to_numpy(zero_copy_only=False))
    result: np.ndarray[Any, Any] = np.asarray(ok.to_numpy(zero_copy_only=False), dtype=bool)
    plain: np.ndarray[Any, Any] = result & ~bad_lines & fits & once
    return plain


def unit_prices(table: pa.Table) -> pa.Table:
    """``table`` with line prices that are price x quantity (Amazon's item-price) divided by
    the quantity, exactly as the message path does (``f"{float(price) / int(qty):.4f}"``):
    each distinct (price, quantity) pair is computed once by that same expression. Prices or
    quantities the Arrow path does not take (not plain, quantity 0) are left as they are."""
    price, qty = table["line_price"], table["line_quantity"]
    qty = pc.if_else(pc.equal(qty, ""), "1", qty)  # the message path reads no quantity as 1
    due = pc.and_(_matches(price, _PLAIN_MONEY), _matches(qty, r"^\d{1,6}$"))
    due = pc.and_(due, pc.invert(_matches(qty, r"^0+$")))
    key = pc.if_else(due, pc.binary_join_element_wise(price, qty, _SEP), None)
    encoded = pc.dictionary_encode(_array(key))
    pairs = (k.split(_SEP) for k in encoded.dictionary.to_pylist())
    unit = pa.array([f"{float(p) / int(q):.4f}" for p, q in pairs], pa.string())
    at = table.schema.get_field_index("line_price")
    return table.set_column(at, "line_price", pc.coalesce(pc.take(unit, encoded.indices), price))


def _escaped(values: Col) -> Col:
    """Text with JSON's two escapes (callers exclude control characters); most exports have
    neither character, and a search for them costs a fraction of the replacement."""
    for char in ("\\", '"'):
        if pc.any(pc.match_substring(values, char)).as_py():
            values = pc.replace_substring(values, char, "\\" + char)
    return values


def _member(key: str, values: Col, *, literal: bool = False) -> Col:
    """``"key":value,`` where the value is present (non-null, non-empty), else ``""``."""
    present = pc.fill_null(pc.not_equal(values, ""), False)
    # Most columns are present everywhere (ids, names, amounts) or nowhere (an unused
    # column): those skip the per-row choice, a copy of every value.
    if not pc.any(present).as_py():
        return _const("", len(values))
    if literal:
        member = pc.binary_join_element_wise(f'"{key}":', values, ",", "")
    else:
        member = pc.binary_join_element_wise(f'"{key}":"', _escaped(values), '",', "")
    if pc.all(present).as_py():
        return member
    return pc.fill_null(pc.if_else(present, member, ""), "")


def _object(*members: Col | str, trim: bool = True) -> Col:
    """A JSON object of members made by :func:`_member` (absent ones left out).

    ``trim=False`` when the last member is always present and has no trailing comma: the
    object is then one join. Otherwise the last member's trailing comma becomes the closing
    brace (each pass over the text is a copy of every, possibly long, value).
    """
    # (null_handling="skip" of binary_join_element_wise drops rows when all are null.)
    if not trim:
        return pc.binary_join_element_wise("{", *members, "}", "")
    joined = pc.binary_join_element_wise("{", *members, "")
    closed = pc.binary_replace_slice(joined, start=-1, stop=1 << 30, replacement="}")
    return pc.if_else(pc.equal(joined, "{"), "{}", closed)


def build_batch(
    spec: OrderSpec, table: pa.Table, keys: OrderKeys, plain: np.ndarray[Any, Any],
    origin_row: int, base_currency: str, workspace_id: str,
) -> tuple[ColumnarBatch, int]:  # fmt: skip
    """The columns of the plain orders: the same messages the message path would make, but
    a repeated identify message once; with the number of those left out (duplicates)."""
    n = table.num_rows
    order_of_row = np.repeat(np.arange(keys.count), np.diff(np.append(keys.starts, n)))
    row_take = pa.array(np.flatnonzero(plain[order_of_row]), pa.int64())
    take = pa.array(np.flatnonzero(plain), pa.int64())
    h = _taken(keys.heads, take)
    lines_src = _taken(table.select(list(_LINE_TEXT)), row_take)
    line_order = order_of_row[np.flatnonzero(plain[order_of_row])]
    m = h.num_rows
    # Lines: product ids, quantities, JSON of each line, then per order through list offsets.
    qty_text = pc.if_else(pc.equal(lines_src["line_quantity"], ""), "1", lines_src["line_quantity"])
    quantity = pc.cast(qty_text, pa.int64())
    product_id = pc.coalesce(
        _none_if_empty(lines_src["line_product_id"]), _none_if_empty(lines_src["line_sku"])
    )
    price = lines_src["line_price"]
    line_json = _object(
        _member("name", lines_src["line_name"]),
        _member("sku", lines_src["line_sku"]),
        _member("product_id", product_id),
        _member("variant", lines_src["line_variant"]),
        _member("price", price),
        pc.binary_join_element_wise('"quantity":', pc.cast(quantity, pa.string()), ""),
        trim=False,
    )
    counts = np.diff(np.append(keys.starts, n))[plain]  # lines of each plain order
    offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
    products = pc.binary_join(pa.ListArray.from_arrays(offsets, _array(line_json)), ",")
    currency = _none_if_empty(h["currency"])
    props = _object(
        _member("order_id", h["order_id"]),
        f'"affiliation":{orjson.dumps(spec.vendor).decode()},',
        *(
            _member(k, h[k])
            for k in (
                "total",
                "subtotal",
                "shipping",
                "tax",
                "discount",
                "coupon",
                "currency",
                "status",
            )
        ),
        pc.binary_join_element_wise('"products":[', products, "]", ""),
        trim=False,
    )
    placed = pc.strptime(h["created_at"], format="%Y-%m-%dT%H:%M:%SZ", unit="us")
    user_id = _taken(keys.user_id, take)
    anonymous_id = _taken(keys.anonymous_id, take)
    customer_id = _customer_ids(workspace_id, user_id, anonymous_id)
    order_ids = h["order_id"]
    base = pc.binary_join_element_wise(f"import:{spec.vendor}:", order_ids, "")
    order_mid = pc.binary_join_element_wise(base, _taken(keys.order_digest, take), ":")
    position = pa.array(origin_row + keys.starts[plain], pa.int64())
    # Amounts by the Segment convention (see rows.order_row).
    money = {k: pc.cast(h[k], rows.MONEY) for k in ("total", "subtotal", "shipping", "tax",
                                                    "discount")}  # fmt: skip
    zero = pa.scalar(0, rows.MONEY)
    line_price = pc.fill_null(pc.cast(price, rows.MONEY), zero)
    line_value = pc.multiply(line_price, pc.cast(quantity, pa.decimal128(19, 0)))
    by_order = pa.table({"o": pa.array(line_order), "v": line_value})
    sums = by_order.group_by("o", use_threads=False).aggregate([("v", "sum")]).sort_by("o")
    lines_sum = pc.cast(sums["v_sum"], rows.MONEY)
    discount = pc.fill_null(money["discount"], zero)
    revenue = pc.coalesce(
        pc.subtract(money["subtotal"], discount), pc.subtract(lines_sum, discount)
    )
    revenue = pc.cast(revenue, rows.MONEY)
    total = pc.coalesce(
        money["total"],
        pc.cast(
            pc.add(
                pc.add(revenue, pc.fill_null(money["shipping"], zero)),
                pc.fill_null(money["tax"], zero),
            ),
            rows.MONEY,
        ),
    )
    order_currency = pc.fill_null(currency, base_currency)
    orders = pa.table(
        {
            "order_id": order_ids,
            "customer_id": customer_id,
            "user_id": user_id,
            "anonymous_id": anonymous_id,
            "message_id": order_mid,
            "placed_at": placed,
            "currency": order_currency,
            "total": pc.cast(total, rows.MONEY),
            "subtotal": money["subtotal"],
            "revenue": revenue,
            "shipping": money["shipping"],
            "tax": money["tax"],
            "discount": money["discount"],
            "coupon": _none_if_empty(h["coupon"]),
            "line_count": pa.array(counts.astype(np.int32), pa.int32()),
            "position": position,
        }
    )
    line_no = np.arange(len(line_order)) - np.repeat(offsets.to_numpy()[:-1], counts)
    of_line = pa.array(np.repeat(np.arange(m), counts))  # each line's order, among the plain
    lines = pa.table(
        {
            "order_id": pc.take(order_ids, of_line),
            "line_no": pa.array((line_no + 1).astype(np.int32)),
            "product_id": product_id,
            "sku": _none_if_empty(lines_src["line_sku"]),
            "name": _none_if_empty(lines_src["line_name"]),
            "category": pa.nulls(len(line_order), pa.string()),
            "brand": pa.nulls(len(line_order), pa.string()),
            "variant": _none_if_empty(lines_src["line_variant"]),
            "price": line_price,
            "raw_price": price,
            "quantity": pc.cast(quantity, pa.int32()),
            "currency": pc.take(order_currency, of_line),
            "placed_at": pc.take(placed, of_line),
            "props_currency": pc.take(currency, of_line),
        }
    )
    identify, repeated = _identify_events(
        spec, keys, take, placed, user_id, anonymous_id, customer_id, position
    )
    events = [
        _order_events(
            order_mid, placed, props, order_ids, user_id, anonymous_id, customer_id, position
        ),
        identify,
    ]
    for channel in ("email", "sms"):
        accepted = _flag(h[f"accepts_{channel}"])
        events.append(
            _consent_events(
                spec, channel, accepted, base, placed, user_id, anonymous_id, customer_id, position
            )
        )
    refund_events, refunds = _refund_events(
        spec, h, base, placed, user_id, anonymous_id, customer_id, position
    )
    events.extend(refund_events)
    batch = ColumnarBatch(
        events=pa.concat_tables(events), orders=orders, lines=lines, refunds=refunds
    )
    return batch, repeated


_ZERO_REFUNDS = pa.array(["0", "0.0", "0.00"], pa.string())


def _refund_events(
    spec: OrderSpec, h: pa.Table, base: Col, placed: Col, user_id: Col, anonymous_id: Col,
    customer_id: Col, position: Col,
) -> tuple[list[pa.Table], pa.Table]:  # fmt: skip
    """Order Refunded and Order Cancelled of the orders ``h`` (as ``OrderBuilder._after``).

    A refund's amount is the refunded column, else the total of a 'refunded' order, else
    unknown (the rest of the order); a cancellation refunds whatever is left. Both happen at
    the cancellation time if there is one, else when the order was placed.
    """
    category = categories(spec, h["status"])
    # No refunded column (Amazon, some mappings) is null: no refund, as on the message path.
    refunded_text = pc.fill_null(h["refunded"], "")
    nonzero = pc.and_(
        pc.not_equal(refunded_text, ""), pc.invert(pc.is_in(refunded_text, _ZERO_REFUNDS))
    )
    has_refund = pc.or_(nonzero, pc.is_in(category, pa.array(["refunded", "partially_refunded"])))
    cancelled = pc.or_(pc.is_valid(h["cancelled_at"]), pc.equal(category, "cancelled"))
    # Only the orders with a refund or a cancellation (a few percent) go further.
    wanted = pc.or_(has_refund, cancelled).to_numpy(zero_copy_only=False)
    pick = pa.array(np.flatnonzero(np.asarray(wanted, dtype=bool)), pa.int64())
    h, base, placed, position = (
        h.take(pick),
        base.take(pick),
        placed.take(pick),
        position.take(pick),
    )
    user_id, anonymous_id = user_id.take(pick), anonymous_id.take(pick)
    customer_id = customer_id.take(pick)
    category, nonzero = category.take(pick), nonzero.take(pick)
    has_refund, cancelled = has_refund.take(pick), cancelled.take(pick)
    refunded = h["refunded"]
    full = pc.equal(category, "refunded")
    null = pa.scalar(None, pa.string())
    amount = pc.if_else(nonzero, refunded, pc.if_else(full, h["total"], null))
    currency = _none_if_empty(h["currency"])
    when = pc.coalesce(
        pc.strptime(h["cancelled_at"], format="%Y-%m-%dT%H:%M:%SZ", unit="us", error_is_null=True),
        placed,
    )
    # The message id's digest is that of orjson.dumps([amount, currency]) (orders._digest).
    quoted = [pc.fill_null(pc.binary_join_element_wise('"', v, '"', ""), "null")
              for v in (amount, currency)]  # fmt: skip
    digest_text = pc.binary_join_element_wise("[", quoted[0], ",", quoted[1], "]", "")
    digests = pa.array(
        [hashlib.sha256(t.encode()).hexdigest()[:32] for t in digest_text.to_pylist()],
        pa.string(),
    )
    order_ids = h["order_id"]
    refund_mid = pc.binary_join_element_wise(base, "refund", digests, ":")
    cancel_mid = pc.binary_join_element_wise(base, "cancelled", ":")
    refund_props = _object(
        _member("order_id", order_ids), _member("total", amount), _member("currency", currency)
    )
    cancel_props = _object(_member("order_id", order_ids))
    tables, refunds = [], []
    for seq, (event, mid, props, keep, value) in enumerate(
        (
            ("Order Refunded", refund_mid, refund_props, has_refund, amount),
            ("Order Cancelled", cancel_mid, cancel_props, cancelled, null),
        )
    ):
        cols = _base_columns(
            mid, "refund", event, when, user_id, anonymous_id, customer_id, position
        )
        m = len(mid)
        event_cols = cols | {"properties": props, "order_id": order_ids}
        tables.append(_complete(event_cols, m).filter(keep))
        refunds.append(
            pa.table(
                {
                    "message_id": mid,
                    "order_id": order_ids,
                    "amount": pc.cast(
                        value
                        if isinstance(value, (pa.Array, pa.ChunkedArray))
                        else pa.nulls(m, pa.string()),
                        rows.MONEY,
                    ),
                    "currency": currency,
                    "refunded_at": when,
                    "position": position,
                    "seq": pa.array(np.full(m, seq, dtype=np.int32)),
                }
            ).filter(keep)
        )
    return tables, pa.concat_tables(refunds)


def _flag(values: Col) -> Col:
    from siyu.collect.importers.orders import YES
    from siyu.collect.importers.prep import flag

    return flag(values, YES)


def _customer_ids(workspace_id: str, user_id: pa.Array, anonymous_id: pa.Array) -> pa.Array:
    """rows.customer_key of each sender, computed once per distinct sender."""
    key = pc.coalesce(
        pc.binary_join_element_wise("u", user_id, "\x00"),
        pc.binary_join_element_wise("a", anonymous_id, "\x00"),
    )
    distinct = pc.unique(key)
    ids = [
        rows.customer_key(workspace_id, k[2:], None) if k[0] == "u"
        else rows.customer_key(workspace_id, None, k[2:])
        for k in distinct.to_pylist()
    ]  # fmt: skip
    return pc.take(pa.array(ids, pa.string()), pc.index_in(key, value_set=distinct))


def _base_columns(
    message_id: Col, kind: str, event: str | None, placed: Col, user_id: Col,
    anonymous_id: Col, customer_id: Col, position: Col,
) -> dict[str, Any]:  # fmt: skip
    m = len(message_id)
    return {
        "message_id": message_id,
        "type": _const("identify" if kind == "identify" else "track", m),
        "event": _const(event, m),
        "user_id": user_id,
        "anonymous_id": anonymous_id,
        "customer_id": customer_id,
        "timestamp": placed,
        "position": position,
        "kind": _const(kind, m),
    }


def _const(value: str | None, m: int) -> pa.Array:
    """A text column of one value (without a Python list of m items)."""
    return pa.repeat(pa.scalar(value, pa.string()), m)


def _order_events(
    message_id: Col, placed: Col, props: Col, order_ids: Col, user_id: Col, anonymous_id: Col,
    customer_id: Col, position: Col,
) -> pa.Table:  # fmt: skip
    cols = _base_columns(
        message_id, "order", "Order Completed", placed, user_id, anonymous_id, customer_id, position
    )
    m = len(message_id)
    return _complete(cols | {"properties": props, "order_id": order_ids}, m)


def _identify_events(
    spec: OrderSpec, keys: OrderKeys, take: pa.Array, placed: Col, user_id: Col,
    anonymous_id: Col, customer_id: Col, position: Col,
) -> tuple[pa.Table, int]:  # fmt: skip
    """The identify messages of the orders ``take`` with any trait, each message once.

    A repeat customer sends the same identify message (same id) with each order; the store
    keeps the first of a batch and counts the others as duplicates. They are dropped here
    before any column is built for them, and their number is returned for the summary.
    """
    traits = _taken(keys.traits, take)
    has = pc.is_valid(traits["email"])
    for k in _TRAITS[1:]:
        has = pc.or_(has, pc.is_valid(traits[k]))
    sending = np.flatnonzero(np.asarray(has.to_numpy(zero_copy_only=False), dtype=bool))
    codes = keys.identify_code[np.asarray(take.to_numpy(), dtype=np.int64)[sending]]
    _, first = np.unique(codes, return_index=True)
    keep = pa.array(sending[np.sort(first)], pa.int64())
    traits = _taken(traits, keep)
    digest = _taken(_taken(keys.identify_digest, take), keep)
    mid = pc.binary_join_element_wise(f"import:{spec.vendor}:identify:", digest, "")
    doc = _object(*(_member(k, traits[k]) for k in _TRAITS))
    cols = _base_columns(
        mid, "identify", None, _taken(placed, keep), _taken(user_id, keep),
        _taken(anonymous_id, keep), _taken(customer_id, keep), _taken(position, keep),
    )  # fmt: skip
    cols["traits"] = doc
    for k in _TRAITS:
        cols["t_" + k] = traits[k]
    return _complete(cols, len(mid)), len(sending) - len(keep)


def _consent_events(
    spec: OrderSpec, channel: str, accepted: Col, base: Col, placed: Col, user_id: Col,
    anonymous_id: Col, customer_id: Col, position: Col,
) -> pa.Table:  # fmt: skip
    # Only the orders with a value in the column send one: they are picked first.
    keep = pa.array(np.flatnonzero(np.asarray(pc.is_valid(accepted).to_numpy(
        zero_copy_only=False), dtype=bool)), pa.int64())  # fmt: skip
    accepted = _taken(accepted, keep)
    status = pc.if_else(accepted, "granted", "denied")
    mid = pc.binary_join_element_wise(_taken(base, keep), f"consent:{channel}", status, ":")
    evidence = f"{spec.name} export: accepts {channel} marketing column"

    def doc(value: str) -> str:
        return orjson.dumps({"purpose": "marketing", "channel": channel, "status": value,
                             "evidence": evidence}).decode()  # fmt: skip

    props = pc.if_else(accepted, doc("granted"), doc("denied"))
    cols = _base_columns(
        mid, "consent", "Consent Updated", _taken(placed, keep), _taken(user_id, keep),
        _taken(anonymous_id, keep), _taken(customer_id, keep), _taken(position, keep),
    )  # fmt: skip
    m = len(mid)
    cols |= {
        "properties": props,
        "c_channel": _const(channel, m),
        "c_status": status,
        "c_evidence": _const(f'"{evidence}"', m),
    }
    return _complete(cols, m)


_EXTRA: dict[str, pa.DataType] = {
    "properties": pa.string(),
    "traits": pa.string(),
    "order_id": pa.string(),
    **{"t_" + k: pa.string() for k in _TRAITS},
    "c_channel": pa.string(),
    "c_status": pa.string(),
    "c_evidence": pa.string(),
}


_ORDER = ("message_id", "type", "event", "user_id", "anonymous_id", "customer_id", "timestamp",
          "position", "kind", *_EXTRA)  # fmt: skip


def _complete(cols: dict[str, Any], m: int) -> pa.Table:
    """Every column of the batch's event table, nulls where this kind of event has none."""
    for name, dtype in _EXTRA.items():
        cols.setdefault(name, pa.nulls(m, dtype))
    return pa.table({k: cols[k] for k in _ORDER})
