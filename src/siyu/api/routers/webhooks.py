"""Verified webhooks: Shopify and the WhatsApp Cloud API.

The URL names the source by its id (printed by ``siyu sources add``). Each request is verified
against that source's webhook secret before its body is parsed:

- Shopify: ``X-Shopify-Hmac-Sha256`` = base64(HMAC-SHA256(secret, raw body));
- WhatsApp (Meta): ``X-Hub-Signature-256`` = ``sha256=`` + hex(HMAC-SHA256(app secret, raw
  body)); the ``GET`` subscription handshake answers ``hub.challenge`` only when
  ``hub.verify_token`` matches the source's verify token.

Signatures are compared in constant time. A request that fails verification is logged and
answered 401 (bad or missing signature) or 403 (failed handshake, wrong source kind); it is never
ingested. A verified delivery answers 200 even when a message in it is quarantined, because a
vendor that sees errors retries and finally disables the webhook; the quarantine keeps it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from siyu.access import get_workspace_by_id
from siyu.api.rawbody import parse_json, read_body
from siyu.collect.sources import WebhookSecrets, webhook_secrets
from siyu.collect.webhooks import shopify, whatsapp
from siyu.errors import Forbidden, InvalidInput, Unauthorized
from siyu.messaging.status import apply_whatsapp_statuses
from siyu.runtime import Runtime

log = logging.getLogger("siyu.webhooks")
router = APIRouter(prefix="/webhooks", tags=["webhooks"])

# Webhook bodies are whole vendor documents (an order with all its lines), larger than a
# Segment batch; this multiple of max_batch_bytes bounds them.
BODY_FACTOR = 4


def _runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


async def _secrets(rt: Runtime, source_id: str, kind: str) -> WebhookSecrets:
    def load() -> WebhookSecrets:
        with rt.db.engine.connect() as conn:
            return webhook_secrets(conn, source_id)

    found = await run_in_threadpool(load)
    if found.source.kind != kind:
        log.warning("webhook refused: source %s is a %s source", source_id, found.source.kind)
        raise Forbidden(
            f"Source {source_id!r} is a {found.source.kind} source, not {kind}.",
            hint=f"Point the {kind} webhook at a {kind} source's URL.",
        )
    if found.revoked:
        log.warning("webhook refused: source %s is revoked", source_id)
        raise Unauthorized(
            f"Source {source_id!r} is revoked.", hint="Rotate it (siyu sources rotate NAME)."
        )
    return found


def _refuse(source_id: str, why: str) -> Unauthorized:
    log.warning("webhook refused for source %s: %s", source_id, why)
    return Unauthorized(
        f"Webhook verification failed: {why}.",
        hint="Set the secret the vendor signs with: siyu sources secret NAME --webhook-secret S.",
    )


async def _ingest(
    rt: Runtime, found: WebhookSecrets, messages: list[dict[str, Any]], origin: str
) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        with rt.db.engine.connect() as conn:
            ws = get_workspace_by_id(conn, found.source.workspace_id)
        report = rt.pipeline(ws).ingest(messages, source_id=found.source.source_id, origin=origin)
        return {"success": True, **report.as_dict()}

    return await run_in_threadpool(run)


@router.post("/shopify/{source_id}")
async def shopify_webhook(source_id: str, request: Request) -> dict[str, Any]:
    """A Shopify webhook (orders, refunds, customers), verified by X-Shopify-Hmac-Sha256."""
    rt = _runtime(request)
    found = await _secrets(rt, source_id, "shopify")
    raw = await read_body(request, rt.settings.max_batch_bytes * BODY_FACTOR)
    given = request.headers.get("x-shopify-hmac-sha256", "")
    if not found.webhook_secret:
        raise _refuse(source_id, "the source has no webhook secret")
    expected = base64.b64encode(
        hmac.new(found.webhook_secret.encode(), raw, hashlib.sha256).digest()
    ).decode()
    if not given or not hmac.compare_digest(expected.encode(), given.strip().encode()):
        raise _refuse(source_id, "X-Shopify-Hmac-Sha256 does not match the body")
    topic = request.headers.get("x-shopify-topic", "")
    payload = parse_json(raw, rt.settings.max_json_depth)
    if not isinstance(payload, dict):
        raise InvalidInput("A Shopify webhook body must be a JSON object.", field="body")
    event_id = (
        request.headers.get("x-shopify-event-id")
        or request.headers.get("x-shopify-webhook-id")
        or hashlib.sha256(topic.encode() + b"\0" + raw).hexdigest()[:40]
    )
    if topic not in shopify.TOPICS:
        log.info("shopify webhook topic %r ignored (source %s)", topic, source_id)
        return {"success": True, "ignored": topic}
    messages = shopify.translate(topic, payload, event_id)
    return await _ingest(rt, found, messages, f"webhook:shopify:{topic}")


@router.get("/whatsapp/{source_id}", response_class=PlainTextResponse)
async def whatsapp_handshake(
    source_id: str,
    request: Request,
    mode: Annotated[str, Query(alias="hub.mode")] = "",
    token: Annotated[str, Query(alias="hub.verify_token")] = "",
    challenge: Annotated[str, Query(alias="hub.challenge", max_length=1000)] = "",
) -> str:
    """Meta's subscription handshake: echo hub.challenge when the verify token matches."""
    found = await _secrets(_runtime(request), source_id, "whatsapp")
    ok = (
        mode == "subscribe"
        and bool(found.verify_token)
        and hmac.compare_digest(str(found.verify_token).encode(), token.encode())
    )
    if not ok:
        log.warning("whatsapp handshake refused for source %s (mode %r)", source_id, mode)
        raise Forbidden(
            "The WhatsApp verification handshake failed.",
            hint="Use hub.mode=subscribe and the source's verify token "
            "(siyu sources secret NAME --verify-token T).",
        )
    return challenge


@router.post("/whatsapp/{source_id}")
async def whatsapp_webhook(source_id: str, request: Request) -> dict[str, Any]:
    """WhatsApp Cloud API notifications, verified by X-Hub-Signature-256."""
    rt = _runtime(request)
    found = await _secrets(rt, source_id, "whatsapp")
    raw = await read_body(request, rt.settings.max_batch_bytes * BODY_FACTOR)
    if not found.webhook_secret:
        raise _refuse(source_id, "the source has no app secret")
    digest = hmac.new(found.webhook_secret.encode(), raw, hashlib.sha256).hexdigest()
    given = request.headers.get("x-hub-signature-256", "").strip()
    if not hmac.compare_digest(("sha256=" + digest).encode(), given.encode()):
        raise _refuse(source_id, "X-Hub-Signature-256 does not match the body")
    payload = parse_json(raw, rt.settings.max_json_depth)
    if not isinstance(payload, dict):
        raise InvalidInput("A WhatsApp webhook body must be a JSON object.", field="body")
    report = await _ingest(rt, found, whatsapp.translate(payload), "webhook:whatsapp")
    # Status callbacks also move siyu's own message rows forward (delivered, read, failed).
    ws_id = found.source.workspace_id
    await run_in_threadpool(apply_whatsapp_statuses, rt.db.engine, ws_id, payload)
    return report
