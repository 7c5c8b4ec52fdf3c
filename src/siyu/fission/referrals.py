"""Referrals: invite codes and links, recording a referred friend, review of flagged ones.

States: ``pending`` (friend arrived through a code or link) -> ``qualified`` (the friend's first
order qualified; rewards wait for the return window) -> ``rewarded`` (both rewards granted), or
``rejected`` with a reason at any step. ``flag`` marks a qualified referral held for review (an
IP burst); an operator approves (flag ``cleared``) or rejects it. Every state entered is a row of
``referral_changes`` (at most once per state), which :mod:`siyu.fission.events` turns into events.
The processing of pending and qualified referrals is in :mod:`siyu.fission.qualify`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from siyu.errors import Conflict, InvalidInput, NotFound
from siyu.fission.common import for_update, new_id, require_customer, utcnow, writing
from siyu.fission.tables import referral_changes, referral_codes, referrals
from siyu.store import schema
from siyu.store.bulk import append_new
from siyu.store.database import Database

ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 8  # ~39 bits: invite codes are shared publicly, they only need to be unique
STATES = ("pending", "qualified", "rewarded", "rejected")


@dataclass(frozen=True)
class InviteCode:
    code: str
    customer_id: str
    created: bool

    def link(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/r/{self.code}"


def normalise_code(code: str) -> str:
    return code.strip().upper().replace("-", "")


def invite_code(db: Database, workspace_id: str, customer_id: str) -> InviteCode:
    """The customer's invite code, created on first request (one per customer)."""
    with writing(db) as conn:
        customer_id = require_customer(conn, workspace_id, customer_id, "customer_id")
        existing = conn.execute(
            sa.select(referral_codes.c.code)
            .where(
                referral_codes.c.workspace_id == workspace_id,
                referral_codes.c.customer_id == customer_id,
            )
            .order_by(referral_codes.c.created_at, referral_codes.c.code)
            .limit(1)
        ).scalar()
        if existing is not None:
            return InviteCode(str(existing), customer_id, created=False)
        code = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
        conn.execute(
            referral_codes.insert().values(
                workspace_id=workspace_id, code=code, customer_id=customer_id, created_at=utcnow()
            )
        )
        return InviteCode(code, customer_id, created=True)


def record_change(
    conn: sa.Connection,
    workspace_id: str,
    rows: list[dict[str, Any]],
) -> None:
    """Log states entered ({referral_id, state, reason, changed_at}); a repeat is ignored.

    Many rows go in as one Arrow table (one statement), a few as parameters."""
    if len(rows) > 20:
        data = pa.table(
            {
                "workspace_id": pa.array([workspace_id] * len(rows), pa.string()),
                "referral_id": pa.array([str(r["referral_id"]) for r in rows], pa.string()),
                "state": pa.array([str(r["state"]) for r in rows], pa.string()),
                "reason": pa.array(
                    [None if r["reason"] is None else str(r["reason"]) for r in rows], pa.string()
                ),
                "changed_at": pa.array([r["changed_at"] for r in rows], pa.timestamp("us")),
            }
        )
        append_new(conn, referral_changes, data)
    elif rows:
        conn.execute(
            pg_insert(referral_changes).on_conflict_do_nothing(),
            [{"workspace_id": workspace_id, **r} for r in rows],
        )


def _has_orders_before(
    conn: sa.Connection, workspace_id: str, customer_id: str, t: datetime
) -> bool:
    o = schema.orders
    return (
        conn.execute(
            sa.select(sa.func.count())
            .select_from(o)
            .where(
                o.c.workspace_id == workspace_id,
                o.c.customer_id == customer_id,
                o.c.placed_at < t,
                o.c.status != "cancelled",
            )
        ).scalar_one()
        > 0
    )


