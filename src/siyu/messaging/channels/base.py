"""What a channel is: something that delivers rendered messages and says what happened.

A channel gets a batch of :class:`Outgoing` messages (already checked by the send policy and
rendered) and returns one :class:`Delivery` per message, in order. It never raises for a
provider's refusal of one message: it maps the provider's error to ``retry`` (transient),
``failed`` (permanent) or ``suppress`` (the provider says this address must not be contacted
again), with the provider's code, so that every outcome can be explained.

``atomic`` channels (the outbox) deliver by writing rows in the database transaction that also
records the outcome, so their delivery happens exactly once. Other channels talk to a provider
over the network, after the message row was committed as ``sending``; a crash between the two
leaves a ``sending`` row that :mod:`siyu.messaging.send` resolves when the key comes back:
resent only by ``resend_safe`` channels, otherwise marked ``unknown`` and never resent blindly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    import sqlalchemy as sa

    from siyu.config import Settings
    from siyu.store.database import Database

DeliveryStatus = Literal["sent", "retry", "failed", "suppress"]


@dataclass(frozen=True)
class Outgoing:
    """One rendered message ready for its channel."""

    workspace_id: str
    message_id: str  # siyu's id, derived from the idempotency key
    idempotency_key: str
    customer_id: str
    recipient: str  # email address, E.164 phone number or URL
    purpose: str
    template: str
    locale: str
    subject: str | None
    text: str | None
    html: str | None
    whatsapp: Mapping[str, Any] | None = None  # approved template: name, language, components
    unsubscribe_url: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # channel facts from the policy step


@dataclass(frozen=True)
class Delivery:
    """What the provider said about one message."""

    status: DeliveryStatus
    provider_message_id: str | None = None
    reason_code: str | None = None  # stable, e.g. 'reengagement_required', 'rate_limited'
    reason: str | None = None  # for people, with the provider's own code and title
    retry_after: float | None = None  # seconds, when the provider said (Retry-After)
    # A suppression reason ('bounce', 'complaint', 'unsubscribe') when the provider's answer
    # means the address must never be contacted again (a hard bounce along a 'failed').
    suppress_as: str | None = None


@dataclass
class ChannelEnv:
    """What a channel may use while delivering one batch."""

    settings: Settings
    db: Database
    now: datetime
    conn: sa.Connection | None = None  # the recording transaction (atomic channels only)


class Channel(Protocol):
    """A delivery channel registered in ``registry.channels``."""

    name: str
    atomic: bool
    # Whether a message left in 'sending' by a crash may be sent again: only when the receiver
    # deduplicates on siyu's message id (webhooks carry it), never for SMTP, SMS or WhatsApp.
    resend_safe: bool

    def consent_channel(self, settings: Settings) -> str | None:
        """Whose consent and suppressions apply ('email', 'sms', 'whatsapp'); None when the
        message goes to the brand's own systems (webhook), not to the customer."""
        ...

    def address(self, customer: Mapping[str, Any], settings: Settings) -> str | None:
        """The customer's address on this channel, or None when there is none."""
        ...

    def deliver(self, env: ChannelEnv, messages: Sequence[Outgoing]) -> list[Delivery]:
        """Deliver a batch; one Delivery per message, in order."""
        ...
