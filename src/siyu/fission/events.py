"""Every fission state change also becomes an event in the event log, through the pipeline.

State changes are committed first (``referral_changes``, group members joining and closing,
assists, assist rewards); each has a deterministic message id (``fis-`` + md5 of workspace and
key), so :func:`publish` finds, set-based, the changes whose event is not stored yet and sends
them through ``Pipeline.ingest`` (no side door). A crash between the two is repaired by the next
publish (``siyu referrals process``, ``siyu groupbuys close``, ``siyu assists sync`` publish all
that is pending); the pipeline deduplicates by message id, so no event is stored twice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from siyu.access.workspaces import get_workspace_by_id
from siyu.collect import Pipeline
from siyu.config import Settings, load_settings
from siyu.identity.subject import SUBJECT_COLUMNS, Sender, ingest_as, sender_of, subject_join
from siyu.store.database import Database

FISSION_EVENTS: dict[str, str] = {
    "Referral Created": "A friend arrived through an invite code or link (referral_id, code).",
    "Referral Qualified": "The friend's first order qualified; rewards wait (hold_until).",
    "Referral Flagged": "A qualified referral is held for review (reason, e.g. ip_burst).",
    "Referral Approved": "A flagged referral was approved on review; rewards follow the hold.",
    "Referral Rewarded": "Both sides' rewards were granted (referrer_reward, friend_reward).",
    "Referral Rejected": "A referral was rejected (reason, e.g. self_referral, shared_device).",
    "Group Buy Opened": "A leader opened a group (group_id, campaign_id, paid_price).",
    "Group Buy Joined": "A friend took a seat in a group (group_id, seat, paid_price).",
    "Group Buy Completed": "A group closed; the member's order is confirmed (confirmed_price, "
    "refund_amount owed).",
    "Group Buy Expired": "A group ran out of time and was voided (refund_amount owed).",
    "Assist Given": "A helper assisted a friend (campaign_id, target_id, local_day).",
    "Assist Reward Unlocked": "A target reached an assist threshold (threshold, reward).",
}

REFERRAL_EVENTS = {
    "created": "Referral Created",
    "qualified": "Referral Qualified",
    "flagged": "Referral Flagged",
    "cleared": "Referral Approved",
    "rewarded": "Referral Rewarded",
    "rejected": "Referral Rejected",
}


def _mid(key_sql: str) -> str:
    return f"'fis-' || md5(:ws || ':' || {key_sql})"


_SOURCES: dict[str, str] = {
    "referral": f"""
        SELECT {_mid("'ref:' || c.referral_id || ':' || c.state")} AS mid,
               r.referrer_id AS customer_id, c.changed_at AS ts, c.state, c.reason,
               r.referral_id, r.code, r.friend_id, r.order_id, r.hold_until, r.flag,
               r.referrer_reward, r.friend_reward
        FROM referral_changes c
        JOIN referrals r ON r.workspace_id = c.workspace_id AND r.referral_id = c.referral_id
        WHERE c.workspace_id = :ws
    """,
    "join": f"""
        SELECT {_mid("'gbj:' || m.group_id || ':' || CAST(m.seat AS VARCHAR)")} AS mid,
               m.customer_id, m.joined_at AS ts, m.group_id, m.seat, g.campaign_id,
               m.paid_price, m.currency, m.order_id
        FROM group_buy_members m
        JOIN group_buys g ON g.workspace_id = m.workspace_id AND g.group_id = m.group_id
        WHERE m.workspace_id = :ws
    """,
    "close": f"""
        SELECT {_mid("'gbc:' || m.group_id || ':' || CAST(m.seat AS VARCHAR)")} AS mid,
               m.customer_id, m.closed_at AS ts, m.group_id, m.seat, g.campaign_id, m.status,
               m.paid_price, m.confirmed_price, m.refund_amount, m.currency, m.order_id
        FROM group_buy_members m
        JOIN group_buys g ON g.workspace_id = m.workspace_id AND g.group_id = m.group_id
        WHERE m.workspace_id = :ws AND m.closed_at IS NOT NULL
    """,
    "assist": f"""
        SELECT {_mid("'as:' || a.campaign_id || ':' || a.target_key || ':' || a.helper_key")}
                 AS mid,
               a.helper_id AS customer_id, a.created_at AS ts, a.campaign_id, a.target_id,
               a.local_day
        FROM assists a WHERE a.workspace_id = :ws
    """,
    "unlock": f"""
        SELECT {
        _mid("'asr:' || r.campaign_id || ':' || r.target_id || ':' || CAST(r.threshold AS VARCHAR)")
    } AS mid,
               r.target_id AS customer_id, r.granted_at AS ts, r.campaign_id, r.threshold,
               r.reward_kind, r.description AS reward
        FROM assist_rewards r WHERE r.workspace_id = :ws
    """,
}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        return value.isoformat() + "Z"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _name(kind: str, row: dict[str, Any]) -> str:
    if kind == "referral":
        return REFERRAL_EVENTS[row.pop("state")]
    if kind == "join":
        return "Group Buy Opened" if row["seat"] == 1 else "Group Buy Joined"
    if kind == "close":
        return "Group Buy Completed" if row.pop("status") == "confirmed" else "Group Buy Expired"
    return "Assist Given" if kind == "assist" else "Assist Reward Unlocked"


_SCOPES: dict[str, tuple[tuple[str, str], ...]] = {
    "referral": (("referral_id", "c.referral_id"),),
    "join": (("group_id", "m.group_id"),),
    "close": (("group_id", "m.group_id"),),
    "assist": (("campaign_id", "a.campaign_id"), ("target_id", "a.target_id")),
    "unlock": (("campaign_id", "r.campaign_id"), ("target_id", "r.target_id")),
}
"""Keys that narrow each source to one object (primary-key or index prefixes)."""


def _scoped(kind: str, sql: str, scope: dict[str, str] | None) -> str | None:
    """The source narrowed to ``scope`` (None: the source has nothing of that object)."""
    if scope is None:
        return sql
    keys = _SCOPES[kind]
    if not all(name in scope for name, _ in keys):
        return None
    return sql + "".join(f" AND {column} = :{name}" for name, column in keys)


def pending_messages(
    conn: sa.Connection, workspace_id: str, scope: dict[str, str] | None = None
) -> list[tuple[Sender, dict[str, Any]]]:
    """Segment track calls for the state changes whose event is not stored yet; with ``scope``
    (``referral_id``, ``group_id``, or ``campaign_id`` and ``target_id``) only those of one
    object, read through its key instead of scanning the workspace's whole history."""
    messages: list[tuple[Sender, dict[str, Any]]] = []
    for kind, source in _SOURCES.items():
        sql = _scoped(kind, source, scope)
        if sql is None:
            continue
        # One object's changes concern a few customers: read only their anchors.
        only = (
            "" if scope is None else f"AND a.customer_id IN (SELECT q.customer_id FROM ({sql}) q)"
        )
        query = sa.text(
            f"""
            SELECT s.*, {SUBJECT_COLUMNS}
            FROM ({sql}) s
            {subject_join("s.customer_id", only)}
            WHERE NOT EXISTS (
                SELECT 1 FROM events e WHERE e.workspace_id = :ws AND e.message_id = s.mid)
            """
        )
        for r in conn.execute(query, {"ws": workspace_id, **(scope or {})}).mappings():
            row = dict(r)
            mid, ts = row.pop("mid"), row.pop("ts")
            sender = sender_of(str(row["customer_id"]), row)
            name = _name(kind, row)
            message: dict[str, Any] = {
                "type": "track",
                "event": name,
                "messageId": mid,
                "timestamp": ts.isoformat() + "Z",
                "properties": {k: _plain(v) for k, v in row.items() if v is not None},
                "context": {"library": {"name": "siyu-fission"}},
            }
            messages.append((sender, message))
    return messages


def publish(
    db: Database,
    workspace_id: str,
    *,
    settings: Settings | None = None,
    scope: dict[str, str] | None = None,
) -> int:
    """Send pending fission events through the pipeline (all of the workspace, or those of the
    object in ``scope`` right after a request changed it); return how many were stored."""
    with db.engine.connect() as conn:
        messages = pending_messages(conn, workspace_id, scope)
        workspace = get_workspace_by_id(conn, workspace_id) if messages else None
    if not messages or workspace is None:
        return 0
    latest = max(datetime.fromisoformat(m["timestamp"][:-1]) for _, m in messages)
    now = max(datetime.now(UTC).replace(tzinfo=None), latest)
    pipeline = Pipeline(db, workspace, settings or load_settings())
    return ingest_as(pipeline, messages, origin="fission", received_at=now)
