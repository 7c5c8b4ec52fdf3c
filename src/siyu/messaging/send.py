"""Sending: claim under the idempotency key, check the policy, render, deliver, record.

``send_many`` is the primary path; it works on whole batches so that a journey can dispatch
thousands of messages a second:

1. **Claim** (one transaction): insert one ``messages`` row per new idempotency key with
   ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` (the database decides, so concurrent workers
   cannot both claim a key), and re-claim rows whose earlier attempt was deferred or is due for
   a retry. A key that is neither is a DUPLICATE: nothing is sent again.
2. **Policy** (set-based reads): customers, latest consents, suppressions and recent sends of
   the batch, then :mod:`siyu.messaging.policy` decides send / skip / defer for each message;
   templates are rendered and content checks run. Refusals are recorded with their reason.
3. **Deliver**: rows move from ``claimed`` to ``sending`` (guarded by this call's claim token)
   and are committed *before* the provider is called; then the provider's answers are recorded.
   Atomic channels (outbox) do all of this in one transaction.

A crash in step 1-2 leaves ``claimed`` rows that nothing was sent for; after ``CLAIM_TIMEOUT``
another attempt may re-claim them. A crash in step 3 leaves ``sending`` rows: whether the
provider got the message is unknown. When the key is requested again after ``CLAIM_TIMEOUT``,
a row of a ``resend_safe`` channel (webhooks: receivers deduplicate on the message id) is
re-claimed and sent again; any other becomes ``unknown`` (``outcome_unknown``) and is never
resent blindly: a possible loss is preferred to a certain duplicate in a customer's inbox.
"""

from __future__ import annotations

import hashlib
import random
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from jinja2 import TemplateError

from siyu.config import Settings, load_settings
from siyu.journeys.localtime import zone_of
from siyu.messaging import policy as pol
from siyu.messaging.channels.base import Channel, ChannelEnv, Delivery, Outgoing
from siyu.messaging.content import ContentInput
from siyu.messaging.contract import SendOutcome, SendRequest, SendStatus
from siyu.messaging.tables import any_of, messages, suppressions
from siyu.messaging.templates import MessageTemplate, load_templates, render_for
from siyu.messaging.unsubscribe import unsubscribe_url
from siyu.registry import registry
from siyu.store import bulk
from siyu.store.database import Database
from siyu.store.schema import customers, workspaces

CLAIM_TIMEOUT = timedelta(minutes=10)
TS = pa.timestamp("us")
_M = messages.c

_rng = random.SystemRandom()


def message_id_for(workspace_id: str, idempotency_key: str) -> str:
    """siyu's message id: derived from the key, so every attempt of a key names the same row."""
    digest = hashlib.blake2b(f"{workspace_id}|{idempotency_key}".encode(), digest_size=16)
    return "m_" + digest.hexdigest()


def backoff(attempt: int, base: float) -> timedelta:
    """Exponential backoff with jitter: base * 2^(attempt-1), times 1 to 1.5."""
    return timedelta(seconds=base * 2 ** max(attempt - 1, 0) * (1 + _rng.random() / 2))


