"""The Segment-compatible HTTP Tracking API: /v1/track, identify, page, screen, group, alias,
batch and import.

An existing Segment library pointed at siyu's host works unchanged: HTTP Basic auth with the
source's write key as user name (or ``writeKey`` in the body), JSON bodies, optionally gzip,
32 KB per call and 500 KB per batch (checked on the raw bytes before parsing), and
``{"success": true}`` on success. Every message goes through :meth:`Pipeline.ingest`.

Invalid messages (decided here, documented in docs/api.md):

- a **single call** (``/v1/track`` ...) that the pipeline rejects answers **400** naming the
  field; the message is also in the quarantine (``details.quarantine_id``), so nothing is lost;
- a **batch** answers **200** once the body is accepted, like Segment: invalid messages in it
  are quarantined one by one with their index and reason (``siyu quarantine list``), and a
  client library will not retry the whole batch for one bad message.

Requests are group-committed (:mod:`siyu.collect.ingest_queue`): concurrent requests share one
pipeline call, whose cost is mostly fixed per transaction. Quarantined records from this API
have origin ``api:/v1``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from starlette.concurrency import run_in_threadpool

from siyu.access import Workspace, get_workspace_by_id
from siyu.api.rawbody import parse_json, read_body
from siyu.collect.ingest_queue import IngestQueue
from siyu.collect.ratelimit import RateLimiter
from siyu.collect.sources import Source, authenticate_write_key
from siyu.errors import InvalidInput, RateLimited, Unauthorized
from siyu.runtime import Runtime


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Drain the group-commit queue at shutdown, before the app closes the database."""
    yield
    ingest: IngestQueue | None = getattr(app.state, "ingest_queue", None)
    if ingest is not None:
        await run_in_threadpool(ingest.close)


router = APIRouter(prefix="/v1", tags=["tracking"], lifespan=_lifespan)

AUTH_TTL = 1.0  # seconds a verified write key is reused without a database lookup
CALLS = ("track", "identify", "page", "screen", "group", "alias")
# Batch-level fields Segment applies to every message that lacks its own.
_INHERITED = ("context", "integrations", "sentAt")

_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "object", "additionalProperties": True},
            }
        },
    },
    "responses": {
        "200": {"description": 'Accepted: {"success": true}'},
        "400": {"description": "Invalid body or message (error envelope naming the field)"},
        "401": {"description": "Missing, unknown or revoked write key"},
        "413": {"description": "Body over the size limit"},
        "429": {"description": "Over the source's rate limit; see Retry-After"},
    },
}


def _basic_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized(
            "The Authorization header is not valid HTTP Basic credentials.",
            hint="Send 'Authorization: Basic base64(<write key>:)'.",
        ) from None
    return decoded.partition(":")[0] or None


def _limiter(request: Request, rt: Runtime) -> RateLimiter:
    limiter: RateLimiter | None = getattr(request.app.state, "tracking_limiter", None)
    if limiter is None:
        limiter = RateLimiter(rt.settings.tracking_rate_limit, rt.settings.tracking_rate_burst)
        request.app.state.tracking_limiter = limiter
    return limiter


async def _authenticate(request: Request, rt: Runtime, key: str) -> tuple[Source, Workspace]:
    """The key's source and workspace; a verified key is reused for ``AUTH_TTL`` seconds.

    Two lookups per request would cost more than the request's share of the ingestion, so a
    verified key is cached briefly (by its SHA-256): a revocation takes effect within
    ``AUTH_TTL``. Failed keys are never cached.
    """
    cache: dict[str, tuple[float, Source, Workspace]] = request.app.state.__dict__.setdefault(
        "tracking_auth", {}
    )
    digest = hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()
    now = time.monotonic()
    hit = cache.get(digest)
    if hit is not None and hit[0] > now:
        return hit[1], hit[2]

    def lookup() -> tuple[Source, Workspace]:
        with rt.db.engine.connect() as conn:
            source = authenticate_write_key(conn, key)
            return source, get_workspace_by_id(conn, source.workspace_id)

    source, ws = await run_in_threadpool(lookup)
    if len(cache) > 10_000:
        cache.clear()
    cache[digest] = (now + AUTH_TTL, source, ws)
    return source, ws


