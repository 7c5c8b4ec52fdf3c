"""Messaging endpoints: public unsubscribe links, templates, suppressions and the message log.

``/unsubscribe/{token}`` is public (the signed token is the credential): ``GET`` shows a
confirmation page and never changes anything (mail scanners prefetch links); ``POST`` (the page's
button, or a mail client's RFC 8058 one-click request) withdraws marketing consent for the
channel the message came on.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from siyu.access import get_workspace_by_id
from siyu.api.deps import ReadWorkspace, RuntimeDep, WriteWorkspace
from siyu.messaging.suppress import add_suppression, list_suppressions, remove_suppression
from siyu.messaging.tables import messages
from siyu.messaging.templates import (
    get_template,
    load_templates,
    preview,
    save_template,
    template_from_doc,
    template_to_doc,
)
from siyu.messaging.tracking import PIXEL, TrackToken, record_hit
from siyu.messaging.tracking import read_token as track_token
from siyu.messaging.unsubscribe import read_token, withdraw
from siyu.registry import registry

router = APIRouter(tags=["messaging"])


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang='en'><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width'>"
        f"<title>{html.escape(title)}</title><main style='font-family:sans-serif;max-width:32em;"
        f"margin:3em auto'><h1>{html.escape(title)}</h1>{body}</main></html>"
    )


@router.get("/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe_page(token: str, rt: RuntimeDep) -> str:
    """Confirmation page of an unsubscribe link (changes nothing)."""
    t = read_token(rt.settings, token)
    return _page(
        "Unsubscribe",
        f"<p>Stop receiving marketing messages by {html.escape(t.channel)}?</p>"
        f"<form method='post' action='/unsubscribe/{html.escape(token)}'>"
        "<input type='hidden' name='List-Unsubscribe' value='One-Click'>"
        "<button type='submit'>Unsubscribe</button></form>",
    )


@router.post("/unsubscribe/{token}", response_class=HTMLResponse)
async def unsubscribe(token: str, rt: RuntimeDep) -> str:
    """Withdraw marketing consent for the link's channel (one-click, RFC 8058)."""
    t = read_token(rt.settings, token)

    def run() -> str:
        with rt.db.engine.connect() as conn:
            ws = get_workspace_by_id(conn, t.workspace_id)
        pipeline = rt.pipeline(ws)
        return withdraw(rt.db.engine, pipeline, t, _now(), "list-unsubscribe")

    await run_in_threadpool(run)
    return _page(
        "Unsubscribed",
        f"<p>You will no longer receive marketing messages by {html.escape(t.channel)}.</p>",
    )


@router.get("/t/o/{token}")
async def track_open(token: str, rt: RuntimeDep) -> Response:
    """The open pixel of an email: records Email Opened (once) and answers a 1x1 GIF."""
    t = track_token(rt.settings, token)
    await run_in_threadpool(_record, rt, t)
    headers = {"Cache-Control": "no-store, private"}
    return Response(PIXEL, media_type="image/gif", headers=headers)


@router.get("/t/c/{token}")
async def track_click(token: str, rt: RuntimeDep) -> RedirectResponse:
    """A tracked link: records Email Clicked and redirects to the link's signed target."""
    t = track_token(rt.settings, token)
    await run_in_threadpool(_record, rt, t)
    return RedirectResponse(t.url, status_code=302)


def _record(rt: Any, t: TrackToken) -> None:
    with rt.db.engine.connect() as conn:
        ws = get_workspace_by_id(conn, t.workspace_id)
    record_hit(rt.db.engine, rt.pipeline(ws), t, _now())


@router.get("/api/templates")
def templates_list(ws: ReadWorkspace, rt: RuntimeDep) -> list[dict[str, Any]]:
    """The workspace's message templates with their locales."""
    with rt.db.engine.connect() as conn:
        found = load_templates(conn, ws.workspace_id)
    return [
        {
            "name": t.name,
            "channel": t.channel,
            "default_locale": t.default_locale,
            "locales": sorted(t.variants),
            "description": t.description,
        }
        for t in found.values()
    ]


