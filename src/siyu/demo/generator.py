"""Streaming the demo brand: blocks of people -> Segment messages per source, and the truth.

People are generated in fixed blocks of ``BLOCK`` from their own random streams
(``SeedSequence(seed, spawn_key=(block,))``), so the output for a person never depends on the
chunk size or on how many customers were asked for, and memory stays at one chunk however large
the run. A chunk that starts or ends inside a block generates that block and keeps its share.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from siyu.demo.activity import make_events
from siyu.demo.calendar import Window
from siyu.demo.catalogue import catalogue
from siyu.demo.consents import Consents, make_consents
from siyu.demo.events import ALIAS, IDENTIFY, TABLET, EventTable
from siyu.demo.markets import AMAZON, EMAIL, INSTAGRAM, SHOPIFY, SOURCE_NAMES, TIKTOK, WEB
from siyu.demo.orders import Orders, make_orders
from siyu.demo.people import BLOCK, People, make_people
from siyu.demo.records import Writer
from siyu.errors import InvalidInput

Ints = npt.NDArray[np.int64]

# Identifier kind of each source's userId (web events carry the Shopify customer id).
USER_ID_KIND: tuple[str, ...] = (
    "shopify_customer_id",
    "amazon_buyer",
    "tiktok_user_id",
    "whatsapp",
    "instagram",
    "email",
    "shopify_customer_id",
)
TRUTH_SCHEMA = pa.schema(
    [
        ("person_id", pa.string()),
        ("kind", pa.string()),
        ("value", pa.string()),
        ("source", pa.string()),
        ("adversarial", pa.string()),
    ]
)


@dataclass(frozen=True)
class DemoChunk:
    """The messages of one source for one chunk of customers, in time order."""

    source: str
    records: list[dict[str, Any]]


@dataclass
class Block:
    """One block, fully generated; events sorted by (person, time), ``seq`` numbers them."""

    people: People
    orders: Orders
    consents: Consents
    events: EventTable
    seq: Ints
    writer: Writer


def person_id(pid: int) -> str:
    """The truth table's id of a person (global index)."""
    return f"person-{pid}"


def _block(seed: int, block: int, window: Window) -> Block:
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(block,))))
    cat = catalogue()
    p = make_people(rng, block, seed, window)
    o = make_orders(rng, window, p, cat, seed)
    c = make_consents(rng, p)
    events = make_events(rng, window, p, o, c, cat)
    events = events.take(np.lexsort((events.kind, events.ts, events.person)))
    n = len(events)
    starts = np.searchsorted(events.person, np.arange(len(p)))
    seq = (np.arange(n) - starts[events.person]).astype(np.int64)
    return Block(p, o, c, events, seq, Writer(seed, p, o, c, events, seq, cat))


def _validate(customers: int, seed: int, chunk_customers: int) -> None:
    if customers < 0:
        raise InvalidInput(f"customers must be zero or more, got {customers}.", field="customers")
    if seed < 0:
        raise InvalidInput(f"seed must be zero or positive, got {seed}.", field="seed")
    if chunk_customers < 1:
        raise InvalidInput(
            f"chunk_customers must be at least 1, got {chunk_customers}.", field="chunk_customers"
        )


def _window(as_of: dt.date | None) -> Window:
    if as_of is None:
        as_of = dt.datetime.now(dt.UTC).date()
    elif isinstance(as_of, dt.datetime):
        as_of = as_of.date()
    return Window.ending(as_of)


