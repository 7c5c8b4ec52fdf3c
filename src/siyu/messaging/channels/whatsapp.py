"""WhatsApp Cloud API: approved templates outside the 24-hour window, free-form text inside it.

``POST {whatsapp_base_url}/{version}/{phone_number_id}/messages`` with a Bearer token and a JSON
body (``messaging_product: whatsapp``, ``to``, ``type: template | text``). The customer-service
window is 24 hours from the customer's last inbound WhatsApp message (the ``Message Received``
events the WhatsApp webhook records): inside it a variant's free-form ``text`` is sent, outside it
only the variant's approved template (name, language code, components). A message that has
neither option fails with ``outside_service_window`` instead of being refused by Meta.

Sends from one business number are paced to ``whatsapp_rate_per_second`` (Meta's per-number
throughput). Graph error codes map to outcomes in ``ERRORS``. Status callbacks (sent, delivered,
read, failed) come back through the WhatsApp webhook and update the message row
(:func:`siyu.messaging.status.apply_whatsapp_statuses`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa

from siyu.config import Settings
from siyu.messaging.channels.base import ChannelEnv, Delivery, DeliveryStatus, Outgoing
from siyu.messaging.channels.sms import phone_address
from siyu.messaging.tables import any_of
from siyu.store.schema import events

SERVICE_WINDOW = timedelta(hours=24)
ERRORS: dict[int, tuple[DeliveryStatus, str]] = {
    131047: ("failed", "reengagement_required"),
    131026: ("failed", "undeliverable"),
    130429: ("retry", "rate_limited"),
    131056: ("retry", "rate_limited"),
    80007: ("retry", "rate_limited"),
    132000: ("failed", "template_params_mismatch"),
    132001: ("failed", "template_missing"),
    190: ("failed", "auth_failed"),
}


class Pacer:
    """At most ``rate`` calls per second per key (a business phone number), across the threads
    of this process: each call reserves the next free slot, then sleeps until it.

    ``clock`` and ``sleep`` default to the monotonic clock and ``time.sleep``; tests pass a
    simulated clock to check the spacing without measuring time.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._lock = threading.Lock()
        self._next: dict[str, float] = {}
        self._clock = clock
        self._sleep = sleep

    def wait(self, key: str, rate: float) -> float:
        """Block until this call may go; return the moment (clock time) it was given."""
        with self._lock:
            now = self._clock()
            at = max(now, self._next.get(key, now))
            self._next[key] = at + 1.0 / rate
        if at > now:
            self._sleep(at - now)
        return at


PACER = Pacer()


def map_error(http_status: int, body: Any) -> Delivery:
    err = body.get("error") if isinstance(body, dict) else None
    err = err if isinstance(err, dict) else {}
    code = err.get("code")
    details = (err.get("error_data") or {}).get("details") if isinstance(err, dict) else None
    reason = f"WhatsApp error {code or http_status}: {err.get('message') or 'no message'}" + (
        f" ({details})" if details else ""
    )
    if isinstance(code, int) and code in ERRORS:
        status, rc = ERRORS[code]
        return Delivery(status, reason_code=rc, reason=reason)
    if http_status == 429 or http_status >= 500:
        return Delivery("retry", reason_code="provider_unavailable", reason=reason)
    return Delivery("failed", reason_code="provider_rejected", reason=reason)


