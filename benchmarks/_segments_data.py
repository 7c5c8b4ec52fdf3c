"""Benchmark data for segments: a demo-shaped brand built directly in bulk (NumPy -> Arrow).

Loading 1M customers / 20M events through the ingestion pipeline takes far longer than the
segments computation being measured, so the benchmark writes the maintained tables the
segments engine reads (customers, events, orders, order_lines, consents) straight from NumPy
with the demo brand's shape: twelve markets, two years of history, about 20 events per
customer (product views with a category, carts, checkouts, orders, e-mail, WhatsApp and
community events, consent changes), about 2.5 orders per buyer with 1-3 lines, coupons on a
quarter of them and a few refunds. Deterministic for a seed. The DuckDB file is cached.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

AS_OF = datetime(2025, 6, 30)
MARKETS = (
    ("US", "en-US", "America/New_York", "USD", 1.0),
    ("GB", "en-GB", "Europe/London", "GBP", 1.27),
    ("DE", "de-DE", "Europe/Berlin", "EUR", 1.08),
    ("FR", "fr-FR", "Europe/Paris", "EUR", 1.08),
    ("ID", "id-ID", "Asia/Jakarta", "IDR", 0.000061),
    ("TH", "th-TH", "Asia/Bangkok", "THB", 0.027),
    ("MY", "ms-MY", "Asia/Kuala_Lumpur", "MYR", 0.21),
    ("PH", "en-PH", "Asia/Manila", "PHP", 0.017),
    ("VN", "vi-VN", "Asia/Ho_Chi_Minh", "VND", 0.000039),
    ("BR", "pt-BR", "America/Sao_Paulo", "BRL", 0.18),
    ("MX", "es-MX", "America/Mexico_City", "MXN", 0.055),
    ("SA", "ar-SA", "Asia/Riyadh", "SAR", 0.27),
)
CATEGORIES = ("baby", "beauty", "3C", "home", "apparel", "outdoor")
# (event name or page, type, share of events)
EVENTS = (
    ("Product Viewed", "track", 0.40),
    (None, "page", 0.12),
    ("Product Added", "track", 0.09),
    ("Checkout Started", "track", 0.04),
    ("Order Completed", "track", 0.05),
    ("Email Opened", "track", 0.10),
    ("Email Clicked", "track", 0.04),
    ("Message Received", "track", 0.05),
    ("Community Message Posted", "track", 0.05),
    ("Community Joined", "track", 0.02),
    ("Referral Link Shared", "track", 0.02),
    ("Coupon Applied", "track", 0.02),
)
DAY_US = 86_400_000_000
HISTORY_DAYS = 730


def cache_dir() -> Path:
    root = Path(os.environ.get("SIYU_BENCH_CACHE", Path.home() / ".cache" / "siyu-bench"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def _ts(us: np.ndarray) -> pa.Array:
    return pa.array(us.astype("datetime64[us]"), pa.timestamp("us"))


def _ids(prefix: str, numbers: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(numbers), pa.string()), "")


def build_chunk(ws: str, seed: int, lo: int, hi: int) -> dict[str, pa.Table]:
    """Tables for customers ``lo..hi-1`` (deterministic per seed and range)."""
    rng = np.random.default_rng([seed, lo])
    n = hi - lo
    as_of_us = int((AS_OF - datetime(1970, 1, 1)) / timedelta(microseconds=1))
    start_us = as_of_us - HISTORY_DAYS * DAY_US
    ids = np.arange(lo, hi)
    market = rng.integers(0, len(MARKETS), n)
    first_seen = start_us + (rng.random(n) ** 0.8 * HISTORY_DAYS * DAY_US).astype(np.int64)
    # Events: about 20 per customer (heavy tail), spread between first_seen and as_of with a
    # lean towards the recent past for active customers.
    counts = np.minimum(rng.geometric(1 / 20, n), 400)
    person = np.repeat(np.arange(n), counts)
    m = len(person)
    span = (as_of_us - first_seen)[person]
    ts = first_seen[person] + (rng.random(m) ** 0.7 * span).astype(np.int64)
    churned = rng.random(n) < 0.25  # a quarter stops half-way: churn tiers and lapsed RFM
    ts = np.where(churned[person], first_seen[person] + (ts - first_seen[person]) // 3, ts)
    shares = np.array([s for _, _, s in EVENTS])
    kind = rng.choice(len(EVENTS), m, p=shares / shares.sum())
    names = pa.array([e for e, _, _ in EVENTS], pa.string())
    types = pa.array([t for _, t, _ in EVENTS], pa.string())
    kind_arr = pa.array(kind.astype(np.int32))
    category = rng.integers(0, len(CATEGORIES), m)
    customer_ids = _ids("c", ids)
    cust_of_event = customer_ids.take(pa.array(person))
    # properties: the category of product events; orders get their id and total.
    order_rows = np.flatnonzero(kind == 4)
    n_orders = len(order_rows)
    order_no = np.arange(n_orders) + lo * 10
    order_ids = _ids("o", order_no)
    fx = np.array([f for *_, f in MARKETS])
    usd_total = np.round(rng.lognormal(3.8, 0.7, n_orders), 2)
    local_total = np.round(usd_total / fx[market[person[order_rows]]], 2)
    cat_json = pa.array([json.dumps({"category": c}) for c in CATEGORIES], pa.string())
    props = cat_json.take(pa.array(category.astype(np.int32)))
    product_event = (kind == 0) | (kind == 2)
    props = pc.if_else(pa.array(product_event), props, pa.scalar("{}", pa.string()))
    order_props = pc.binary_join_element_wise(
        '{"order_id": "',
        order_ids,
        '", "total": ',
        pc.cast(pa.array(local_total), pa.string()),
        "}",
        "",
    )
    props = pc.replace_with_mask(props, pa.array(kind == 4), order_props)
    message_ids = _ids(f"m{lo}_", np.arange(m))
    events = pa.table(
        {
            "workspace_id": pa.array([ws] * m, pa.string()),
            "message_id": message_ids,
            "type": types.take(kind_arr),
            "event": names.take(kind_arr),
            "user_id": _ids("u", ids).take(pa.array(person)),
            "customer_id": cust_of_event,
            "timestamp": _ts(ts),
            "received_at": _ts(ts),
            "properties": props,
        }
    )
    # Orders from the Order Completed events.
    o_person = person[order_rows]
    coupon = rng.random(n_orders) < 0.25
    refunded = rng.random(n_orders) < 0.03
    line_count = rng.integers(1, 4, n_orders)
    currencies = pa.array([c for *_, c, _ in MARKETS], pa.string())
    o_market = pa.array(market[o_person].astype(np.int32))
    orders = pa.table(
        {
            "workspace_id": pa.array([ws] * n_orders, pa.string()),
            "order_id": order_ids,
            "customer_id": customer_ids.take(pa.array(o_person)),
            "user_id": _ids("u", ids).take(pa.array(o_person)),
            "message_id": message_ids.take(pa.array(order_rows)),
            "placed_at": _ts(ts[order_rows]),
            "currency": currencies.take(o_market),
            "total": pa.array(local_total).cast(pa.decimal128(18, 4)),
            "coupon": pc.if_else(
                pa.array(coupon), pa.scalar("SAVE10"), pa.scalar(None, pa.string())
            ),
            "line_count": pa.array(line_count.astype(np.int32)),
            "base_currency": pa.array(["USD"] * n_orders, pa.string()),
            "fx_rate": pa.array(fx[market[o_person]]).cast(pa.decimal128(18, 10)),
            "total_base": pa.array(usd_total).cast(pa.decimal128(18, 4)),
            "refunded": pa.array(np.where(refunded, local_total, 0.0)).cast(pa.decimal128(18, 4)),
            "refunded_base": pa.array(np.where(refunded, usd_total, 0.0)).cast(
                pa.decimal128(18, 4)
            ),
            "status": pc.if_else(pa.array(refunded), pa.scalar("refunded"), pa.scalar("completed")),
            "updated_at": _ts(ts[order_rows]),
        }
    )
    line_order = np.repeat(np.arange(n_orders), line_count)
    k = len(line_order)
    line_no = np.arange(k) - np.repeat(np.cumsum(line_count) - line_count, line_count) + 1
    line_cat = rng.integers(0, len(CATEGORIES), k)
    cats = pa.array(list(CATEGORIES), pa.string())
    order_lines = pa.table(
        {
            "workspace_id": pa.array([ws] * k, pa.string()),
            "order_id": order_ids.take(pa.array(line_order)),
            "line_no": pa.array(line_no.astype(np.int32)),
            "category": cats.take(pa.array(line_cat.astype(np.int32))),
            "price": pa.array(np.round(local_total[line_order] / line_count[line_order], 2)).cast(
                pa.decimal128(18, 4)
            ),
            "quantity": pa.array(np.ones(k, np.int32)),
            "currency": currencies.take(pa.array(market[o_person][line_order].astype(np.int32))),
        }
    )
    # Consents: 0-3 decisions per customer, latest wins.
    c_count = rng.integers(0, 4, n)
    c_person = np.repeat(np.arange(n), c_count)
    c = len(c_person)
    channels = pa.array(["email", "sms", "whatsapp", "all"], pa.string())
    statuses = pa.array(["granted", "granted", "granted", "withdrawn"], pa.string())
    c_ts = first_seen[c_person] + (rng.random(c) * (as_of_us - first_seen[c_person])).astype(
        np.int64
    )
    consents = pa.table(
        {
            "workspace_id": pa.array([ws] * c, pa.string()),
            "consent_id": _ids(f"k{lo}_", np.arange(c)),
            "customer_id": customer_ids.take(pa.array(c_person)),
            "purpose": pa.array(["marketing"] * c, pa.string()),
            "channel": channels.take(pa.array(rng.choice(4, c, p=[0.45, 0.15, 0.35, 0.05]))),
            "status": statuses.take(pa.array(rng.integers(0, 4, c))),
            "timestamp": _ts(c_ts),
        }
    )
    codes = pa.array([m_[0] for m_ in MARKETS], pa.string())
    langs = pa.array([m_[1] for m_ in MARKETS], pa.string())
    zones = pa.array([m_[2] for m_ in MARKETS], pa.string())
    mk = pa.array(market.astype(np.int32))
    born = (
        np.datetime64("1955-01-01") + rng.integers(0, 50 * 365, n).astype("timedelta64[D]")
    ).astype("datetime64[D]")
    has_birthday = rng.random(n) < 0.6
    last_seen = np.maximum.reduceat(ts, np.concatenate([[0], np.cumsum(counts)[:-1]]))
    customers = pa.table(
        {
            "workspace_id": pa.array([ws] * n, pa.string()),
            "customer_id": customer_ids,
            "user_id": _ids("u", ids),
            "email": pc.if_else(
                pa.array(rng.random(n) < 0.7),
                pc.binary_join_element_wise(_ids("u", ids), "@mail.test", ""),
                pa.scalar(None, pa.string()),
            ),
            "phone": pc.if_else(
                pa.array(rng.random(n) < 0.6),
                _ids("+628", ids + 100_000_000),
                pa.scalar(None, pa.string()),
            ),
            "country": codes.take(mk),
            "language": langs.take(mk),
            "timezone": zones.take(mk),
            "currency": currencies.take(mk),
            "birthday": pc.if_else(
                pa.array(has_birthday), pa.array(born, pa.date32()), pa.scalar(None, pa.date32())
            ),
            "first_seen_at": _ts(first_seen),
            "last_seen_at": _ts(np.maximum(last_seen, first_seen)),
            "updated_at": _ts(np.full(n, as_of_us)),
        }
    )
    return {
        "customers": customers,
        "events": events,
        "orders": orders,
        "order_lines": order_lines,
        "consents": consents,
    }


def build_database(customers: int, seed: int = 5, chunk: int = 100_000) -> Path:
    """The cached DuckDB file with ``customers`` customers (built once, chunk by chunk)."""
    from siyu.config import load_settings
    from siyu.runtime import Runtime
    from siyu.store.bulk import append
    from siyu.store.catalog import load_all_tables

    path = cache_dir() / f"segments-{customers}-{seed}.duckdb"
    os.environ.setdefault("SIYU_ENV", "test")
    if path.exists():
        # A cached file may predate a migration: bring its schema up to this siyu's (cheap when
        # it is current; the data tables the benchmark reads are kept).
        with Runtime(load_settings(database_url=f"duckdb:///{path}")) as rt:
            rt.init()
        return path
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    metadata = load_all_tables()
    with Runtime(load_settings(database_url=f"duckdb:///{partial}")) as rt:
        rt.init()
        ws = rt.workspace().workspace_id
        for lo in range(0, customers, chunk):
            tables = build_chunk(ws, seed, lo, min(customers, lo + chunk))
            with rt.db.engine.begin() as conn:
                for name, data in tables.items():
                    append(conn, metadata.tables[name], data)
            print(f"  built {min(customers, lo + chunk):,} of {customers:,} customers", flush=True)
    partial.rename(path)
    return path
