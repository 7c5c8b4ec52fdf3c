"""Survivorship: one value per trait, chosen from everything the customer's sources said.

Rules (documented in docs/profiles.md):

1. Candidates are the non-empty values of each top-level trait in the customer's events
   (identify calls and any event carrying traits), from every source, after merges. Empty means
   None, "", [] or {}. A nested object (``address``) is one value: parts of two addresses are
   never mixed.
2. Default: the most recent value wins (event time, then message id for a stable tie-break).
3. A trait listed in ``profile_trait_priority`` ranks candidates by the position of their source
   (name or kind) in its list first, so ``{"address": ["shopify", "woocommerce"]}`` prefers the
   store's address over a chat guess however recent the guess; sources not listed come after the
   listed ones, and the most recent value wins among equals.

Every winner keeps its provenance: source, source kind, time and message id, the rule that chose
it and how many candidates there were.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa

from siyu.store import schema


@dataclass(frozen=True)
class Candidate:
    value: Any
    source_id: str | None
    source: str | None
    source_kind: str | None
    at: datetime
    message_id: str


def trait_candidates(
    conn: sa.Connection, workspace_id: str, customer_id: str
) -> dict[str, list[Candidate]]:
    """Every non-empty value of every trait the customer's events carry, by trait name."""
    e, s = schema.events, schema.sources
    rows = conn.execute(
        sa.select(e.c.traits, e.c.source_id, s.c.name, s.c.kind, e.c.timestamp, e.c.message_id)
        .select_from(
            e.outerjoin(
                s, sa.and_(s.c.source_id == e.c.source_id, s.c.workspace_id == e.c.workspace_id)
            )
        )
        .where(
            e.c.workspace_id == workspace_id,
            e.c.customer_id == customer_id,
            e.c.traits.is_not(None),
        )
    ).all()
    out: dict[str, list[Candidate]] = {}
    for traits, source_id, name, kind, at, message_id in rows:
        doc = orjson.loads(traits) if isinstance(traits, str | bytes) else traits
        if not isinstance(doc, dict):
            continue
        for key, value in doc.items():
            if _empty(value):
                continue
            out.setdefault(str(key), []).append(
                Candidate(value, source_id, name, kind, at, str(message_id))
            )
    return out


def _empty(value: Any) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return value is None or (isinstance(value, list | dict) and not value)


def survive(
    candidates: Mapping[str, Sequence[Candidate]],
    priority: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, dict[str, Any]]:
    """The winning value of each trait with its provenance, by the rules above."""
    priority = priority or {}
    out: dict[str, dict[str, Any]] = {}
    for trait in sorted(candidates):
        found = candidates[trait]
        order = [p.lower() for p in priority.get(trait, ())]

        def rank(c: Candidate, order: list[str] = order) -> int:
            names = [n.lower() for n in (c.source, c.source_kind) if n]
            hits = [order.index(n) for n in names if n in order]
            return min(hits) if hits else len(order)

        best = min(found, key=lambda c: (rank(c), _neg_time(c.at), _neg_text(c.message_id)))
        ranked = bool(order) and rank(best) < len(order)
        out[trait] = {
            "value": best.value,
            "source_id": best.source_id,
            "source": best.source,
            "source_kind": best.source_kind,
            "at": best.at.isoformat(),
            "message_id": best.message_id,
            "rule": "source_priority" if ranked else "most_recent",
            "candidates": len(found),
        }
    return out


_EPOCH = datetime(1970, 1, 1)


def _neg_time(at: datetime) -> float:
    return -(at.replace(tzinfo=None) - _EPOCH).total_seconds()


def _neg_text(text: str) -> tuple[int, ...]:
    return tuple(-ord(ch) for ch in text)
