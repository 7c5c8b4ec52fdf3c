"""Suppression lists: addresses that must not be contacted on a channel, whatever the purpose.

Bounces and complaints (from providers), unsubscribes a provider reports (SMS STOP), and manual
entries. An address is normalised like the channel normalises its recipients (lower-case email,
E.164 phone) so that a suppression always matches the address a send would use.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from siyu.errors import InvalidInput, NotFound
from siyu.messaging.channels.email import EmailChannel
from siyu.messaging.channels.sms import phone_address
from siyu.messaging.tables import suppressions as s

CHANNELS = ("email", "sms", "whatsapp")
REASONS = ("bounce", "complaint", "unsubscribe", "manual")


def normalise(channel: str, address: str) -> str:
    """The address as sends use it; InvalidInput when it cannot be one."""
    if channel not in CHANNELS:
        raise InvalidInput(
            f"Unknown suppression channel '{channel}'.",
            hint=f"Use one of: {', '.join(CHANNELS)}.",
            field="channel",
        )
    found = (
        EmailChannel.address_of({"email": address})
        if channel == "email"
        else phone_address({"phone": address})
    )
    if found is None:
        kind = "an email address" if channel == "email" else "a phone number in E.164 (+4917...)"
        raise InvalidInput(
            f"'{address}' is not {kind}.", hint="Check the address.", field="address"
        )
    return found


def add_suppression(
    conn: sa.Connection,
    workspace_id: str,
    channel: str,
    address: str,
    reason: str,
    now: datetime,
    note: str | None = None,
) -> tuple[str, bool]:
    """Suppress an address; (normalised address, True when it was new)."""
    if reason not in REASONS:
        raise InvalidInput(
            f"Unknown suppression reason '{reason}'.",
            hint=f"Use one of: {', '.join(REASONS)}.",
            field="reason",
        )
    addr = normalise(channel, address)
    exists = conn.execute(
        sa.select(s.c.reason).where(
            s.c.workspace_id == workspace_id, s.c.channel == channel, s.c.address == addr
        )
    ).first()
    if exists is not None:
        return addr, False
    conn.execute(
        s.insert().values(
            workspace_id=workspace_id,
            channel=channel,
            address=addr,
            reason=reason,
            note=note,
            created_at=now,
        )
    )
    return addr, True


def remove_suppression(conn: sa.Connection, workspace_id: str, channel: str, address: str) -> str:
    addr = normalise(channel, address)
    result = conn.execute(
        s.delete().where(
            s.c.workspace_id == workspace_id, s.c.channel == channel, s.c.address == addr
        )
    )
    if not result.rowcount:
        raise NotFound(
            f"{addr} is not suppressed on {channel}.",
            hint="'siyu suppressions list' shows the suppressed addresses.",
        )
    return addr


def list_suppressions(
    conn: sa.Connection, workspace_id: str, channel: str | None = None, limit: int = 1000
) -> list[dict[str, Any]]:
    q = sa.select(s.c.channel, s.c.address, s.c.reason, s.c.note, s.c.created_at).where(
        s.c.workspace_id == workspace_id
    )
    if channel:
        q = q.where(s.c.channel == channel)
    q = q.order_by(s.c.created_at.desc(), s.c.address).limit(limit)
    return [dict(r) for r in conn.execute(q).mappings()]