async def _accept(
    request: Request, limit: int
) -> tuple[Runtime, Source, Workspace, dict[str, Any]]:
    """Size limit, auth, rate limit and JSON parsing: (runtime, source, workspace, body)."""
    rt: Runtime = request.app.state.runtime
    key = _basic_key(request)
    raw = await read_body(request, limit)
    body = parse_json(raw, rt.settings.max_json_depth)
    if not isinstance(body, dict):
        raise InvalidInput(
            f"The body must be a JSON object, got {type(body).__name__}.", field="body"
        )
    body_key = body.pop("writeKey", None)
    if key is None:
        key = body_key if isinstance(body_key, str) and body_key else None
    if key is None:
        raise Unauthorized(
            "This endpoint needs a source write key.",
            hint="Send it as the HTTP Basic user name, or as 'writeKey' in the body "
            "(create a source: siyu sources add NAME --kind web).",
        )

    source, ws = await _authenticate(request, rt, key)
    wait = _limiter(request, rt).acquire(source.source_id)
    if wait:
        raise RateLimited(
            f"Source {source.name!r} is over its limit of "
            f"{rt.settings.tracking_rate_limit:g} requests per second.",
            details={"retry_after": wait},
        )
    return rt, source, ws, body


def _queue(request: Request, rt: Runtime) -> IngestQueue:
    ingest: IngestQueue | None = getattr(request.app.state, "ingest_queue", None)
    if ingest is None:
        ingest = IngestQueue(rt)
        request.app.state.ingest_queue = ingest
    return ingest


async def _ingest(
    request: Request,
    rt: Runtime,
    source: Source,
    ws: Workspace,
    messages: list[Any],
    *,
    single: bool,
) -> list[dict[str, Any]]:
    return await _queue(request, rt).submit(ws, source.source_id, messages, single=single)


async def _single(request: Request, call: str) -> dict[str, bool]:
    rt, source, ws, body = await _accept(request, rt_settings(request).max_event_bytes)
    body["type"] = call  # the path names the call, as in Segment's API
    rejected = await _ingest(request, rt, source, ws, [body], single=True)
    if rejected:
        row = rejected[0]
        raise InvalidInput(
            str(row["reason"]),
            field=row.get("field") or None,
            hint="Correct the named field and send the call again; the message is kept in "
            "the quarantine meanwhile (siyu quarantine show ID).",
            details={"quarantine_id": row["quarantine_id"], "reason_code": row["reason_code"]},
        )
    return {"success": True}


def rt_settings(request: Request) -> Any:
    return request.app.state.runtime.settings


async def _batch(request: Request) -> dict[str, bool]:
    rt, source, ws, body = await _accept(request, rt_settings(request).max_batch_bytes)
    batch = body.get("batch")
    if not isinstance(batch, list):
        raise InvalidInput(
            "The body needs 'batch': a list of messages.",
            hint='Send {"batch": [{"type": "track", ...}, ...]}.',
            field="batch",
        )
    inherited = {k: body[k] for k in _INHERITED if k in body}
    messages = [{**inherited, **m} if isinstance(m, dict) and inherited else m for m in batch]
    for m in messages:
        if isinstance(m, dict):
            m.pop("writeKey", None)
    await _ingest(request, rt, source, ws, messages, single=False)
    return {"success": True}


def _single_route(call: str) -> None:
    async def endpoint(request: Request) -> dict[str, bool]:
        return await _single(request, call)

    endpoint.__name__ = f"v1_{call}"
    endpoint.__doc__ = f"Segment `{call}` call (one message, at most 32 KB)."
    router.add_api_route(f"/{call}", endpoint, methods=["POST"], openapi_extra=_BODY_DOC)


for _call in CALLS:
    _single_route(_call)


@router.post("/batch", openapi_extra=_BODY_DOC)
async def v1_batch(request: Request) -> dict[str, bool]:
    """Segment batch: up to 500 KB of messages; invalid ones are quarantined, not refused."""
    return await _batch(request)


@router.post("/import", openapi_extra=_BODY_DOC)
async def v1_import(request: Request) -> dict[str, bool]:
    """Alias of /v1/batch (Segment's historical import endpoint)."""
    return await _batch(request)