def _chunks(
    customers: int, seed: int, window: Window, chunk_customers: int
) -> Iterator[list[tuple[Block, int, int]]]:
    """For every chunk, its blocks with the local person range [lo, hi) each contributes."""
    cached: tuple[int, Block] | None = None
    for start in range(0, customers, chunk_customers):
        stop = min(start + chunk_customers, customers)
        parts: list[tuple[Block, int, int]] = []
        for b in range(start // BLOCK, (stop - 1) // BLOCK + 1):
            if cached is None or cached[0] != b:
                cached = (b, _block(seed, b, window))
            lo, hi = max(start - b * BLOCK, 0), min(stop - b * BLOCK, BLOCK)
            parts.append((cached[1], lo, hi))
        yield parts


def generate(
    customers: int = 50_000,
    seed: int = 7,
    as_of: dt.date | None = None,
    *,
    chunk_customers: int = 5_000,
) -> Iterator[DemoChunk]:
    """Segment messages of the demo brand, chunk by chunk, one DemoChunk per source and chunk.

    Every timestamp is before midnight UTC starting ``as_of`` (default: today, UTC); the history
    covers the 730 days before it. Same arguments, same output, byte for byte.
    """
    _validate(customers, seed, chunk_customers)
    window = _window(as_of)
    for parts in _chunks(customers, seed, window, chunk_customers):
        yield from _messages(parts)


def truth(
    customers: int,
    seed: int,
    as_of: dt.date | None = None,
    *,
    chunk_customers: int = 5_000,
) -> Iterator[pa.Table]:
    """Who is who: one row per (person, identifier kind, value, source) seen in the events.

    ``adversarial`` names the trap a row belongs to (family_phone, store_tablet,
    recycled_number, typo_email), null otherwise. Chunks match those of :func:`generate`.
    """
    _validate(customers, seed, chunk_customers)
    window = _window(as_of)
    for parts in _chunks(customers, seed, window, chunk_customers):
        yield _truth_table(parts)


def generate_with_truth(
    customers: int = 50_000,
    seed: int = 7,
    as_of: dt.date | None = None,
    *,
    chunk_customers: int = 5_000,
) -> Iterator[tuple[list[DemoChunk], pa.Table]]:
    """:func:`generate` and :func:`truth` in one pass: each chunk's messages and its truth.

    Both are read from the same generated blocks, so a loader that needs both builds every
    block once instead of twice (the block simulation is most of the generator's time).
    """
    _validate(customers, seed, chunk_customers)
    window = _window(as_of)
    for parts in _chunks(customers, seed, window, chunk_customers):
        yield list(_messages(parts)), _truth_table(parts)


def _messages(parts: list[tuple[Block, int, int]]) -> Iterator[DemoChunk]:
    """The chunk's messages, one DemoChunk per source, each in time order."""
    by_source: list[list[tuple[Ints, list[dict[str, Any]]]]] = [[] for _ in SOURCE_NAMES]
    for block, lo, hi in parts:
        ev = block.events
        rows = np.flatnonzero((ev.person >= lo) & (ev.person < hi))
        rows = rows[np.lexsort((block.seq[rows], ev.person[rows], ev.ts[rows], ev.source[rows]))]
        records = block.writer.write(rows)
        bounds = np.searchsorted(ev.source[rows], np.arange(len(SOURCE_NAMES) + 1))
        for s in range(len(SOURCE_NAMES)):
            a, z = int(bounds[s]), int(bounds[s + 1])
            if z > a:
                by_source[s].append((ev.ts[rows[a:z]], records[a:z]))
    for s, pieces in enumerate(by_source):
        if not pieces:
            continue
        if len(pieces) == 1:
            yield DemoChunk(SOURCE_NAMES[s], pieces[0][1])
            continue
        order = np.argsort(np.concatenate([ts for ts, _ in pieces]), kind="stable")
        merged = [rec for _, recs in pieces for rec in recs]
        yield DemoChunk(SOURCE_NAMES[s], [merged[i] for i in order.tolist()])


def _truth_table(parts: list[tuple[Block, int, int]]) -> pa.Table:
    rows: list[tuple[str, str, str, str, str | None]] = []
    for block, lo, hi in parts:
        rows.extend(_truth_rows(block, lo, hi))
    columns = list(zip(*rows, strict=True)) if rows else [()] * 5
    return pa.Table.from_arrays(
        [pa.array(list(col), type=pa.string()) for col in columns], schema=TRUTH_SCHEMA
    )


def _truth_rows(block: Block, lo: int, hi: int) -> list[tuple[str, str, str, str, str | None]]:
    """Identifiers of people [lo, hi) exactly as the block's events carry them."""
    p, ev = block.people, block.events
    keep = (ev.person >= lo) & (ev.person < hi)
    found: dict[tuple[int, int, str, str], str | None] = {}

    def flag_phone(i: int) -> str | None:
        if p.family[i] >= 0:
            return "family_phone"
        return "recycled_number" if p.recycled[i] else None

    users = np.unique((ev.person * 8 + ev.source)[keep & ev.user])
    for key in users.tolist():
        i, s = divmod(key, 8)
        kind = USER_ID_KIND[s]
        value = block.writer.user_ids[i][s]
        flag = flag_phone(i) if kind == "whatsapp" else None
        if s == EMAIL and p.typo_source[i] == EMAIL:
            flag = "typo_email"
        found.setdefault((i, s, kind, value), flag)
    alias = keep & (ev.kind == ALIAS)
    for key in np.unique((ev.person * 64 + ev.source * 8 + ev.ref)[alias]).tolist():
        i, rest = divmod(key, 64)
        source, s = divmod(rest, 8)
        value = (
            p.amazon_id[i] if s == AMAZON else p.tiktok_id[i] if s == TIKTOK else p.instagram_id[i]
        )
        found.setdefault((i, source, USER_ID_KIND[s], value), None)
        if source == WEB and s != INSTAGRAM and not p.member[i, SHOPIFY]:
            # The warranty registration form (records.Writer._alias) asks e-mail and phone.
            typo = "typo_email" if p.typo_source[i] == WEB else None
            found.setdefault((i, WEB, "email", p.email_on(i, WEB)), typo)
            found.setdefault((i, WEB, "phone", "+" + p.phone_digits[i]), flag_phone(i))
    web = keep & (ev.source == WEB)
    for key in np.unique(ev.person[web] * 4 + ev.device[web]).tolist():
        i, d = divmod(key, 4)
        value = p.tablet_id if d == TABLET else p.anonymous_ids[i][d]
        flag = "store_tablet" if d == TABLET else None
        found.setdefault((i, WEB, "anonymous_id", value), flag)
    ident = keep & (ev.kind == IDENTIFY)
    for key in np.unique((ev.person * 16 + ev.source * 2 + ev.user)[ident]).tolist():
        i, rest = divmod(key, 16)
        s, logged_in = divmod(rest, 2)
        email = p.identify_email(i, s, bool(logged_in))
        if email is not None:
            flag = "typo_email" if p.typo_source[i] == s else None
            found.setdefault((i, s, "email", email), flag)
        phone = p.identify_phone(i, s)
        if phone is not None:
            found.setdefault((i, s, "phone", phone), flag_phone(i))
    pid = p.pid
    return [
        (person_id(int(pid[i])), kind, value, SOURCE_NAMES[s], flag)
        for (i, s, kind, value), flag in sorted(found.items())
    ]
