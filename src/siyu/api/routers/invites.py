"""The public invite link ``/r/{code}``: count the visit, then send the friend to the store.

An invite link is what a customer shares; it must work from any chat app without an API key.
The visit becomes a ``Referral Link Clicked`` event (the "visits per share" of the fission
metrics) under the visitor's anonymous id, kept in a first-party cookie so that the friend's later
sign-up and order join the same person in One-ID. The friend lands on the brand's store
(``referral_landing_url``) with ``ref=CODE`` appended, which the store passes back when the friend
signs up or orders.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from siyu.access import get_workspace_by_id
from siyu.api.deps import RuntimeDep
from siyu.errors import InvalidInput, NotFound
from siyu.fission.referrals import normalise_code
from siyu.fission.tables import referral_codes

router = APIRouter(tags=["fission"])

VISITOR_COOKIE = "siyu_aid"
CLICKED = "Referral Link Clicked"
_YEAR = 365 * 24 * 3600


def landing_url(base: str, code: str) -> str:
    """``base`` with ``ref=CODE`` added to its query (other parameters kept)."""
    parts = urlsplit(base)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "ref"]
    query.append(("ref", code))
    return urlunsplit(parts._replace(query=urlencode(query)))


@router.get("/r/{code}", response_class=RedirectResponse, status_code=302)
async def invite_link(code: str, request: Request, rt: RuntimeDep) -> RedirectResponse:
    """Record the visit of an invite link and redirect to the store with ``ref=CODE``."""
    landing = rt.settings.referral_landing_url
    if not landing:
        raise NotFound(
            "Invite links are not set up on this server.",
            hint="Set SIYU_REFERRAL_LANDING_URL to the store page invite links lead to.",
        )
    wanted = normalise_code(code)
    if not wanted.isalnum() or len(wanted) > 40:
        raise InvalidInput(
            f"'{code}' is not an invite code.", hint="Check the invite link.", field="code"
        )
    visitor = request.cookies.get(VISITOR_COOKIE) or f"aid_{uuid.uuid4().hex}"
    headers = request.headers
    context: dict[str, Any] = {"userAgent": headers.get("user-agent", "")[:500]}
    if request.client is not None:
        context["ip"] = request.client.host

    def record() -> None:
        with rt.db.engine.connect() as conn:
            rows = conn.execute(
                sa.select(referral_codes.c.workspace_id).where(referral_codes.c.code == wanted)
            ).all()
            if len(rows) != 1:
                raise NotFound(f"No invite code '{code}'.", hint="Check the invite link.")
            ws = get_workspace_by_id(conn, rows[0].workspace_id)
        now = datetime.now(UTC)
        message = {
            "type": "track",
            "event": CLICKED,
            "anonymousId": visitor,
            "messageId": f"rlc-{uuid.uuid4().hex}",
            "timestamp": now.isoformat(),
            "properties": {"referral_code": wanted, "referrer": headers.get("referer")},
            "context": context,
        }
        rt.pipeline(ws).ingest([message], origin="invite_link")

    await run_in_threadpool(record)
    response = RedirectResponse(landing_url(landing, wanted), status_code=302)
    response.set_cookie(VISITOR_COOKIE, visitor, max_age=_YEAR, httponly=True, samesite="lax")
    return response