def refer(
    db: Database,
    workspace_id: str,
    code: str,
    friend_id: str,
    *,
    ip: str | None = None,
    now: datetime | None = None,
) -> tuple[dict[str, Any], bool]:
    """Record that ``friend_id`` arrived through ``code``; return (referral, created).

    The first code a friend used wins: the same friend again returns the stored referral
    (created False). A friend who is the referrer, or who has ordered before, is recorded as
    rejected with the reason, so that the attempt is visible and counted.
    """
    now = now or utcnow()
    wanted = normalise_code(code)
    if not wanted:
        raise InvalidInput("The invite code is empty.", field="code")
    with writing(db) as conn:
        friend_id = require_customer(conn, workspace_id, friend_id, "friend_id")
        referrer = conn.execute(
            sa.select(referral_codes.c.customer_id).where(
                referral_codes.c.workspace_id == workspace_id, referral_codes.c.code == wanted
            )
        ).scalar()
        if referrer is None:
            raise NotFound(
                f"No invite code '{code}' in this workspace.",
                hint="Check the code in the invite link; 'siyu referrals code CUSTOMER' shows one.",
                field="code",
            )
        reason = None
        if referrer == friend_id:
            reason = "self_referral"
        elif _has_orders_before(conn, workspace_id, friend_id, now):
            reason = "existing_customer"
        rid = new_id("ref")
        inserted = conn.execute(
            pg_insert(referrals)
            .values(
                workspace_id=workspace_id,
                referral_id=rid,
                code=wanted,
                referrer_id=referrer,
                friend_id=friend_id,
                friend_key=friend_id,
                state="rejected" if reason else "pending",
                reason=reason,
                ip=ip,
                created_at=now,
                rejected_at=now if reason else None,
                updated_at=now,
            )
            .on_conflict_do_nothing()
            .returning(referrals.c.referral_id)
        ).scalar()
        if inserted is not None:
            changes = [{"referral_id": rid, "state": "created", "reason": None, "changed_at": now}]
            if reason:
                changes.append(
                    {"referral_id": rid, "state": "rejected", "reason": reason, "changed_at": now}
                )
            record_change(conn, workspace_id, changes)
        row = (
            conn.execute(
                sa.select(referrals)
                .where(
                    referrals.c.workspace_id == workspace_id,
                    sa.or_(referrals.c.friend_key == friend_id, referrals.c.friend_id == friend_id),
                )
                .order_by(referrals.c.created_at)
                .limit(1)
            )
            .mappings()
            .one()
        )
        return _public(dict(row)), inserted is not None


def _public(row: dict[str, Any]) -> dict[str, Any]:
    row.pop("workspace_id", None)
    return row


def get_referral(conn: sa.Connection, workspace_id: str, referral_id: str) -> dict[str, Any]:
    row = (
        conn.execute(
            sa.select(referrals).where(
                referrals.c.workspace_id == workspace_id, referrals.c.referral_id == referral_id
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(
            f"No referral '{referral_id}'.", hint="List them with 'siyu referrals list'."
        )
    out = _public(dict(row))
    out["history"] = [
        dict(r)
        for r in conn.execute(
            sa.select(
                referral_changes.c.state, referral_changes.c.reason, referral_changes.c.changed_at
            )
            .where(
                referral_changes.c.workspace_id == workspace_id,
                referral_changes.c.referral_id == referral_id,
            )
            .order_by(referral_changes.c.changed_at)
        ).mappings()
    ]
    return out


def list_referrals(
    conn: sa.Connection,
    workspace_id: str,
    *,
    state: str | None = None,
    referrer_id: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    if state is not None and state not in STATES:
        raise InvalidInput(
            f"Unknown referral state '{state}'.",
            hint=f"Use one of: {', '.join(STATES)}.",
            field="state",
        )
    q = sa.select(referrals).where(referrals.c.workspace_id == workspace_id)
    if state:
        q = q.where(referrals.c.state == state)
    if referrer_id:
        q = q.where(referrals.c.referrer_id == referrer_id)
    q = q.order_by(referrals.c.created_at.desc(), referrals.c.referral_id).limit(limit)
    return [_public(dict(r)) for r in conn.execute(q).mappings()]


def review(
    db: Database,
    workspace_id: str,
    referral_id: str,
    *,
    approve: bool,
    reason: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Clear (approve) or reject a referral held with a flag (or any not yet rewarded)."""
    now = now or utcnow()
    r = referrals
    with writing(db) as conn:
        row = conn.execute(
            for_update(
                db,
                sa.select(r.c.state, r.c.flag).where(
                    r.c.workspace_id == workspace_id, r.c.referral_id == referral_id
                ),
            )
        ).first()
        if row is None:
            raise NotFound(
                f"No referral '{referral_id}'.", hint="List them with 'siyu referrals list'."
            )
        if row.state in ("rewarded", "rejected"):
            raise Conflict(
                f"Referral '{referral_id}' is already {row.state}; it cannot be reviewed.",
                hint="Only pending or qualified referrals can be approved or rejected.",
            )
        where = (r.c.workspace_id == workspace_id, r.c.referral_id == referral_id)
        if approve:
            if row.flag in (None, "cleared"):
                raise Conflict(
                    f"Referral '{referral_id}' has no flag to clear.",
                    hint="Approval clears a fraud flag; unflagged referrals proceed by themselves.",
                )
            # 'cleared' (not NULL), so that the same burst does not flag it again.
            conn.execute(r.update().where(*where).values(flag="cleared", updated_at=now))
            record_change(
                conn,
                workspace_id,
                [
                    {
                        "referral_id": referral_id,
                        "state": "cleared",
                        "reason": reason or "approved_on_review",
                        "changed_at": now,
                    }
                ],
            )
        else:
            why = reason or "rejected_on_review"
            conn.execute(
                r.update()
                .where(*where)
                .values(state="rejected", reason=why, rejected_at=now, updated_at=now)
            )
            record_change(
                conn,
                workspace_id,
                [
                    {
                        "referral_id": referral_id,
                        "state": "rejected",
                        "reason": why,
                        "changed_at": now,
                    }
                ],
            )
        return get_referral(conn, workspace_id, referral_id)
