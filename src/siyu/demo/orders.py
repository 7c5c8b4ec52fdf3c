"""Purchases: a heterogeneous buy-till-you-die process with seasonal timing and real baskets.

Each buyer orders first at acquisition, then repeats as a Poisson process with a personal rate
(lambda ~ Gamma(r=0.6, alpha=40 days)) until an exponential lifetime ends (dropout rate ~ Gamma),
the Pareto/NBD story the CLV models assume, so their fits on the demo have a known truth. Repeat
days are drawn from the market's seasonal intensity, which makes Black Friday, Ramadan and 11.11
visible. Baskets lean to a person's favourite categories and add complements (yoga mat -> yoga
wear). All money is integer minor units, so the order arithmetic holds exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from siyu.demo import ids
from siyu.demo.calendar import DAY_MS, PROMOS, Window, cumulative, day_of, local_time_ms
from siyu.demo.calendar import seasonality as seasonality_table
from siyu.demo.catalogue import Catalogue
from siyu.demo.markets import AMAZON, MARKET_CODES, MARKETS, PROFILES, SHOPIFY, TIKTOK
from siyu.demo.people import People

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

MAX_ORDERS = 60  # per person; order ids use 64 slots per person
# Coupons: the calendar's promotions, then the brand's everyday codes.
COUPONS: tuple[tuple[str, float], ...] = (
    *PROMOS[1:],
    ("WELCOME10", 0.10),
    ("TIKTOK10", 0.10),
    ("VIP15", 0.15),
)
_WELCOME, _TIKTOK10, _VIP = len(PROMOS) - 1, len(PROMOS), len(PROMOS) + 1
_AMAZON_PREFIX = {"US": "112", "GB": "202", "DE": "302", "FR": "403", "ES": "405", "BR": "701"}
_AMAZON_PREFIX |= {"MX": "702", "SA": "408"}
_SOURCE_WEIGHT = np.array([1.0, 0.8, 0.7])  # shopify, amazon, tiktok_shop
_SHIPPING = np.array([p.shipping for p in PROFILES], dtype=np.int64)


@dataclass
class Orders:
    """Orders of one block (sorted by person, then time) with their lines and refunds."""

    person: Ints
    ts: Ints
    source: Ints
    seq: Ints  # order number of the person, 0 = first
    subtotal: Ints
    discount: Ints
    shipping: Ints
    tax: Ints
    total: Ints
    coupon: Ints  # index into COUPONS or -1
    line_start: Ints  # lines of order o: line_start[o] : line_start[o + 1]
    line_product: Ints
    line_qty: Ints
    line_price: Ints
    refund_order: Ints
    refund_ts: Ints
    refund_amount: Ints
    order_id: list[str]

    def __len__(self) -> int:
        return len(self.person)


def _order_times(rng: np.random.Generator, window: Window, p: People) -> tuple[Ints, Ints]:
    """(person, ts) of every order, sorted; extends buyers' t_end to their last order."""
    weights, _ = seasonality_table(window.start, window.days)
    cum = cumulative(weights)
    stride = window.days + 1
    flat = (cum + (np.arange(len(cum)) * 2.0 * stride)[:, None]).ravel()
    buyers = np.flatnonzero(p.buyer)
    m = p.market[buyers]
    d0, dend = day_of(window, p.t0[buyers]), day_of(window, p.t_end[buyers])
    lo = cum[m, np.minimum(d0 + 1, window.days)]
    mass = np.maximum(cum[m, dend + 1] - lo, 0.0)
    repeats = np.minimum(rng.poisson(p.lam[buyers] * mass), MAX_ORDERS - 1)
    who = np.repeat(np.arange(len(buyers)), repeats)
    u = lo[who] + rng.random(len(who)) * mass[who] + m[who] * 2.0 * stride
    day = np.searchsorted(flat, u, side="right") - 1 - m[who] * stride
    day = np.clip(day, 0, window.days - 1).astype(np.int64)
    ts = local_time_ms(window, day, p.utc_offset[buyers[who]], rng)
    ts = np.maximum(ts, p.t0[buyers[who]] + 60_000)
    person = np.concatenate([buyers, buyers[who]])
    when = np.concatenate([p.t0[buyers], np.minimum(ts, window.end_ms - 1)])
    order = np.lexsort((when, person))
    person, when = person[order], when[order]
    last = np.zeros(len(p), dtype=np.int64)
    np.maximum.at(last, person, when)
    p.t_end = np.maximum(p.t_end, last)
    return person.astype(np.int64), when.astype(np.int64)


