"""The outbox channel: messages become rows of the ``outbox`` table (and optionally JSONL lines).

For the demo, dry runs and benchmarks: everything a real send does (policy, rendering,
idempotency, records) happens, but the "provider" is a table written in the same transaction as
the message's status, so each message lands in the outbox exactly once. The optional JSONL file
(``messaging_outbox_file``) is a convenience copy written after the rows; the table is the truth.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from siyu.config import Settings
from siyu.messaging.channels.base import ChannelEnv, Delivery, Outgoing
from siyu.messaging.channels.email import EmailChannel
from siyu.messaging.channels.sms import phone_address
from siyu.messaging.tables import outbox
from siyu.store import bulk


class OutboxChannel:
    name = "outbox"
    atomic = True
    resend_safe = True

    def consent_channel(self, settings: Settings) -> str | None:
        return settings.messaging_outbox_as

    def address(self, customer: Mapping[str, Any], settings: Settings) -> str | None:
        if settings.messaging_outbox_as == "email":
            return EmailChannel.address_of(customer)
        return phone_address(customer)

    def deliver(self, env: ChannelEnv, messages: Sequence[Outgoing]) -> list[Delivery]:
        assert env.conn is not None, "the outbox writes inside the recording transaction"
        if not messages:
            return []
        n = len(messages)
        data = pa.table(
            {
                "workspace_id": pa.array([m.workspace_id for m in messages], pa.string()),
                "message_id": pa.array([m.message_id for m in messages], pa.string()),
                "channel": pa.array([env.settings.messaging_outbox_as] * n, pa.string()),
                "customer_id": pa.array([m.customer_id for m in messages], pa.string()),
                "recipient": pa.array([m.recipient for m in messages], pa.string()),
                "subject": pa.array([m.subject for m in messages], pa.string()),
                "body": pa.array([m.text for m in messages], pa.string()),
                "html": pa.array([m.html for m in messages], pa.string()),
                "created_at": pa.array([env.now] * n, pa.timestamp("us")),
            }
        )
        bulk.append(env.conn, outbox, data)
        if env.settings.messaging_outbox_file:
            path = Path(env.settings.messaging_outbox_file)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as fh:
                for m in messages:
                    fh.write(json.dumps(_line(m, env), ensure_ascii=False) + "\n")
        return [Delivery("sent", provider_message_id=f"outbox:{m.message_id}") for m in messages]


def _line(m: Outgoing, env: ChannelEnv) -> dict[str, Any]:
    return {
        "message_id": m.message_id,
        "idempotency_key": m.idempotency_key,
        "customer_id": m.customer_id,
        "recipient": m.recipient,
        "template": m.template,
        "locale": m.locale,
        "subject": m.subject,
        "text": m.text,
        "html": m.html,
        "whatsapp": m.whatsapp,
        "created_at": env.now.isoformat() + "Z",
    }