def _utc_naive(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(tzinfo=None) if now.tzinfo else now


def send(
    db: Database, request: SendRequest, *, now: datetime, settings: Settings | None = None
) -> SendOutcome:
    """Send one message (a batch of one, see :func:`send_many`)."""
    return send_many(db, [request], now=now, settings=settings)[0]


def send_many(
    db: Database,
    requests: Sequence[SendRequest],
    *,
    now: datetime,
    settings: Settings | None = None,
) -> list[SendOutcome]:
    """Send a batch; one outcome per request, in order (see the module docstring)."""
    settings = settings or load_settings()
    now = _utc_naive(now)
    outcomes: list[SendOutcome | None] = [None] * len(requests)
    seen: set[tuple[str, str]] = set()
    by_ws: dict[str, list[int]] = {}
    for i, req in enumerate(requests):
        key = (req.workspace_id, req.idempotency_key)
        if key in seen:
            outcomes[i] = SendOutcome(
                SendStatus.DUPLICATE,
                message_id_for(*key),
                reason_code="duplicate_in_batch",
                reason="The same idempotency key appears earlier in this batch.",
            )
            continue
        seen.add(key)
        if req.channel not in registry.channels:
            outcomes[i] = SendOutcome(
                SendStatus.FAILED,
                reason_code="unknown_channel",
                reason=f"No channel '{req.channel}' (known: "
                f"{', '.join(registry.channels.names())}).",
            )
            continue
        by_ws.setdefault(req.workspace_id, []).append(i)
    for ws, idxs in by_ws.items():
        _Batch(db, settings, ws, now, [(i, requests[i]) for i in idxs], outcomes).run()
    assert all(o is not None for o in outcomes)
    return [o for o in outcomes if o is not None]


@dataclass
class _Msg:
    index: int
    req: SendRequest
    message_id: str
    outgoing: Outgoing | None = None


class _Batch:
    """One workspace's part of a send_many call."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        workspace_id: str,
        now: datetime,
        items: list[tuple[int, SendRequest]],
        outcomes: list[SendOutcome | None],
    ) -> None:
        self.db, self.settings, self.ws, self.now = db, settings, workspace_id, now
        self.items = items
        self.outcomes = outcomes
        self.token = secrets.token_hex(10)

    # -- 1. claim ---------------------------------------------------------------------------
    def run(self) -> None:
        claimed = self._claim()
        if not claimed:
            return
        to_send = self._decide(claimed)
        by_channel: dict[str, list[_Msg]] = {}
        for m in to_send:
            by_channel.setdefault(m.req.channel, []).append(m)
        for name, msgs in by_channel.items():
            self._deliver(registry.channels.get(name), msgs)

    def _claim(self) -> list[_Msg]:
        msgs = {
            message_id_for(self.ws, r.idempotency_key): _Msg(
                i, r, message_id_for(self.ws, r.idempotency_key)
            )
            for i, r in self.items
        }
        n = len(self.items)
        reqs = [r for _, r in self.items]
        data = pa.table(
            {
                "workspace_id": pa.array([self.ws] * n, pa.string()),
                "message_id": pa.array(list(msgs), pa.string()),
                "idempotency_key": pa.array([r.idempotency_key for r in reqs], pa.string()),
                "customer_id": pa.array([r.customer_id for r in reqs], pa.string()),
                "channel": pa.array([r.channel for r in reqs], pa.string()),
                "purpose": pa.array([r.purpose for r in reqs], pa.string()),
                "template": pa.array([r.template for r in reqs], pa.string()),
                "journey_id": pa.array([r.journey_id for r in reqs], pa.string()),
                "journey_version": pa.array([r.journey_version for r in reqs], pa.int32()),
                "step_id": pa.array([r.step_id for r in reqs], pa.string()),
                "status": pa.array(["claimed"] * n, pa.string()),
                "attempts": pa.array([0] * n, pa.int32()),
                "claim_token": pa.array([self.token] * n, pa.string()),
                "created_at": pa.array([self.now] * n, TS),
                "updated_at": pa.array([self.now] * n, TS),
            }
        )
        with self.db.engine.begin() as conn:
            inserted = {k[0] for k in bulk.insert_new(conn, messages, data, ("message_id",))}
            rest = sorted(set(msgs) - inserted)
            reclaimed: set[str] = set()
            existing: dict[str, Any] = {}
            if rest:
                stale = self.now - CLAIM_TIMEOUT
                conn.execute(
                    messages.update()
                    .where(
                        _M.workspace_id == self.ws,
                        any_of(_M.message_id, rest),
                        _M.status == "sending",
                        _M.updated_at < stale,
                        _M.channel.not_in(_resend_safe()),
                    )
                    .values(
                        status="unknown",
                        claim_token=None,
                        reason_code="outcome_unknown",
                        reason="The sender stopped while the provider was being called, so "
                        "whether the message went out is unknown; it is not sent again "
                        "(a duplicate in the customer's inbox is worse than a possible loss).",
                        updated_at=self.now,
                    )
                )
                due = sa.or_(_M.retry_at.is_(None), _M.retry_at <= self.now)
                res = conn.execute(
                    messages.update()
                    .where(
                        _M.workspace_id == self.ws,
                        any_of(_M.message_id, rest),
                        sa.or_(
                            sa.and_(_M.status.in_(("deferred", "retry")), due),
                            sa.and_(_M.status == "claimed", _M.updated_at < stale),
                            sa.and_(
                                _M.status == "sending",
                                _M.updated_at < stale,
                                _M.channel.in_(_resend_safe()),
                            ),
                        ),
                    )
                    .values(status="claimed", claim_token=self.token, updated_at=self.now)
                    .returning(_M.message_id)
                )
                reclaimed = {row[0] for row in res}
                others = sorted(set(rest) - reclaimed)
                if others:
                    existing = {
                        row.message_id: row
                        for row in conn.execute(
                            sa.select(messages).where(
                                _M.workspace_id == self.ws, any_of(_M.message_id, others)
                            )
                        )
                    }
        for mid, row in existing.items():
            self.outcomes[msgs[mid].index] = _existing_outcome(row)
        return [m for mid, m in msgs.items() if mid in inserted or mid in reclaimed]

    # -- 2. policy and rendering --------------------------------------------------------------
    def _decide(self, claimed: list[_Msg]) -> list[_Msg]:
        s = self.settings
        channels: dict[str, Channel] = {
            m.req.channel: registry.channels.get(m.req.channel) for m in claimed
        }
        consent_of = {name: ch.consent_channel(s) for name, ch in channels.items()}
        ids = sorted({m.req.customer_id for m in claimed})
        caps = pol.Caps.from_settings(s)
        with self.db.engine.connect() as conn:
            custs = {
                row["customer_id"]: dict(row)
                for row in conn.execute(
                    sa.select(customers).where(
                        customers.c.workspace_id == self.ws, any_of(customers.c.customer_id, ids)
                    )
                ).mappings()
            }
            ws_row = (
                conn.execute(sa.select(workspaces).where(workspaces.c.workspace_id == self.ws))
                .mappings()
                .first()
            )
            region = str(ws_row["default_region"]) if ws_row else s.default_region
            addresses: dict[str, str | None] = {}
            for m in claimed:
                cust = custs.get(m.req.customer_id)
                addresses[m.message_id] = (
                    None if cust is None else channels[m.req.channel].address(cust, s)
                )
            pairs = [
                (consent_of[m.req.channel] or "", a)
                for m in claimed
                if (a := addresses[m.message_id])
            ]
            facts = pol.load_facts(
                conn,
                self.ws,
                ids,
                [c for c in consent_of.values() if c],
                pairs,
                list(channels),
                self.now - max(caps.window, timedelta(days=2)),
            )
            templates = load_templates(conn, self.ws, {m.req.template for m in claimed})
        ws_vars = dict(ws_row) if ws_row else {}
        decided: list[tuple[_Msg, pol.Decision | None, str | None]] = []
        to_send: list[_Msg] = []
        checks = list(registry.content_checks.items())
        for m in claimed:
            req = m.req
            cust = custs.get(req.customer_id)
            address = addresses[m.message_id]
            cch = consent_of[req.channel]
            d = self._policy(m, cust, address, cch, region, facts, caps, templates)
            if d is not None:
                decided.append((m, d, None))
                continue
            assert cust is not None
            assert address is not None
            t = templates[req.template]
            zone = pol.customer_zone(cust, region)
            unsub = unsubscribe_url(s, self.ws, req.customer_id, cch or req.channel, m.message_id)
            variables = {
                **req.context,
                "workspace": ws_vars,
                "unsubscribe_url": unsub,
            }
            try:
                rendered = render_for(t, cust, variables, zone_of(zone), t.default_locale)
            except (TemplateError, ValueError, TypeError) as exc:
                decided.append(
                    (
                        m,
                        pol.Decision(
                            "skip",
                            "template_error",
                            f"Template '{req.template}' failed to render: {exc}",
                        ),
                        "failed",
                    )
                )
                continue
            problem = None
            for name, check in checks:
                found = check(
                    ContentInput(cch or req.channel, req.purpose, cust["country"], rendered)
                )
                if found:
                    problem = f"content check '{name}': {found}"
                    break
            if problem:
                decided.append((m, pol.Decision("skip", "content_rule", problem), "failed"))
                continue
            if req.purpose == "marketing":
                facts.recent.setdefault((req.customer_id, req.channel), []).append(self.now)
            m.outgoing = Outgoing(
                workspace_id=self.ws,
                message_id=m.message_id,
                idempotency_key=req.idempotency_key,
                customer_id=req.customer_id,
                recipient=address,
                purpose=req.purpose,
                template=req.template,
                locale=rendered.locale,
                subject=rendered.subject,
                text=rendered.text,
                html=rendered.html,
                whatsapp=rendered.whatsapp,
                unsubscribe_url=unsub if req.purpose == "marketing" else None,
            )
            to_send.append(m)
        self._record_decisions(decided)
        return to_send

    def _policy(
        self,
        m: _Msg,
        cust: Mapping[str, Any] | None,
        address: str | None,
        cch: str | None,
        region: str,
        facts: pol.Facts,
        caps: pol.Caps,
        templates: Mapping[str, MessageTemplate],
    ) -> pol.Decision | None:
        req = m.req
        if cust is None:
            return pol.Decision(
                "skip", "unknown_customer", f"No customer '{req.customer_id}' in this workspace."
            )
        if req.template not in templates:
            return pol.Decision(
                "skip", "template_missing", f"No message template named '{req.template}'."
            )
        if address is None:
            return pol.Decision(
                "skip",
                "no_address",
                f"The customer has no address for the {cch or req.channel} channel.",
            )
        if cch is not None:
            d = pol.consent_decision(
                req.purpose,
                cch,
                cust.get("country") or region,
                facts.consents.get(req.customer_id, {}),
            )
            if d.action != "send":
                return d
            why = facts.suppressed.get((cch, address))
            if why is not None:
                return pol.Decision(
                    "skip", "suppressed", f"{address} is on the {cch} suppression list ({why})."
                )
        # Caps and quiet hours protect the customer's attention: they apply to channels that
        # reach the customer, not to a webhook into the brand's own systems.
        if req.purpose == "marketing" and cch is not None:
            zone = pol.customer_zone(cust, region)
            sent = facts.recent.get((req.customer_id, req.channel), [])
            d = pol.timing_decision(self.now, zone, sent, caps, req.channel)
            if d.action != "send":
                return d
        return None

    def _record_decisions(
        self, decided: list[tuple[_Msg, pol.Decision | None, str | None]]
    ) -> None:
        rows = []
        for m, d, status_override in decided:
            assert d is not None
            if status_override == "failed" or d.reason_code == "template_missing":
                status, outcome = "failed", SendStatus.FAILED
            elif d.action == "defer":
                status, outcome = "deferred", SendStatus.DEFERRED
            else:
                status, outcome = "skipped", SendStatus.SKIPPED
            rows.append(
                {
                    "message_id": m.message_id,
                    "status": status,
                    "reason_code": d.reason_code,
                    "reason": d.reason,
                    "retry_at": d.retry_at,
                    "failed_at": self.now if status == "failed" else None,
                }
            )
            self.outcomes[m.index] = SendOutcome(
                outcome, m.message_id, None, d.reason_code, d.reason, d.retry_at
            )
        if rows:
            with self.db.engine.begin() as conn:
                _update(conn, self.ws, rows, self.now, token=self.token, from_status="claimed")

    # -- 3. delivery --------------------------------------------------------------------------
    def _deliver(self, ch: Channel, msgs: list[_Msg]) -> None:
        env = ChannelEnv(self.settings, self.db, self.now)
        starting = [
            {
                "message_id": m.message_id,
                "status": "sending",
                "locale": m.outgoing.locale if m.outgoing else None,
                "recipient": m.outgoing.recipient if m.outgoing else None,
                "subject": m.outgoing.subject if m.outgoing else None,
                "body": m.outgoing.text if m.outgoing else None,
                "reason_code": None,
                "reason": None,
                "retry_at": None,
            }
            for m in msgs
        ]
        if ch.atomic:
            with self.db.engine.begin() as conn:
                mine = _update(
                    conn,
                    self.ws,
                    starting,
                    self.now,
                    token=self.token,
                    from_status="claimed",
                    attempt=True,
                )
                go = [m for m in msgs if m.message_id in mine]
                env.conn = conn
                deliveries = ch.deliver(env, [m.outgoing for m in go if m.outgoing])
                self._record_deliveries(conn, go, deliveries, mine)
            return
        with self.db.engine.begin() as conn:
            mine = _update(
                conn,
                self.ws,
                starting,
                self.now,
                token=self.token,
                from_status="claimed",
                attempt=True,
            )
        go = [m for m in msgs if m.message_id in mine]
        deliveries = ch.deliver(env, [m.outgoing for m in go if m.outgoing])
        with self.db.engine.begin() as conn:
            self._record_deliveries(conn, go, deliveries, mine)
            # optional hook: a channel whose status callbacks may beat this bookkeeping
            after = getattr(ch, "after_record", None)
            if after is not None:
                ids = [d.provider_message_id for d in deliveries if d.status == "sent"]
                after(conn, self.ws, [i for i in ids if i])

    def _record_deliveries(
        self,
        conn: sa.Connection,
        msgs: list[_Msg],
        deliveries: list[Delivery],
        attempts: Mapping[str, int],
    ) -> None:
        """Record the provider's answers; ``attempts`` per message id counts this one."""
        if len(deliveries) != len(msgs):
            raise RuntimeError("a channel returned a different number of deliveries")
        rows = []
        suppress = []
        max_attempts = self.settings.messaging_max_attempts
        for m, d in zip(msgs, deliveries, strict=True):
            row: dict[str, Any] = {
                "message_id": m.message_id,
                "provider_message_id": d.provider_message_id,
                "reason_code": d.reason_code,
                "reason": d.reason,
            }
            n = attempts.get(m.message_id, 1)
            if d.status == "sent":
                row.update(status="sent", sent_at=self.now)
                out = SendOutcome(SendStatus.SENT, m.message_id, d.provider_message_id)
            elif d.status == "retry" and n < max_attempts:
                wait = backoff(n, self.settings.messaging_retry_base_seconds)
                if d.retry_after:
                    wait = max(wait, timedelta(seconds=d.retry_after))
                row.update(status="retry", retry_at=self.now + wait)
                out = SendOutcome(
                    SendStatus.RETRY,
                    m.message_id,
                    None,
                    d.reason_code,
                    d.reason,
                    self.now + wait,
                )
            elif d.status == "suppress":
                row.update(status="skipped")
                if m.outgoing is not None:
                    suppress.append((m, d))
                out = SendOutcome(SendStatus.SKIPPED, m.message_id, None, d.reason_code, d.reason)
            else:
                if d.suppress_as and m.outgoing is not None:  # a hard bounce: never again
                    suppress.append((m, d))
                code = d.reason_code
                reason = d.reason
                if d.status == "retry":
                    code = "retries_exhausted"
                    reason = f"gave up after {n} attempts; last error: {d.reason}"
                row.update(status="failed", failed_at=self.now, reason_code=code, reason=reason)
                out = SendOutcome(SendStatus.FAILED, m.message_id, None, code, reason)
            rows.append(row)
            self.outcomes[m.index] = out
        _update(conn, self.ws, rows, self.now, token=self.token, from_status="sending")
        if suppress:
            chans = {m.req.channel: registry.channels.get(m.req.channel) for m, _ in suppress}
            data = pa.table(
                {
                    "workspace_id": pa.array([self.ws] * len(suppress), pa.string()),
                    "channel": pa.array(
                        [
                            chans[m.req.channel].consent_channel(self.settings) or m.req.channel
                            for m, _ in suppress
                        ],
                        pa.string(),
                    ),
                    "address": pa.array(
                        [m.outgoing.recipient for m, _ in suppress if m.outgoing], pa.string()
                    ),
                    "reason": pa.array(
                        [d.suppress_as or "unsubscribe" for _, d in suppress], pa.string()
                    ),
                    "note": pa.array([d.reason for _, d in suppress], pa.string()),
                    "created_at": pa.array([self.now] * len(suppress), TS),
                }
            )
            bulk.append_new(conn, suppressions, _dedupe(data, ("channel", "address")))


def _dedupe(data: pa.Table, key: Sequence[str]) -> pa.Table:
    seen: set[tuple[Any, ...]] = set()
    keep = []
    cols = [data[k].to_pylist() for k in key]
    for i, k in enumerate(zip(*cols, strict=True)):
        if k not in seen:
            seen.add(k)
            keep.append(i)
    return data.take(keep)


_TYPES: dict[str, pa.DataType] = {
    "attempts": pa.int32(),
    "retry_at": TS,
    "sent_at": TS,
    "failed_at": TS,
    "delivered_at": TS,
    "read_at": TS,
    "updated_at": TS,
}


def _update(
    conn: sa.Connection,
    workspace_id: str,
    rows: list[dict[str, Any]],
    now: datetime,
    *,
    token: str,
    from_status: str,
    attempt: bool = False,
) -> dict[str, int]:
    """Set per-row columns on messages this call holds; return the updated ids -> attempts.

    Only rows still in ``from_status`` under this call's claim token change: a row another
    worker re-claimed (after CLAIM_TIMEOUT) is left alone.
    """
    if not rows:
        return {}
    cols = sorted({k for r in rows for k in r} - {"message_id"})
    data = pa.table(
        {
            "message_id": pa.array([r["message_id"] for r in rows], pa.string()),
            **{c: pa.array([r.get(c) for r in rows], _TYPES.get(c, pa.string())) for c in cols},
        }
    )
    name = bulk.stage(conn, messages, data)
    sets = [f'"{c}" = s."{c}"' for c in cols] + ["updated_at = :now"]
    if attempt:
        sets.append("attempts = messages.attempts + 1")
    if from_status == "sending":
        sets.append("claim_token = NULL")
    try:
        result = conn.execute(
            sa.text(
                f"UPDATE messages SET {', '.join(sets)} FROM {name} AS s "
                "WHERE messages.workspace_id = :ws AND messages.message_id = s.message_id "
                "AND messages.claim_token = :token AND messages.status = :from_status "
                "RETURNING messages.message_id, messages.attempts"
            ),
            {"ws": workspace_id, "token": token, "from_status": from_status, "now": now},
        )
        return {row[0]: row[1] for row in result}
    finally:
        bulk.unstage(conn, name)


def _resend_safe() -> list[str]:
    """Channels whose receivers deduplicate on siyu's message id (a crash may be resent)."""
    return [name for name, ch in registry.channels.items() if ch.resend_safe]


def _existing_outcome(row: Any) -> SendOutcome:
    """What a repeated request for a key that is not claimable gets."""
    if row.status == "deferred":
        return SendOutcome(
            SendStatus.DEFERRED, row.message_id, None, row.reason_code, row.reason, row.retry_at
        )
    if row.status == "retry":
        return SendOutcome(
            SendStatus.RETRY, row.message_id, None, row.reason_code, row.reason, row.retry_at
        )
    if row.status == "unknown":
        return SendOutcome(SendStatus.DUPLICATE, row.message_id, None, row.reason_code, row.reason)
    return SendOutcome(
        SendStatus.DUPLICATE,
        row.message_id,
        row.provider_message_id,
        "duplicate",
        f"This idempotency key was already used (message {row.message_id} is {row.status}); "
        "nothing was sent again.",
    )
