"""Email over SMTP: multipart text + HTML, RFC 8058 one-click unsubscribe, stable Message-ID.

Each message is a ``multipart/alternative`` (text, then HTML). Marketing messages carry
``List-Unsubscribe`` with the signed https link and a mailto address, and
``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` so that mail clients can unsubscribe with
one POST (RFC 8058). The ``Message-ID`` derives from siyu's message id (itself derived from the
idempotency key), so every attempt of one key carries the same Message-ID.

SMTP replies map to outcomes: 2xx sent, 4xx (and a dropped connection) retry, 5xx failed; a
recipient refused with 550/551/553 and an enhanced status 5.1.x (no such mailbox or domain) is a
hard bounce: failed, and the address goes on the email suppression list (reason ``bounce``).
"""

from __future__ import annotations

import re
import smtplib
from collections.abc import Mapping, Sequence
from datetime import UTC
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any

from siyu.config import Settings
from siyu.messaging.channels.base import ChannelEnv, Delivery, Outgoing

_TAG = re.compile(r"<[^>]+>")
_NOT_IN_ADDR = r"\s@\"<>(),;:\[\]\\"
_ADDR_SPEC = re.compile(rf"^[^{_NOT_IN_ADDR}]+@[^{_NOT_IN_ADDR}.]+(?:\.[^{_NOT_IN_ADDR}.]+)+$")


def sender_domain(settings: Settings) -> str:
    addr = parseaddr(settings.smtp_from)[1]
    return addr.rpartition("@")[2] or "localhost"


def unsubscribe_mailto(settings: Settings) -> str:
    return settings.smtp_unsubscribe_mailto or f"unsubscribe@{sender_domain(settings)}"


def build_email(m: Outgoing, settings: Settings, env: ChannelEnv) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.smtp_from
    msg["To"] = m.recipient
    msg["Subject"] = m.subject or ""
    msg["Date"] = format_datetime(env.now.replace(tzinfo=UTC))
    msg["Message-ID"] = f"<{m.message_id}@{sender_domain(settings)}>"
    msg["X-Siyu-Message-Id"] = m.message_id
    if m.unsubscribe_url:
        mailto = f"mailto:{unsubscribe_mailto(settings)}?subject=unsubscribe%20{m.message_id}"
        msg["List-Unsubscribe"] = f"<{m.unsubscribe_url}>, <{mailto}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    text = m.text if m.text is not None else _TAG.sub("", m.html or "")
    msg.set_content(text)
    if m.html:
        html = m.html
        if settings.messaging_email_tracking:
            from siyu.messaging.tracking import instrument_html

            html = instrument_html(settings, m.workspace_id, m.message_id, html, m.unsubscribe_url)
        msg.add_alternative(html, subtype="html")
    return msg


def _refused(exc: smtplib.SMTPRecipientsRefused) -> Delivery:
    code, detail = next(iter(exc.recipients.values()), (550, b"refused"))
    return _reply(int(code), detail, recipient=True)


# Enhanced status codes (RFC 3463) of a mailbox or domain that does not exist: 5.1.x
_BAD_ADDRESS = re.compile(r"^5\.1\.\d{1,3}\b")


def _reply(code: int, detail: bytes | str, recipient: bool = False) -> Delivery:
    text = detail.decode(errors="replace") if isinstance(detail, bytes) else str(detail)
    reason = f"SMTP {code}: {text}"
    if 400 <= code < 500:
        return Delivery("retry", reason_code="smtp_transient", reason=reason)
    if recipient and code in (550, 551, 553) and _BAD_ADDRESS.match(text.strip()):
        # a hard bounce: the address does not exist; suppressed so it is never tried again
        return Delivery("failed", reason_code="hard_bounce", reason=reason, suppress_as="bounce")
    return Delivery("failed", reason_code="smtp_rejected", reason=reason)


class EmailChannel:
    name = "email"
    atomic = False
    resend_safe = False

    def consent_channel(self, settings: Settings) -> str | None:
        return "email"

    @staticmethod
    def address_of(customer: Mapping[str, Any]) -> str | None:
        """The lower-cased address when it is a plain addr-spec (local@domain.tld), else None.

        A regular expression, not ``email.headerregistry.Address`` (which costs as much as the
        rest of a send): no spaces, quotes, angle brackets or commas, one '@', a dotted domain.
        """
        email = str(customer.get("email") or "").strip()
        if not _ADDR_SPEC.match(email):
            return None
        return email.lower()

    def address(self, customer: Mapping[str, Any], settings: Settings) -> str | None:
        return self.address_of(customer)

    def deliver(self, env: ChannelEnv, messages: Sequence[Outgoing]) -> list[Delivery]:
        if not messages:
            return []
        s = env.settings
        try:
            smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=30)
        except OSError as exc:
            reason = f"cannot connect to SMTP {s.smtp_host}:{s.smtp_port}: {exc}"
            return [Delivery("retry", reason_code="smtp_unavailable", reason=reason)] * len(
                messages
            )
        out: list[Delivery] = []
        try:
            if s.smtp_starttls:
                smtp.starttls()
            if s.smtp_username:
                smtp.login(s.smtp_username, s.smtp_password.get_secret_value())
            for m in messages:
                out.append(self._one(smtp, m, env))
        except smtplib.SMTPException as exc:
            reason = f"SMTP session failed: {exc}"
            out.extend(
                [Delivery("retry", reason_code="smtp_unavailable", reason=reason)]
                * (len(messages) - len(out))
            )
        finally:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()
        return out

    def _one(self, smtp: smtplib.SMTP, m: Outgoing, env: ChannelEnv) -> Delivery:
        try:
            smtp.send_message(build_email(m, env.settings, env))
        except smtplib.SMTPRecipientsRefused as exc:
            return _refused(exc)
        except smtplib.SMTPResponseException as exc:
            return _reply(exc.smtp_code, exc.smtp_error)
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise smtplib.SMTPException(str(exc)) from exc
        return Delivery(
            "sent", provider_message_id=f"<{m.message_id}@{sender_domain(env.settings)}>"
        )
