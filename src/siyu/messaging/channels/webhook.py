"""Signed webhooks: the rendered message POSTed as JSON to the brand's own endpoint.

Headers: ``X-Siyu-Timestamp`` (Unix seconds), ``X-Siyu-Message-Id`` (stable per idempotency key:
receivers deduplicate on it) and ``X-Siyu-Signature: v1=<hex HMAC-SHA256(webhook_secret,
timestamp + "." + body)>``. Receivers recompute the HMAC over the raw body and reject old
timestamps. 2xx is delivered; 408, 429 and 5xx are retried; other 4xx fail.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from siyu.config import Settings
from siyu.messaging.channels.base import ChannelEnv, Delivery, Outgoing


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


class WebhookChannel:
    name = "webhook"
    atomic = False
    resend_safe = True  # receivers deduplicate on X-Siyu-Message-Id

    def consent_channel(self, settings: Settings) -> str | None:
        return None

    def address(self, customer: Mapping[str, Any], settings: Settings) -> str | None:
        return settings.webhook_url or None

    def deliver(self, env: ChannelEnv, messages: Sequence[Outgoing]) -> list[Delivery]:
        secret = env.settings.webhook_secret.get_secret_value()
        ts = str(int(env.now.timestamp()))
        out = []
        with httpx.Client(timeout=30) as client:
            for m in messages:
                body = json.dumps(
                    {
                        "message_id": m.message_id,
                        "idempotency_key": m.idempotency_key,
                        "customer_id": m.customer_id,
                        "template": m.template,
                        "locale": m.locale,
                        "subject": m.subject,
                        "text": m.text,
                        "html": m.html,
                    },
                    ensure_ascii=False,
                ).encode()
                headers = {
                    "Content-Type": "application/json",
                    "X-Siyu-Timestamp": ts,
                    "X-Siyu-Message-Id": m.message_id,
                    "X-Siyu-Signature": signature(secret, ts, body),
                }
                try:
                    resp = client.post(m.recipient, content=body, headers=headers)
                except httpx.HTTPError as exc:
                    out.append(
                        Delivery("retry", reason_code="endpoint_unavailable", reason=str(exc))
                    )
                    continue
                reason = f"webhook answered HTTP {resp.status_code}"
                if resp.is_success:
                    out.append(Delivery("sent", provider_message_id=m.message_id))
                elif resp.status_code in (408, 429) or resp.status_code >= 500:
                    out.append(Delivery("retry", reason_code="endpoint_unavailable", reason=reason))
                else:
                    out.append(Delivery("failed", reason_code="endpoint_rejected", reason=reason))
        return out
