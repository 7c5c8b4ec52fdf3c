"""The built-in profile sections, registered through ``registry.profile_sections``.

Each reads one table with one query bounded by the customer (and ``recent`` for lists).
Sections of slices that may not have run yet (tiers, tags, scores) return None when empty, so the
profile shows only what exists.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson
import sqlalchemy as sa

from siyu.identity.tables import identities
from siyu.profiles.assemble import ProfileRequest
from siyu.profiles.traits import survive, trait_candidates
from siyu.registry import Registry
from siyu.store import schema


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, str | bytes) and value[:1] in ("{", "[", b"{", b"["):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _rows(conn: sa.Connection, stmt: sa.Executable, params: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in r.items()} for r in conn.execute(stmt, params).mappings()]


def traits(request: ProfileRequest) -> dict[str, Any]:
    """Every trait's surviving value with where it came from (see ``profiles/traits.py``)."""
    found = trait_candidates(request.conn, request.workspace_id, request.customer_id)
    return survive(found, request.trait_priority)


def identifiers(request: ProfileRequest) -> list[dict[str, Any]]:
    i = identities
    stmt = (
        sa.select(i.c.kind, i.c.value, i.c.source_id, i.c.first_seen_at, i.c.last_seen_at)
        .where(i.c.workspace_id == request.workspace_id, i.c.customer_id == request.customer_id)
        .order_by(i.c.kind, i.c.value)
    )
    return _rows(request.conn, stmt, {})


def consents(request: ProfileRequest) -> list[dict[str, Any]]:
    """The latest state per purpose and channel (the ledger keeps every change)."""
    stmt = sa.text(
        "SELECT purpose, channel, status, source_id, message_id, timestamp FROM ("
        "SELECT purpose, channel, status, source_id, message_id, timestamp, row_number() OVER "
        "(PARTITION BY purpose, channel ORDER BY timestamp DESC, consent_id DESC) AS rn "
        "FROM consents WHERE workspace_id = :ws AND customer_id = :c) x WHERE rn = 1 "
        "ORDER BY purpose, channel"
    )
    return _rows(request.conn, stmt, {"ws": request.workspace_id, "c": request.customer_id})


def orders(request: ProfileRequest) -> list[dict[str, Any]]:
    o = schema.orders
    stmt = (
        sa.select(
            o.c.order_id,
            o.c.source_id,
            o.c.placed_at,
            o.c.currency,
            o.c.total,
            o.c.total_base,
            o.c.base_currency,
            o.c.refunded,
            o.c.status,
            o.c.line_count,
        )
        .where(o.c.workspace_id == request.workspace_id, o.c.customer_id == request.customer_id)
        .order_by(o.c.placed_at.desc(), o.c.order_id)
        .limit(request.recent)
    )
    return _rows(request.conn, stmt, {})


def events(request: ProfileRequest) -> list[dict[str, Any]]:
    e = schema.events
    stmt = (
        sa.select(e.c.message_id, e.c.type, e.c.event, e.c.name, e.c.source_id, e.c.timestamp)
        .where(e.c.workspace_id == request.workspace_id, e.c.customer_id == request.customer_id)
        .order_by(e.c.timestamp.desc(), e.c.message_id)
        .limit(request.recent)
    )
    return _rows(request.conn, stmt, {})


def tiers(request: ProfileRequest) -> list[dict[str, Any]] | None:
    stmt = sa.text(
        "SELECT model, tier, rfm_segment, r_score, f_score, m_score, as_of "
        "FROM customer_segments WHERE workspace_id = :ws AND customer_id = :c ORDER BY model"
    )
    return _rows(request.conn, stmt, {"ws": request.workspace_id, "c": request.customer_id}) or None


def tags(request: ProfileRequest) -> list[dict[str, Any]] | None:
    stmt = sa.text(
        "SELECT tag_id, since FROM customer_tags WHERE workspace_id = :ws AND customer_id = :c "
        "ORDER BY tag_id"
    )
    return _rows(request.conn, stmt, {"ws": request.workspace_id, "c": request.customer_id}) or None


def scores(request: ProfileRequest) -> dict[str, Any] | None:
    stmt = sa.text(
        "SELECT model_version, as_of, p_alive, expected_orders_12m, expected_order_value, clv_12m "
        "FROM customer_scores WHERE workspace_id = :ws AND customer_id = :c"
    )
    found = _rows(request.conn, stmt, {"ws": request.workspace_id, "c": request.customer_id})
    return found[0] if found else None


BUILTIN_SECTIONS = {
    "traits": traits,
    "identifiers": identifiers,
    "consents": consents,
    "orders": orders,
    "events": events,
    "tiers": tiers,
    "tags": tags,
    "scores": scores,
}


def register(registry: Registry) -> None:
    for name, provider in BUILTIN_SECTIONS.items():
        registry.profile_sections.register(name, provider)
