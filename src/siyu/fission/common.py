"""Small helpers every fission module shares: write transactions, ids, customers, rewards."""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from siyu.errors import InvalidInput, NotFound
from siyu.registry import registry
from siyu.rewards import RewardGrant, RewardResult
from siyu.store import schema
from siyu.store.database import Database


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


@contextmanager
def writing(db: Database) -> Iterator[sa.Connection]:
    """One write transaction. DuckDB has one writer per process: take the database's write lock
    there; PostgreSQL relies on row locks and constraints, so parallel requests really race."""
    guard = db.write_lock if db.kind == "duckdb" else nullcontext()
    with guard, db.engine.begin() as conn:
        yield conn


def for_update(db: Database, stmt: sa.Select[Any]) -> sa.Select[Any]:
    """``SELECT ... FOR UPDATE`` on PostgreSQL (DuckDB is serialised by the write lock)."""
    return stmt.with_for_update() if db.kind == "postgres" else stmt


def require_customer(conn: sa.Connection, workspace_id: str, customer_id: str, field: str) -> str:
    """The customer's current id (after One-ID merges); NotFound when unknown."""
    c = schema.customers
    found = conn.execute(
        sa.select(c.c.customer_id).where(
            c.c.workspace_id == workspace_id, c.c.customer_id == customer_id
        )
    ).scalar()
    if found is not None:
        return str(found)
    merged = conn.execute(
        sa.text(
            "SELECT customer_id FROM identity_anchors WHERE workspace_id = :ws "
            "AND provisional_id = :id LIMIT 1"
        ),
        {"ws": workspace_id, "id": customer_id},
    ).scalar()
    if merged is not None:
        return str(merged)
    raise NotFound(
        f"No customer '{customer_id}' in this workspace ({field}).",
        hint="Send an identify or track call for the customer first, then use its customer_id "
        "(GET /api/profiles?q=... finds it).",
        field=field,
    )


def grant_reward(
    db: Database,
    workspace_id: str,
    customer_id: str,
    reward: Mapping[str, Any],
    *,
    key: str,
    reason: str,
    reference: str,
    now: datetime,
) -> RewardResult:
    """Grant ``reward`` ({"kind": ..., **spec}) through the ``rewards`` extension point, once per
    ``key`` (the reward kind's own idempotency makes a retry after a crash return the first)."""
    spec = {k: v for k, v in reward.items() if k != "kind"}
    kind = registry.rewards.get(str(reward.get("kind", "coupon")))
    result: RewardResult = kind.grant(
        db,
        RewardGrant(
            workspace_id=workspace_id,
            customer_id=customer_id,
            spec=spec,
            idempotency_key=key,
            reason=reason,
            reference=reference,
        ),
        now=now,
    )
    return result


def check_reward(reward: Mapping[str, Any], field: str, *, currency: str | None = None) -> None:
    """Refuse a reward spec its kind would refuse, when a campaign is created (not when paying)."""
    if not isinstance(reward, Mapping) or "kind" not in reward:
        raise InvalidInput(
            f"{field} must be an object with a 'kind' (coupon or points).",
            hint='Example: {"kind": "coupon", "amount": 20} or {"kind": "points", "points": 500}.',
            field=field,
        )
    spec = {k: v for k, v in reward.items() if k != "kind"}
    if currency and "amount" in spec and "currency" not in spec:
        spec["currency"] = currency
    kind_name = str(reward["kind"])
    if kind_name not in registry.rewards:
        known = ", ".join(registry.rewards.names()) or "none registered"
        raise InvalidInput(
            f"{field}.kind '{kind_name}' is not a reward kind.",
            hint=f"Known reward kinds: {known}.",
            field=f"{field}.kind",
        )
    problems = registry.rewards.get(kind_name).validate(spec)
    if problems:
        raise InvalidInput(
            f"{field}: {problems[0]}",
            hint="Correct the reward specification.",
            field=field,
        )
