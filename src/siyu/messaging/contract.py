"""The contract between whoever decides to send (journeys, campaigns) and the messaging slice.

Journeys decide *what* to send and *when*; :func:`siyu.messaging.send.send` decides whether the
message may go out right now (consent, suppression, frequency caps, quiet hours, content rules),
renders it, hands it to the channel, and records the outcome under the request's idempotency key.
Keeping this boundary small lets each side be tested on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

Purpose = Literal["marketing", "transactional"]


class SendStatus(StrEnum):
    """What happened to one send request."""

    SENT = "sent"  # accepted by the channel (provider message id recorded)
    DUPLICATE = "duplicate"  # the idempotency key was already used: nothing sent again
    SKIPPED = "skipped"  # the policy refused (no consent, suppressed, cap): never sent
    DEFERRED = "deferred"  # the policy postponed it (quiet hours, cap window): retry at retry_at
    RETRY = "retry"  # a transient provider error: retry at retry_at with backoff
    FAILED = "failed"  # a permanent provider error (undeliverable, bad template): dead


@dataclass(frozen=True)
class SendRequest:
    """One message to one customer, identified for idempotency."""

    workspace_id: str
    customer_id: str
    channel: str  # a key of registry.channels: email, whatsapp, sms, webhook, outbox
    purpose: Purpose
    template: str  # name of a message template of the workspace
    idempotency_key: str  # e.g. "journey:version:enrollment:step"; unique per workspace
    journey_id: str | None = None
    journey_version: int | None = None
    step_id: str | None = None
    attempt: int = 1
    context: Mapping[str, Any] = field(default_factory=dict)  # extra template variables


@dataclass(frozen=True)
class SendOutcome:
    """The result of a send: reason_code is stable for programs, reason is for people."""

    status: SendStatus
    message_id: str | None = None
    provider_message_id: str | None = None
    reason_code: str | None = None
    reason: str | None = None
    retry_at: datetime | None = None
