"""Bulk-build the identity evidence of a large demo brand, for benchmarks/identity.py.

Sending 1M customers' ~30M messages through the pipeline takes far longer than the resolution
being measured, and One-ID reads only the *distinct identifier tuples* of the events (source,
userId, anonymousId, previousId, traits.email, traits.phone). So this builds, block by block
with the demo generator's own people, events and message writer (the same evidence, byte for
byte), the events that carry each distinct tuple: every identify and alias, and the first and
last event of each (person, source, browser, signed-in) sender, so first and last seen match.
The events table then holds exactly the tuples a
full pipeline load would give, and the truth table the same persons (``demo.generator``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import numpy as np
import orjson
import pyarrow as pa
import sqlalchemy as sa

from siyu.collect.rows import customer_key
from siyu.collect.sources import ensure_source
from siyu.demo import SOURCES
from siyu.demo.events import ALIAS, IDENTIFY
from siyu.demo.generator import _block, _truth_rows, _window
from siyu.demo.markets import SOURCE_NAMES
from siyu.demo.people import BLOCK
from siyu.store import schema
from siyu.store.bulk import append


def _evidence_rows(kind: np.ndarray, person: np.ndarray, source: np.ndarray,
                   device: np.ndarray, user: np.ndarray) -> np.ndarray:  # fmt: skip
    """Rows carrying a distinct tuple: identifies, aliases, the first and last event of each
    other sender (events are sorted by person and time)."""
    special = (kind == IDENTIFY) | (kind == ALIAS)
    sender = ((person * 8 + source) * 4 + (device + 1)) * 2 + user
    key = np.where(special, -1, sender)
    _, first = np.unique(key, return_index=True)
    _, last = np.unique(key[::-1], return_index=True)
    keep = special.copy()
    keep[first] = True
    keep[len(key) - 1 - last] = True  # first and last seen of each sender, as stored
    return np.flatnonzero(keep)


def build(
    conn: sa.Connection,
    workspace_id: str,
    customers: int,
    seed: int,
    as_of: dt.date,
    *,
    truth: bool = False,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Store the evidence events (and optionally the truth) of ``customers`` demo people."""
    sources = {
        name: ensure_source(conn, workspace_id, name, kind).source_id for name, kind in SOURCES
    }
    source_ids = [sources[name] for name in SOURCE_NAMES]
    window = _window(as_of)
    now = dt.datetime(as_of.year, as_of.month, as_of.day)
    written = 0
    for b in range((customers + BLOCK - 1) // BLOCK):
        block = _block(seed, b, window)
        ev = block.events
        hi = min(BLOCK, customers - b * BLOCK)
        rows = _evidence_rows(ev.kind, ev.person, ev.source, ev.device, ev.user.astype(np.int64))
        rows = rows[ev.person[rows] < hi]
        records = block.writer.write(rows)
        user = [r.get("userId") for r in records]
        anon = [r.get("anonymousId") for r in records]
        n = len(records)
        data = pa.table(
            {
                "workspace_id": pa.array([workspace_id] * n, pa.string()),
                "message_id": pa.array([r["messageId"] for r in records], pa.string()),
                "type": pa.array([r["type"] for r in records], pa.string()),
                "user_id": pa.array(user, pa.string()),
                "anonymous_id": pa.array(anon, pa.string()),
                "previous_id": pa.array([r.get("previousId") for r in records], pa.string()),
                "customer_id": pa.array(
                    [customer_key(workspace_id, u, a) for u, a in zip(user, anon, strict=True)],
                    pa.string(),
                ),
                "source_id": pa.array([source_ids[s] for s in ev.source[rows].tolist()]),
                "timestamp": pa.array(
                    ev.ts[rows].astype("datetime64[ms]").astype("datetime64[us]"),
                    pa.timestamp("us"),
                ),
                "received_at": pa.array([now] * n, pa.timestamp("us")),
                "traits": pa.array(
                    [
                        orjson.dumps(r["traits"]).decode() if "traits" in r else None
                        for r in records
                    ],
                    pa.string(),
                ),
                "context": pa.array(
                    [orjson.dumps(r["context"]).decode() for r in records], pa.string()
                ),
            }
        )
        append(conn, schema.events, data)
        written += n
        if truth:
            found = _truth_rows(block, 0, hi)
            columns = list(zip(*found, strict=True))
            m = len(found)
            append(
                conn,
                schema.demo_truth,
                pa.table(
                    {
                        "workspace_id": pa.array([workspace_id] * m, pa.string()),
                        "person_id": pa.array(columns[0], pa.string()),
                        "kind": pa.array(columns[1], pa.string()),
                        "value": pa.array(columns[2], pa.string()),
                        "source": pa.array(columns[3], pa.string()),
                        "adversarial": pa.array(columns[4], pa.string()),
                    }
                ),
            )
        if progress is not None:
            progress(hi)
    return written
