"""SMS through a Twilio-style HTTP API.

``POST {sms_base_url}/2010-04-01/Accounts/{sid}/Messages.json``, form-encoded ``To``, ``From``
(or ``MessagingServiceSid`` when sms_from starts with 'MG') and ``Body``, HTTP basic auth
(account SID, auth token). A 201 answer carries the message ``sid``; an error answer carries
``{"code": ..., "message": ...}``, mapped to outcomes in ``ERRORS`` (21610: the recipient replied
STOP, so the number is suppressed; 21211: not a valid number; 20429 / HTTP 429: retry).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import phonenumbers

from siyu.config import Settings
from siyu.messaging.channels.base import ChannelEnv, Delivery, DeliveryStatus, Outgoing

ERRORS: dict[int, tuple[DeliveryStatus, str]] = {
    21610: ("suppress", "recipient_unsubscribed"),
    21614: ("failed", "not_mobile"),
    21211: ("failed", "invalid_number"),
    21408: ("failed", "region_not_enabled"),
    30007: ("failed", "carrier_filtered"),
    20003: ("failed", "auth_failed"),
    20429: ("retry", "rate_limited"),
}


_FORMATTING = re.compile(r"[\s().\-/]")


def phone_address(customer: Mapping[str, Any]) -> str | None:
    """The customer's phone in E.164, or None.

    International forms (``+1 (415) 555-0100``, ``0049 151 ...``) lose their formatting; bare
    digits are read as international (WhatsApp ``wa_id`` style) unless the customer has a
    country, in which case a national number (``0151 2345678`` in DE) is read in that country
    with libphonenumber's metadata.
    """
    raw = str(customer.get("phone") or "").strip()
    text = _FORMATTING.sub("", raw)
    if text.startswith("00"):
        text = "+" + text[2:]
    country = str(customer.get("country") or "").upper() or None
    if not text.startswith("+") and country and text.startswith("0"):
        try:
            number = phonenumbers.parse(text, country)
        except phonenumbers.NumberParseException:
            return None
        if not phonenumbers.is_possible_number(number):
            return None
        return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    digits = text.removeprefix("+")
    if not digits.isdigit() or not 6 <= len(digits) <= 15:
        return None
    return "+" + digits


def map_error(http_status: int, body: Any) -> Delivery:
    code = body.get("code") if isinstance(body, dict) else None
    message = body.get("message") if isinstance(body, dict) else None
    reason = f"SMS provider error {code or http_status}: {message or 'no details'}"
    if isinstance(code, int) and code in ERRORS:
        status, rc = ERRORS[code]
        return Delivery(status, reason_code=rc, reason=reason)
    if http_status == 429 or http_status >= 500:
        return Delivery("retry", reason_code="provider_unavailable", reason=reason)
    return Delivery("failed", reason_code="provider_rejected", reason=reason)


class SmsChannel:
    name = "sms"
    atomic = False
    resend_safe = False

    def consent_channel(self, settings: Settings) -> str | None:
        return "sms"

    def address(self, customer: Mapping[str, Any], settings: Settings) -> str | None:
        return phone_address(customer)

    def deliver(self, env: ChannelEnv, messages: Sequence[Outgoing]) -> list[Delivery]:
        s = env.settings
        url = f"{s.sms_base_url.rstrip('/')}/2010-04-01/Accounts/{s.sms_account_sid}/Messages.json"
        sender = "MessagingServiceSid" if s.sms_from.startswith("MG") else "From"
        out = []
        with httpx.Client(
            auth=(s.sms_account_sid, s.sms_auth_token.get_secret_value()), timeout=30
        ) as client:
            for m in messages:
                form = {"To": m.recipient, sender: s.sms_from, "Body": m.text or ""}
                try:
                    resp = client.post(url, data=form)
                except httpx.HTTPError as exc:
                    out.append(
                        Delivery("retry", reason_code="provider_unavailable", reason=str(exc))
                    )
                    continue
                try:
                    body = resp.json()
                except ValueError:
                    body = None
                if resp.is_success and isinstance(body, dict) and body.get("sid"):
                    out.append(Delivery("sent", provider_message_id=str(body["sid"])))
                else:
                    out.append(map_error(resp.status_code, body))
        return out
