"""The send policy, evaluated for a whole batch at the moment of sending.

For each request the policy answers: send now, skip (never send), defer (send later, at a given
moment) -- always with a stable ``reason_code`` and a sentence a person can read. The facts come
from a handful of set-based queries per batch (customers, the latest consent per purpose and
channel, suppressions, recent sends); the decision itself is a small function of those facts.

Consent under the customer's region policy (``REGIMES``):
- EU/EEA, UK and any region siyu has no rule for: opt-in (a grant is required);
- US: email is opt-out (allowed unless withdrawn or denied), SMS and WhatsApp opt-in;
- CN (PIPL): separate consent: the latest record must be a grant for exactly this channel (a
  blanket 'all' grant is not enough).
The latest record per (purpose, channel) wins, records for channel 'all' count for every
channel, and a withdrawal or denial is never overridden by a region's default. Transactional
messages need no grant but respect a withdrawal of transactional consent.

Suppressions (bounces, complaints, manual) apply to every purpose. Frequency caps and quiet hours
apply to marketing only: transactional messages (an order confirmation) go out at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any, Literal

import sqlalchemy as sa

from siyu.config import Settings
from siyu.journeys.localtime import COUNTRY_ZONES, zone_of
from siyu.messaging.tables import any_of, messages, suppressions
from siyu.store.schema import consents

Regime = Literal["opt_in", "opt_out", "separate"]
EEA: frozenset[str] = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "HR",
        "CY",
        "CZ",
        "DK",
        "EE",
        "FI",
        "FR",
        "DE",
        "GR",
        "HU",
        "IE",
        "IT",
        "LV",
        "LT",
        "LU",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SK",
        "SI",
        "ES",
        "SE",
        "IS",
        "LI",
        "NO",
    ]
)
RESTRICTIVE = ("denied", "withdrawn")
# Statuses of a message that count as sent for frequency caps.
SENT_LIKE = ("sending", "sent", "delivered", "read", "unknown")


def regime(country: str | None, channel: str) -> tuple[str, Regime]:
    """(region name, consent regime) for a customer's country and a consent channel."""
    c = (country or "").upper()
    if c in EEA:
        return "EU/EEA", "opt_in"
    if c == "GB":
        return "UK", "opt_in"
    if c == "US":
        return "US", "opt_out" if channel == "email" else "opt_in"
    if c == "CN":
        return "China (PIPL)", "separate"
    return (c or "unknown"), "opt_in"


@dataclass(frozen=True)
class Decision:
    """send, skip or defer, with why."""

    action: Literal["send", "skip", "defer"]
    reason_code: str | None = None
    reason: str | None = None
    retry_at: datetime | None = None


SEND = Decision("send")


@dataclass(frozen=True)
class ConsentRecord:
    channel: str
    status: str
    timestamp: datetime


def consent_decision(
    purpose: str,
    channel: str,
    country: str | None,
    latest: Mapping[tuple[str, str], ConsentRecord],
) -> Decision:
    """Consent for one message, from the latest record per (purpose, channel) of the customer."""
    candidates = [latest[k] for k in ((purpose, channel), (purpose, "all")) if k in latest]
    last = max(candidates, key=lambda c: c.timestamp) if candidates else None
    region, kind = regime(country, channel)
    if last is not None and last.status in RESTRICTIVE:
        return Decision(
            "skip",
            "consent_withdrawn",
            f"{purpose} consent for {channel} was {last.status} on "
            f"{last.timestamp:%Y-%m-%d %H:%M} UTC (channel '{last.channel}').",
        )
    if purpose == "transactional" or kind == "opt_out":
        return SEND
    if last is None:
        return Decision(
            "skip",
            "consent_missing",
            f"{region} requires opt-in {purpose} consent for {channel}; the customer has not "
            "granted it.",
        )
    if kind == "separate" and last.channel != channel:
        return Decision(
            "skip",
            "consent_not_separate",
            f"{region} requires separate consent for {channel}; the customer's grant covers "
            f"'{last.channel}' only.",
        )
    return SEND


def _hm(value: str) -> time:
    h, m = value.split(":")
    return time(int(h), int(m))


def in_quiet_hours(local: datetime, start: time, end: time) -> bool:
    t = local.time()
    if start == end:
        return False
    if start < end:
        return start <= t < end
    return t >= start or t < end


def quiet_end_utc(now: datetime, zone: str, start: time, end: time) -> datetime | None:
    """The end of the quiet window ``now`` falls in (UTC, naive), or None when not quiet."""
    from zoneinfo import ZoneInfo

    tz = zone_of(zone)
    local = now.replace(tzinfo=ZoneInfo("UTC")).astimezone(tz)
    if not in_quiet_hours(local, start, end):
        return None
    day = local.date() if local.time() < end else local.date() + timedelta(days=1)
    wake = datetime.combine(day, end, tzinfo=tz)
    return wake.astimezone(ZoneInfo("UTC")).replace(tzinfo=None)


