"""Real servers the channel tests talk to: an aiosmtpd SMTP server and a threaded HTTP server
speaking a vendor's documented contract (WhatsApp Cloud API, Twilio-style SMS)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Inbox:
    """Messages the SMTP server accepted, parsed."""

    messages: list[EmailMessage] = field(default_factory=list)
    rcpt: list[list[str]] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)  # address -> SMTP reply

    async def handle_RCPT(  # noqa: N802 (aiosmtpd hook name)
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        msg = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        self.rcpt.append(list(envelope.rcpt_tos))
        return "250 Message accepted"


@contextmanager
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Responder = Callable[[Call], tuple[int, dict[str, Any]]]


@contextmanager
def http_server(respond: Responder) -> Iterator[tuple[str, list[Call]]]:
    """A threaded HTTP server: ``respond(call) -> (status, json body)``; records every call."""
    calls: list[Call] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            call = Call(
                self.command,
                self.path,
                {k.lower(): v for k, v in self.headers.items()},
                self.rfile.read(length),
            )
            with lock:
                calls.append(call)
            status, body = respond(call)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_POST = _any  # noqa: N815
        do_GET = _any  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", calls
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """siyu's ASGI app served over real HTTP by uvicorn in a thread; yields its base URL."""
    import time

    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:  # uvicorn sets it once the socket listens
        if not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(10)


@dataclass
class WhatsAppFake:
    """The WhatsApp Cloud API as documented by Meta, for one business number.

    ``POST /{version}/{phone_number_id}/messages`` with ``Authorization: Bearer <token>``;
    success answers ``{"messaging_product": "whatsapp", "contacts": [...], "messages":
    [{"id": "wamid..."}]}``; ``fail[to] = (http status, code, title)`` answers Graph's error
    object. ``callback`` posts a status notification (entry/changes/value/statuses) signed with
    ``X-Hub-Signature-256`` to siyu's webhook, as Meta does.
    """

    version: str
    phone_number_id: str
    token: str
    app_secret: str
    fail: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)  # wamid -> request body
    # called with (wamid, body) before the answer leaves: lets a test post a status callback
    # that beats the sender's own bookkeeping, as Meta's can
    on_accept: Callable[[str, dict[str, Any]], None] | None = None
    _n: int = 0

    def respond(self, call: Call) -> tuple[int, dict[str, Any]]:
        if call.headers.get("authorization") != f"Bearer {self.token}":
            return 401, _graph_error(190, "Invalid OAuth access token.", "OAuthException")
        if call.method != "POST" or call.path != f"/{self.version}/{self.phone_number_id}/messages":
            return 400, _graph_error(100, f"Unsupported request {call.method} {call.path}")
        body = call.json()
        kind = body.get("type")
        if body.get("messaging_product") != "whatsapp" or kind not in ("text", "template"):
            return 400, _graph_error(100, "Invalid parameter")
        if kind == "template":
            t = body.get("template") or {}
            if not t.get("name") or not (t.get("language") or {}).get("code"):
                return 400, _graph_error(132001, "Template name does not exist in the translation")
        to = str(body.get("to"))
        if to in self.fail:
            status, code, title = self.fail[to]
            return status, _graph_error(code, title)
        self._n += 1
        wamid = f"wamid.HBgM{self._n:06d}"
        self.sent[wamid] = body
        if self.on_accept is not None:
            self.on_accept(wamid, body)
        return 200, {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to}],
            "messages": [{"id": wamid}],
        }

    def notification(self, value: dict[str, Any]) -> dict[str, Any]:
        return {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "102290129340398",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": "15550783881",
                                    "phone_number_id": self.phone_number_id,
                                },
                                **value,
                            },
                        }
                    ],
                }
            ],
        }

    def status(
        self, wamid: str, status: str, timestamp: int, error: tuple[int, str] | None = None
    ) -> dict[str, Any]:
        st: dict[str, Any] = {
            "id": wamid,
            "status": status,
            "timestamp": str(timestamp),
            "recipient_id": self.sent[wamid]["to"],
        }
        if status in ("sent", "delivered"):
            st["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "marketing"}
        if error is not None:
            st["errors"] = [
                {
                    "code": error[0],
                    "title": error[1],
                    "message": error[1],
                    "error_data": {"details": error[1]},
                }
            ]
        return st

    def inbound(self, wa_id: str, wamid: str, timestamp: int, text: str) -> dict[str, Any]:
        """A customer's message to the business (opens the 24-hour service window)."""
        return self.notification(
            {
                "contacts": [{"profile": {"name": wa_id}, "wa_id": wa_id}],
                "messages": [
                    {
                        "from": wa_id,
                        "id": wamid,
                        "timestamp": str(timestamp),
                        "type": "text",
                        "text": {"body": text},
                    }
                ],
            }
        )

    def callback(self, url: str, statuses: list[dict[str, Any]], secret: str | None = None) -> int:
        """POST a signed status notification to siyu's webhook ``url``; return the HTTP status."""
        return self.post(url, self.notification({"statuses": statuses}), secret)

    def post(self, url: str, payload: dict[str, Any], secret: str | None = None) -> int:
        """POST a notification signed like Meta does (X-Hub-Signature-256); the HTTP status."""
        import hashlib
        import hmac

        import httpx

        raw = json.dumps(payload).encode()
        mac = hmac.new((secret or self.app_secret).encode(), raw, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={mac}"}
        return httpx.post(url, content=raw, headers=headers, timeout=30).status_code


def _graph_error(code: int, message: str, kind: str = "OAuthException") -> dict[str, Any]:
    return {
        "error": {
            "message": f"({code}) {message}",
            "type": kind,
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": message},
            "fbtrace_id": "AbCdEf123",
        }
    }
