"""The built-in channels, registered in ``registry.channels`` like any plugin's."""

from __future__ import annotations

from siyu.messaging.channels.base import Channel, ChannelEnv, Delivery, Outgoing
from siyu.registry import Registry

__all__ = ["Channel", "ChannelEnv", "Delivery", "Outgoing", "register"]


def register(registry: Registry) -> None:
    """Register the built-in channels and content checks."""
    from siyu.messaging.channels.email import EmailChannel
    from siyu.messaging.channels.outbox import OutboxChannel
    from siyu.messaging.channels.sms import SmsChannel
    from siyu.messaging.channels.webhook import WebhookChannel
    from siyu.messaging.channels.whatsapp import WhatsAppChannel
    from siyu.messaging.content import sms_opt_out

    for channel in (
        EmailChannel(),
        WhatsAppChannel(),
        SmsChannel(),
        WebhookChannel(),
        OutboxChannel(),
    ):
        registry.channels.register(channel.name, channel)
    registry.content_checks.register("sms_opt_out", sms_opt_out)
