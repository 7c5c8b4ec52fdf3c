"""Content checks: market rules a rendered message must satisfy before it may go out.

A check is registered in ``registry.content_checks`` as ``fn(ContentInput) -> str | None``: a
sentence saying what is wrong, or None. A message that fails a check is not sent and is recorded
as failed (reason_code ``content_rule``): the template must be fixed, retrying cannot help.
"""

from __future__ import annotations

from dataclasses import dataclass

from siyu.messaging.templates import Rendered


@dataclass(frozen=True)
class ContentInput:
    channel: str  # the consent channel the message is sent as (email, sms, whatsapp)
    purpose: str
    country: str | None
    rendered: Rendered


def sms_opt_out(m: ContentInput) -> str | None:
    """Marketing SMS must say how to opt out: 'STOP' in the US (CTIA), '退订' in China (MIIT)."""
    if m.channel != "sms" or m.purpose != "marketing":
        return None
    text = m.rendered.text or ""
    country = (m.country or "").upper()
    if country == "US" and "stop" not in text.lower():
        return "a marketing SMS to the US must tell how to opt out (e.g. 'Reply STOP to opt out')"
    if country == "CN" and "退订" not in text:
        return "a marketing SMS to China must tell how to opt out (e.g. '回复TD退订')"
    return None