def local_day_bounds(now: datetime, zone: str) -> tuple[datetime, datetime]:
    """UTC start of the customer's local day containing ``now`` and of the next one."""
    from zoneinfo import ZoneInfo

    tz = zone_of(zone)
    local = now.replace(tzinfo=ZoneInfo("UTC")).astimezone(tz)
    start = datetime.combine(local.date(), time(0), tzinfo=tz)
    nxt = datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=tz)
    utc = ZoneInfo("UTC")
    return (
        start.astimezone(utc).replace(tzinfo=None),
        nxt.astimezone(utc).replace(tzinfo=None),
    )


@dataclass
class Facts:
    """What the policy needs about a batch's customers, loaded set-based."""

    consents: dict[str, dict[tuple[str, str], ConsentRecord]]  # customer -> latest per key
    suppressed: dict[tuple[str, str], str]  # (channel, address) -> reason
    recent: dict[tuple[str, str], list[datetime]]  # (customer, channel) -> marketing send times


def load_facts(
    conn: sa.Connection,
    workspace_id: str,
    customer_ids: Sequence[str],
    consent_channels: Sequence[str],
    addresses: Sequence[tuple[str, str]],
    send_channels: Sequence[str],
    since: datetime,
) -> Facts:
    ids = sorted(set(customer_ids))
    out = Facts({}, {}, {})
    if not ids:
        return out
    chans = sorted({*consent_channels, "all"})
    rn = (
        sa.func.row_number()
        .over(
            partition_by=(consents.c.customer_id, consents.c.purpose, consents.c.channel),
            order_by=(consents.c.timestamp.desc(), consents.c.consent_id.desc()),
        )
        .label("rn")
    )
    inner = (
        sa.select(
            consents.c.customer_id,
            consents.c.purpose,
            consents.c.channel,
            consents.c.status,
            consents.c.timestamp,
            rn,
        )
        .where(
            consents.c.workspace_id == workspace_id,
            any_of(consents.c.customer_id, ids),
            consents.c.channel.in_(chans),
        )
        .subquery()
    )
    for row in conn.execute(sa.select(inner).where(inner.c.rn == 1)):
        out.consents.setdefault(row.customer_id, {})[(row.purpose, row.channel)] = ConsentRecord(
            row.channel, row.status, row.timestamp
        )
    addr = sorted({a for _, a in addresses if a})
    if addr:
        s = suppressions
        for row in conn.execute(
            sa.select(s.c.channel, s.c.address, s.c.reason).where(
                s.c.workspace_id == workspace_id, any_of(s.c.address, addr)
            )
        ):
            out.suppressed[(row.channel, row.address)] = row.reason
    m = messages
    for row in conn.execute(
        sa.select(m.c.customer_id, m.c.channel, m.c.sent_at).where(
            m.c.workspace_id == workspace_id,
            any_of(m.c.customer_id, ids),
            m.c.channel.in_(sorted(set(send_channels))),
            m.c.purpose == "marketing",
            m.c.status.in_(SENT_LIKE),
            m.c.sent_at >= since,
        )
    ):
        out.recent.setdefault((row.customer_id, row.channel), []).append(row.sent_at)
    return out


@dataclass(frozen=True)
class Caps:
    per_day: int
    per_window: int
    window: timedelta
    quiet_start: time
    quiet_end: time

    @classmethod
    def from_settings(cls, s: Settings) -> Caps:
        return cls(
            s.messaging_cap_per_day,
            s.messaging_cap_per_window,
            timedelta(hours=s.messaging_cap_window_hours),
            _hm(s.messaging_quiet_start),
            _hm(s.messaging_quiet_end),
        )


def customer_zone(customer: Mapping[str, Any], default_region: str) -> str:
    """The customer's zone name: their own, else their country's, else the workspace region's."""
    tz = customer.get("timezone")
    if tz:
        return str(tz)
    country = customer.get("country") or default_region
    return COUNTRY_ZONES.get(str(country).upper(), COUNTRY_ZONES.get(default_region, "UTC"))


def timing_decision(
    now: datetime, zone: str, sent_times: list[datetime], caps: Caps, channel: str
) -> Decision:
    """Frequency caps and quiet hours for one marketing message."""
    if caps.per_window and sum(t >= now - caps.window for t in sent_times) >= caps.per_window:
        hours = int(caps.window.total_seconds() // 3600)
        return Decision(
            "skip",
            "frequency_cap_window",
            f"The customer already got {caps.per_window} marketing messages on {channel} in "
            f"the last {hours} hours (messaging_cap_per_window).",
        )
    wake = quiet_end_utc(now, zone, caps.quiet_start, caps.quiet_end)
    if wake is not None:
        return Decision(
            "defer",
            "quiet_hours",
            f"{caps.quiet_start:%H:%M}-{caps.quiet_end:%H:%M} are quiet hours in {zone}; "
            "deferred to their end.",
            wake,
        )
    day_start, next_day = local_day_bounds(now, zone)
    if caps.per_day and sum(t >= day_start for t in sent_times) >= caps.per_day:
        at = quiet_end_utc(next_day, zone, caps.quiet_start, caps.quiet_end) or next_day
        return Decision(
            "defer",
            "frequency_cap_day",
            f"The customer already got {caps.per_day} marketing messages on {channel} today "
            f"(local day in {zone}, messaging_cap_per_day); deferred to the next day.",
            at,
        )
    return SEND
