"""Delivery receipts: a provider's status callbacks move a message row forward.

Providers (the WhatsApp Cloud API) report ``sent``, ``delivered``, ``read`` and ``failed`` for the
id they returned when the message was accepted (the ``wamid``). Callbacks arrive out of order and
more than once (Meta retries; a read on one device may come before the delivery on another), so
the update is monotonic: a row only moves forward (sent < delivered < read), a ``read`` also
stamps ``delivered_at``, and a late ``failed`` never overrides a message already delivered or
read (it was delivered to some device). The failure's provider code is mapped to the same
``reason_code`` a synchronous refusal would get, so the message log explains it either way.

The callbacks themselves are stored as events by the pipeline (Message Delivered, ...); this
module keeps the ``messages`` row, which journeys' measurement reads, in step with them. A
callback can beat the send's own bookkeeping (Meta may call the webhook before the API call
returned); the channel then catches up from the stored events right after it records the
send (:func:`catch_up_whatsapp`), so no status is lost to the race.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from siyu.messaging.channels.whatsapp import ERRORS as WA_ERRORS
from siyu.messaging.tables import any_of, messages
from siyu.store import bulk
from siyu.store.schema import events

RANK = {"sent": 1, "delivered": 2, "read": 3}
TS = pa.timestamp("us")


@dataclass(frozen=True)
class StatusUpdate:
    """One provider callback about one message."""

    provider_message_id: str
    status: str  # sent | delivered | read | failed
    at: datetime  # UTC, naive
    reason_code: str | None = None
    reason: str | None = None


def whatsapp_updates(payload: Mapping[str, Any]) -> list[StatusUpdate]:
    """The status callbacks in one WhatsApp webhook notification (entry/changes/statuses)."""
    out: list[StatusUpdate] = []
    for entry in payload.get("entry") or []:
        for change in (entry or {}).get("changes") or [] if isinstance(entry, dict) else []:
            if not isinstance(change, dict) or change.get("field") != "messages":
                continue
            value = change.get("value") or {}
            for st in value.get("statuses") or [] if isinstance(value, dict) else []:
                u = _whatsapp_status(st)
                if u is not None:
                    out.append(u)
    return out


def _whatsapp_status(st: Any) -> StatusUpdate | None:
    if not isinstance(st, dict) or st.get("status") not in (*RANK, "failed") or not st.get("id"):
        return None
    try:
        at = datetime.fromtimestamp(int(st.get("timestamp") or ""), UTC).replace(tzinfo=None)
    except (TypeError, ValueError, OverflowError, OSError):
        return None
    code = reason = None
    if st["status"] == "failed":
        errors = [e for e in st.get("errors") or [] if isinstance(e, dict)]
        first = errors[0] if errors else {}
        num = first.get("code")
        code = WA_ERRORS[num][1] if isinstance(num, int) and num in WA_ERRORS else "provider_failed"
        details = (first.get("error_data") or {}).get("details")
        reason = f"WhatsApp error {num}: {first.get('title') or first.get('message') or 'failed'}"
        if details:
            reason += f" ({details})"
    return StatusUpdate(str(st["id"]), str(st["status"]), at, code, reason)


def _reduce(updates: Iterable[StatusUpdate]) -> list[dict[str, Any]]:
    """One row per provider id: the furthest status, and the first time each was reached."""
    rows: dict[str, dict[str, Any]] = {}
    for u in updates:
        r = rows.setdefault(
            u.provider_message_id,
            {
                "provider_message_id": u.provider_message_id,
                "status": None,
                "sent_at": None,
                "delivered_at": None,
                "read_at": None,
                "failed_at": None,
                "reason_code": None,
                "reason": None,
            },
        )
        col = f"{u.status}_at"
        r[col] = u.at if r[col] is None else min(r[col], u.at)
        if u.status == "read" and (r["delivered_at"] is None or u.at < r["delivered_at"]):
            r["delivered_at"] = u.at  # read implies delivered (Meta omits the delivered callback)
        if u.status == "failed":
            r["reason_code"], r["reason"] = u.reason_code, u.reason
        if RANK.get(u.status, 0) > RANK.get(r["status"] or "", 0):
            r["status"] = u.status
    for r in rows.values():
        if r["status"] is None:  # only failures
            r["status"] = "failed"
    return list(rows.values())


def _rank(col: str, failed: int) -> str:
    whens = " ".join(f"WHEN '{k}' THEN {v}" for k, v in RANK.items())
    return f"(CASE {col} {whens} WHEN 'failed' THEN {failed} ELSE 0 END)"


def _first(col: str) -> str:
    """The earlier of the stored and the reported moment (LEAST is NULL-safe on neither engine
    in the same way, so COALESCE covers a missing side)."""
    return f"COALESCE(LEAST(messages.{col}, s.{col}), messages.{col}, s.{col})"


def apply_status_updates(
    conn: sa.Connection, workspace_id: str, channel: str, updates: Sequence[StatusUpdate]
) -> int:
    """Move the workspace's messages on ``channel`` forward; return the rows changed."""
    rows = _reduce(updates)
    if not rows:
        return 0
    data = pa.table(
        {
            "provider_message_id": pa.array([r["provider_message_id"] for r in rows], pa.string()),
            "status": pa.array([r["status"] for r in rows], pa.string()),
            "sent_at": pa.array([r["sent_at"] for r in rows], TS),
            "delivered_at": pa.array([r["delivered_at"] for r in rows], TS),
            "read_at": pa.array([r["read_at"] for r in rows], TS),
            "failed_at": pa.array([r["failed_at"] for r in rows], TS),
            "reason_code": pa.array([r["reason_code"] for r in rows], pa.string()),
            "reason": pa.array([r["reason"] for r in rows], pa.string()),
        }
    )
    # a message failed by a callback ranks as sent: only a delivery or a read lifts it
    rank_m = _rank("messages.status", failed=1)
    rank_s = _rank("s.status", failed=0)
    reached = "messages.status IN ('delivered', 'read') OR s.delivered_at IS NOT NULL"
    # a failure counts only when nothing says the message reached a device
    fails = f"s.failed_at IS NOT NULL AND NOT ({reached})"
    name = bulk.stage(conn, messages, data)
    try:
        result = conn.execute(
            sa.text(
                "UPDATE messages SET "
                f"status = CASE WHEN {fails} THEN 'failed' "
                f"WHEN {rank_s} > {rank_m} THEN s.status ELSE messages.status END, "
                f"sent_at = {_first('sent_at')}, "
                f"delivered_at = {_first('delivered_at')}, "
                f"read_at = {_first('read_at')}, "
                f"failed_at = CASE WHEN {fails} THEN s.failed_at ELSE messages.failed_at END, "
                f"reason_code = CASE WHEN {fails} THEN s.reason_code "
                "ELSE messages.reason_code END, "
                f"reason = CASE WHEN {fails} THEN s.reason ELSE messages.reason END, "
                "updated_at = :now "
                f"FROM {name} AS s "
                "WHERE messages.workspace_id = :ws AND messages.channel = :channel "
                "AND messages.provider_message_id = s.provider_message_id "
                "AND messages.status IN "
                "('sending', 'sent', 'delivered', 'read', 'unknown', 'failed') "
                "RETURNING messages.message_id"
            ),
            {
                "ws": workspace_id,
                "channel": channel,
                "now": datetime.now(UTC).replace(tzinfo=None),
            },
        )
        return len(result.all())
    finally:
        bulk.unstage(conn, name)