def last_inbound(
    conn: sa.Connection, workspace_id: str, customer_ids: Sequence[str], wa_ids: Sequence[str]
) -> dict[str, datetime]:
    """The last inbound WhatsApp message (opens the 24-hour window) per customer id and per
    WhatsApp number.

    Meta keeps the window per WhatsApp user, so a message from the number counts even while
    One-ID keeps the WhatsApp sender and the store's customer apart (two user ids never merge).
    """
    e = events.c
    base = sa.and_(
        e.workspace_id == workspace_id,
        e.event == "Message Received",
        e.message_id.like("whatsapp:%"),
    )
    by_customer = (
        sa.select(e.customer_id, sa.func.max(e.timestamp))
        .where(base, any_of(e.customer_id, customer_ids))
        .group_by(e.customer_id)
    )
    by_number = (
        sa.select(e.user_id, sa.func.max(e.timestamp))
        .where(base, any_of(e.user_id, wa_ids))
        .group_by(e.user_id)
    )
    out: dict[str, datetime] = {}
    for q in (by_customer, by_number):
        for key, at in conn.execute(q):
            if key is not None and (key not in out or at > out[key]):
                out[str(key)] = at
    return out


def payload(m: Outgoing, in_window: bool) -> dict[str, Any] | None:
    """The Cloud API body: free-form text inside the window, else the approved template."""
    to = m.recipient.lstrip("+")
    base = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to}
    if in_window and m.text:
        return {**base, "type": "text", "text": {"preview_url": False, "body": m.text}}
    if m.whatsapp:
        template: dict[str, Any] = {
            "name": m.whatsapp["name"],
            "language": {"code": m.whatsapp["language"]},
        }
        if m.whatsapp.get("components"):
            template["components"] = m.whatsapp["components"]
        return {**base, "type": "template", "template": template}
    return None


class WhatsAppChannel:
    name = "whatsapp"
    atomic = False
    resend_safe = False

    def consent_channel(self, settings: Settings) -> str | None:
        return "whatsapp"

    def address(self, customer: Mapping[str, Any], settings: Settings) -> str | None:
        return phone_address(customer)

    def after_record(
        self, conn: sa.Connection, workspace_id: str, provider_ids: Sequence[str]
    ) -> None:
        """Apply status callbacks that arrived before the sends were recorded."""
        from siyu.messaging.status import catch_up_whatsapp

        catch_up_whatsapp(conn, workspace_id, provider_ids)

    def deliver(self, env: ChannelEnv, messages: Sequence[Outgoing]) -> list[Delivery]:
        if not messages:
            return []
        s = env.settings
        with env.db.engine.connect() as conn:
            inbound = last_inbound(
                conn,
                messages[0].workspace_id,
                [m.customer_id for m in messages],
                [m.recipient.lstrip("+") for m in messages],
            )
        url = (
            f"{s.whatsapp_base_url.rstrip('/')}/{s.whatsapp_api_version}/"
            f"{s.whatsapp_phone_number_id}/messages"
        )
        headers = {"Authorization": f"Bearer {s.whatsapp_token.get_secret_value()}"}
        out = []
        with httpx.Client(timeout=30, headers=headers) as client:
            for m in messages:
                seen = [inbound.get(m.customer_id), inbound.get(m.recipient.lstrip("+"))]
                last = max((t for t in seen if t is not None), default=None)
                in_window = last is not None and env.now - last < SERVICE_WINDOW
                body = payload(m, in_window)
                if body is None:
                    out.append(
                        Delivery(
                            "failed",
                            reason_code="outside_service_window",
                            reason="Free-form WhatsApp text is allowed only within 24 hours of "
                            "the customer's last message, and the template has no approved "
                            "WhatsApp template (wa_template) for this locale.",
                        )
                    )
                    continue
                PACER.wait(s.whatsapp_phone_number_id, s.whatsapp_rate_per_second)
                try:
                    resp = client.post(url, json=body)
                except httpx.HTTPError as exc:
                    out.append(
                        Delivery("retry", reason_code="provider_unavailable", reason=str(exc))
                    )
                    continue
                try:
                    data = resp.json()
                except ValueError:
                    data = None
                ids = (data or {}).get("messages") if isinstance(data, dict) else None
                if resp.is_success and ids and isinstance(ids[0], dict) and ids[0].get("id"):
                    out.append(Delivery("sent", provider_message_id=str(ids[0]["id"])))
                else:
                    out.append(map_error(resp.status_code, data))
        return out