@router.post("/api/templates", status_code=201)
def templates_add(doc: dict[str, Any], ws: WriteWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    """Add or replace a template (same document as 'siyu templates add')."""
    t = template_from_doc(doc, registry.channels.names())
    with rt.db.engine.begin() as conn:
        created = save_template(conn, ws.workspace_id, t, _now())
    return {"name": t.name, "created": created, "locales": sorted(t.variants)}


@router.get("/api/templates/{name}")
def templates_show(name: str, ws: ReadWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    with rt.db.engine.connect() as conn:
        return template_to_doc(get_template(conn, ws.workspace_id, name))


class PreviewIn(BaseModel):
    customer_id: str = Field(min_length=1, max_length=40)
    context: dict[str, Any] = Field(default_factory=dict)


@router.post("/api/templates/{name}/preview")
def templates_preview(
    name: str, body: PreviewIn, ws: ReadWorkspace, rt: RuntimeDep
) -> dict[str, Any]:
    """The template rendered with a real customer's data (locale, money, dates as sent)."""
    r = preview(rt.db, ws.workspace_id, name, body.customer_id, body.context, rt.settings)
    return {
        "template": r.template,
        "locale": r.locale,
        "subject": r.subject,
        "text": r.text,
        "html": r.html,
        "whatsapp": r.whatsapp,
    }


class SuppressionIn(BaseModel):
    channel: str
    address: str = Field(min_length=1, max_length=320)
    reason: str = "manual"
    note: str | None = Field(None, max_length=2000)


@router.get("/api/suppressions")
def suppressions_list(
    ws: ReadWorkspace,
    rt: RuntimeDep,
    channel: str | None = None,
    limit: int = Query(1000, ge=1, le=100_000),
) -> list[dict[str, Any]]:
    with rt.db.engine.connect() as conn:
        return list_suppressions(conn, ws.workspace_id, channel, limit)


@router.post("/api/suppressions", status_code=201)
def suppressions_add(body: SuppressionIn, ws: WriteWorkspace, rt: RuntimeDep) -> dict[str, Any]:
    with rt.db.engine.begin() as conn:
        addr, created = add_suppression(
            conn, ws.workspace_id, body.channel, body.address, body.reason, _now(), body.note
        )
    return {"channel": body.channel, "address": addr, "created": created}


@router.delete("/api/suppressions/{channel}/{address}")
def suppressions_remove(
    channel: str, address: str, ws: WriteWorkspace, rt: RuntimeDep
) -> dict[str, Any]:
    with rt.db.engine.begin() as conn:
        addr = remove_suppression(conn, ws.workspace_id, channel, address)
    return {"channel": channel, "address": addr, "removed": True}


@router.get("/api/messages")
def messages_list(
    ws: ReadWorkspace,
    rt: RuntimeDep,
    customer_id: str | None = None,
    status: str | None = None,
    limit: int = Query(100, ge=1, le=10_000),
) -> list[dict[str, Any]]:
    """The message log, newest first: status, reason_code and reason of every send attempt."""
    m = messages.c
    q = sa.select(
        m.message_id,
        m.idempotency_key,
        m.customer_id,
        m.channel,
        m.purpose,
        m.template,
        m.journey_id,
        m.step_id,
        m.status,
        m.attempts,
        m.reason_code,
        m.reason,
        m.retry_at,
        m.provider_message_id,
        m.created_at,
        m.sent_at,
        m.delivered_at,
        m.read_at,
    ).where(m.workspace_id == ws.workspace_id)
    if customer_id:
        q = q.where(m.customer_id == customer_id)
    if status:
        q = q.where(m.status == status)
    with rt.db.engine.connect() as conn:
        rows = conn.execute(q.order_by(m.updated_at.desc()).limit(limit)).mappings()
        return [dict(r) for r in rows]