def apply_whatsapp_statuses(
    engine: sa.Engine, workspace_id: str, payload: Mapping[str, Any]
) -> int:
    """Apply the status callbacks of one verified WhatsApp notification; rows changed."""
    updates = whatsapp_updates(payload)
    if not updates:
        return 0
    with engine.begin() as conn:
        return apply_status_updates(conn, workspace_id, "whatsapp", updates)


def _error_code(props: Any) -> int | None:
    code = props.get("error_code") if isinstance(props, Mapping) else None
    try:
        return None if code is None else int(code)
    except (TypeError, ValueError):
        return None


def catch_up_whatsapp(conn: sa.Connection, workspace_id: str, wamids: Sequence[str]) -> int:
    """Apply status callbacks already stored as events for these WhatsApp message ids.

    The WhatsApp webhook stores a callback as the event ``whatsapp:{wamid}:{status}``, so the
    lookup is by primary-key-like ids, no JSON query.
    """
    if not wamids:
        return 0
    keys = {f"whatsapp:{w}:{st}": (w, st) for w in wamids for st in (*RANK, "failed")}
    found = conn.execute(
        sa.select(events.c.message_id, events.c.timestamp, events.c.properties).where(
            events.c.workspace_id == workspace_id, any_of(events.c.message_id, keys)
        )
    ).all()
    updates = []
    for mid, ts, props in found:
        wamid, status = keys[mid]
        code = reason = None
        if status == "failed":
            num = _error_code(props)
            code = WA_ERRORS[num][1] if num in WA_ERRORS else "provider_failed"
            title = props.get("error_title") if isinstance(props, Mapping) else None
            reason = f"WhatsApp error {num}: {title or 'failed'}"
        updates.append(StatusUpdate(wamid, status, ts, code, reason))
    return apply_status_updates(conn, workspace_id, "whatsapp", updates) if updates else 0