def _baskets(
    rng: np.random.Generator, p: People, cat: Catalogue, person: Ints
) -> tuple[Ints, Ints, Ints]:
    """(order of line, product, quantity), one row per distinct product in an order."""
    n = len(person)
    items = 1 + np.minimum(rng.poisson(0.55 * p.spend[person]), 4)
    line_order = np.repeat(np.arange(n), items)
    u = rng.random(len(line_order))
    favourite = p.fav[person[line_order]]
    category = np.where(
        u < 0.6,
        favourite[:, 0],
        np.where(u < 0.85, favourite[:, 1], rng.integers(0, 6, len(line_order))),
    )
    product = cat.pick(category.astype(np.int64), rng.random(len(line_order)))
    qty = 1 + np.searchsorted([0.85, 0.97], rng.random(len(line_order)), side="right")
    first = np.r_[0, np.cumsum(items)[:-1]]
    partner = cat.complement[product[first]]
    add = (partner >= 0) & (rng.random(n) < 0.35)
    line_order = np.concatenate([line_order, np.flatnonzero(add)])
    product = np.concatenate([product, partner[add]])
    qty = np.concatenate([qty, np.ones(int(add.sum()), dtype=np.int64)])
    key, inverse = np.unique(line_order * len(cat) + product, return_inverse=True)
    merged_qty = np.bincount(inverse, weights=qty).astype(np.int64)
    return (key // len(cat)).astype(np.int64), (key % len(cat)).astype(np.int64), merged_qty


def make_orders(
    rng: np.random.Generator, window: Window, p: People, cat: Catalogue, seed: int
) -> Orders:
    """Draw every order, basket, coupon, fee, tax and refund of one block."""
    person, ts = _order_times(rng, window, p)
    n = len(person)
    starts = np.r_[0, np.flatnonzero(np.diff(person)) + 1]
    seq = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    member = p.member[person][:, [SHOPIFY, AMAZON, TIKTOK]]
    cum_w = np.cumsum(member * _SOURCE_WEIGHT, axis=1)
    pick = (rng.random(n)[:, None] * cum_w[:, -1:] >= cum_w).sum(axis=1)
    source = np.array([SHOPIFY, AMAZON, TIKTOK])[np.minimum(pick, 2)]
    line_order, product, qty = _baskets(rng, p, cat, person)
    market = p.market[person]
    price = cat.local_price[market[line_order], product]
    subtotal = np.bincount(line_order, weights=price * qty, minlength=n).astype(np.int64)
    _, promos = seasonality_table(window.start, window.days)
    promo = promos[market, day_of(window, ts)]
    u = rng.random(n)
    coupon = np.full(n, -1, dtype=np.int64)
    coupon = np.where((promo > 0) & (source != AMAZON) & (u < 0.6), promo - 1, coupon)
    none = coupon < 0
    coupon = np.where(none & (seq == 0) & (source == SHOPIFY) & (u > 0.7), _WELCOME, coupon)
    coupon = np.where(none & (source == TIKTOK) & (u > 0.7), _TIKTOK10, coupon)
    coupon = np.where(none & (seq > 0) & (source == SHOPIFY) & (u < 0.06), _VIP, coupon)
    rate = np.array([c[1] for c in COUPONS])[np.maximum(coupon, 0)]
    discount = np.where(coupon >= 0, np.round(subtotal * rate), 0).astype(np.int64)
    revenue = subtotal - discount
    fee, free_from = _SHIPPING[market, 0], _SHIPPING[market, 1]
    shipping = np.where(revenue >= free_from, 0, fee)
    shipping = np.where(source == AMAZON, 0, np.where(source == TIKTOK, shipping // 2, shipping))
    tax = np.round(revenue * p.tax_rate[person]).astype(np.int64)
    total = revenue + shipping + tax
    refunded = rng.random(n) < 0.04
    partial = rng.uniform(0.2, 0.7, n)
    amount = np.where(rng.random(n) < 0.3, np.round(total * partial), total).astype(np.int64)
    refund_ts = ts + (rng.uniform(2, 30, n) * DAY_MS).astype(np.int64)
    refunded &= (refund_ts < window.end_ms) & (amount > 0)
    line_start = np.searchsorted(line_order, np.arange(n + 1)).astype(np.int64)
    return Orders(
        person=person,
        ts=ts,
        source=source.astype(np.int64),
        seq=seq.astype(np.int64),
        subtotal=subtotal,
        discount=discount,
        shipping=shipping.astype(np.int64),
        tax=tax,
        total=total.astype(np.int64),
        coupon=coupon,
        line_start=line_start,
        line_product=product,
        line_qty=qty,
        line_price=price.astype(np.int64),
        refund_order=np.flatnonzero(refunded).astype(np.int64),
        refund_ts=refund_ts[refunded],
        refund_amount=amount[refunded],
        order_id=_order_ids(p, person, seq, source, seed),
    )


def _order_ids(p: People, person: Ints, seq: Ints, source: Ints, seed: int) -> list[str]:
    out: list[str] = []
    for i, k, s in zip(person.tolist(), seq.tolist(), source.tolist(), strict=True):
        pid = int(p.pid[i])
        if s == AMAZON:
            prefix = _AMAZON_PREFIX.get(MARKET_CODES[p.market[i]], "171")
            out.append(ids.amazon_order_id(pid, k, seed, prefix))
        elif s == TIKTOK:
            out.append(ids.tiktok_order_id(pid, k, seed))
        else:
            out.append(ids.shopify_order_id(pid, k, seed))
    return out


def currency_of(p: People, i: int) -> str:
    return MARKETS[int(p.market[i])].currency
