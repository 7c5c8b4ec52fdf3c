"""The Segment-compatible HTTP Tracking API: /v1/track, identify, page, screen, group, alias,
batch and import.

An existing Segment library pointed at siyu's host works unchanged: HTTP Basic auth with the
source's write key as user name (or ``writeKey`` in the body), JSON bodies, optionally gzip,
32 KB per call and 500 KB per batch (checked on the raw bytes before parsing), and
``{"success": true}`` on success. Every message goes through :meth:`Pipeline.ingest`.

Acknowledgement (documented in docs/api.md): a request is answered once its records are
*durable* in the local spool, not once they are stored (:mod:`siyu.collect.ingest_queue`):

- a **single call** (``/v1/track`` ...) is validated here first; an invalid one answers **400**
  naming the field at once, and its quarantine row (``details.quarantine_id``) is spooled too,
  so nothing is lost;
- a **batch** answers **200** once the body is accepted, like Segment: invalid messages in it
  are quarantined one by one with their index and reason (``siyu quarantine list``);
- what only storage can find (an order whose totals contradict the stored order, a refund of an
  unknown order) is quarantined with its reason after the 200, as Segment documents for its
  own asynchronous checks;
- 503 with ``Retry-After`` when the records cannot be made durable (disk full, or a backlog
  over ``tracking_spool_max_mb`` because the database does not keep up).

Quarantined records from this API have origin ``api:/v1``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from siyu.access import Workspace, get_workspace_by_id
from siyu.api.deps import AdminWorkspace
from siyu.api.rawbody import parse_json, read_body
from siyu.collect.ingest_queue import IngestQueue, as_datetime, now_us, spool_directory
from siyu.collect.ratelimit import RateLimiter
from siyu.collect.sources import Source, authenticate_write_key
from siyu.collect.validate import Record, validate_chunk
from siyu.errors import InvalidInput, RateLimited, SiyuError, Unauthorized
from siyu.runtime import Runtime


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the spool at start-up (replaying what a crash left in it); drain it at shutdown,
    before the app closes the database."""
    rt: Runtime | None = getattr(app.state, "runtime", None)
    if rt is not None:
        await _open_queue(app, rt)
    yield
    ingest: IngestQueue | None = getattr(app.state, "ingest_queue", None)
    if ingest is not None:
        await run_in_threadpool(ingest.close)
        app.state.ingest_queue = None


router = APIRouter(prefix="/v1", tags=["tracking"], lifespan=_lifespan)
status_router = APIRouter(prefix="/api/tracking", tags=["tracking"])

_SUCCESS = b'{"success":true}'

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
    ``AUTH_TTL``. Failed keys are never cached. When an entry expires under load, the requests
    arriving meanwhile share one lookup instead of each starting its own in a thread.
    """
    state = request.app.state.__dict__
    cache: dict[str, tuple[float, Source, Workspace]] = state.setdefault("tracking_auth", {})
    pending: dict[str, asyncio.Task[tuple[Source, Workspace]]] = state.setdefault(
        "tracking_auth_pending", {}
    )
    digest = hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()
    now = time.monotonic()
    hit = cache.get(digest)
    if hit is not None and hit[0] > now:
        return hit[1], hit[2]
    task = pending.get(digest)
    if task is None:

        def lookup() -> tuple[Source, Workspace]:
            with rt.db.engine.connect() as conn:
                source = authenticate_write_key(conn, key)
                return source, get_workspace_by_id(conn, source.workspace_id)

        async def verify() -> tuple[Source, Workspace]:
            try:
                found = await run_in_threadpool(lookup)
            finally:
                pending.pop(digest, None)
            if len(cache) > 10_000:
                cache.clear()
            cache[digest] = (time.monotonic() + AUTH_TTL, *found)
            return found

        # A task of its own: a request that goes away does not cancel the others' lookup.
        task = pending[digest] = asyncio.ensure_future(verify())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
    return await asyncio.shield(task)


def _parse(raw: bytes, max_depth: int) -> Any:
    """Parse a body; the nesting walk is skipped when the body has too few brackets to nest
    past ``max_depth`` (a Segment call has a handful: counting them is cheaper than a walk)."""
    if raw.count(b"{") + raw.count(b"[") <= max_depth:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # parse_json words the error
    return parse_json(raw, max_depth)


async def _accept(
    request: Request, limit: int
) -> tuple[Runtime, Source, Workspace, dict[str, Any]]:
    """Size limit, auth, rate limit and JSON parsing: (runtime, source, workspace, body)."""
    rt: Runtime = request.app.state.runtime
    key = _basic_key(request)
    raw = await read_body(request, limit)
    body = _parse(raw, rt.settings.max_json_depth)
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


_OPENING = threading.Lock()


def _get_or_open(app: FastAPI, rt: Runtime) -> IngestQueue:
    with _OPENING:
        ingest: IngestQueue | None = getattr(app.state, "ingest_queue", None)
        if ingest is None:
            directory = spool_directory(rt.settings)
            temporary = directory is None  # in-memory database: a spool that lives as long
            if directory is None:
                directory = Path(tempfile.mkdtemp(prefix="siyu-spool-"))
            ingest = IngestQueue(rt, directory, temporary=temporary)
            ingest.start()
            app.state.ingest_queue = ingest
        return ingest


async def _open_queue(app: FastAPI, rt: Runtime) -> IngestQueue:
    """The app's ingest queue, its spool opened once (file work, so in a thread)."""
    return await run_in_threadpool(_get_or_open, app, rt)


async def _queue(request: Request, rt: Runtime) -> IngestQueue:
    ingest: IngestQueue | None = getattr(request.app.state, "ingest_queue", None)
    if ingest is not None:
        return ingest
    return await _open_queue(request.app, rt)


def _success() -> Response:
    return Response(_SUCCESS, media_type="application/json")


async def _single(request: Request, call: str) -> Response:
    rt, source, ws, body = await _accept(request, rt_settings(request).max_event_bytes)
    body["type"] = call  # the path names the call, as in Segment's API
    received = now_us()
    ingest = await _queue(request, rt)
    # Validated now, so that an invalid call is answered 400 naming its field; the pipeline
    # validates again when it stores the call (its checks against stored data come after).
    result = validate_chunk(
        [Record(1, body)],
        received_at=as_datetime(received),
        max_event_bytes=rt.settings.max_event_bytes,
        max_future_skew=timedelta(seconds=rt.settings.max_future_skew_seconds),
    )
    if result.rejected:
        rejection = result.rejected[0]
        qid = await ingest.reject(ws.workspace_id, source.source_id, rejection, received)
        raise InvalidInput(
            rejection.reason,
            field=rejection.field or None,
            hint="Correct the named field and send the call again; the message is kept in "
            "the quarantine meanwhile (siyu quarantine show ID).",
            details={"quarantine_id": qid, "reason_code": rejection.reason_code},
        )
    await ingest.submit(ws.workspace_id, source.source_id, [body], received)
    return _success()


def rt_settings(request: Request) -> Any:
    return request.app.state.runtime.settings


async def _batch(request: Request) -> Response:
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
    received = now_us()
    ingest = await _queue(request, rt)
    await ingest.submit(ws.workspace_id, source.source_id, messages, received)
    return _success()


def _single_route(call: str) -> None:
    async def endpoint(request: Request) -> Response:
        return await _single(request, call)

    endpoint.__name__ = f"v1_{call}"
    endpoint.__doc__ = f"Segment `{call}` call (one message, at most 32 KB)."
    router.add_api_route(f"/{call}", endpoint, methods=["POST"], openapi_extra=_BODY_DOC)


for _call in CALLS:
    _single_route(_call)


@router.post("/batch", openapi_extra=_BODY_DOC)
async def v1_batch(request: Request) -> Response:
    """Segment batch: up to 500 KB of messages; invalid ones are quarantined, not refused."""
    return await _batch(request)


@router.post("/import", openapi_extra=_BODY_DOC)
async def v1_import(request: Request) -> Response:
    """Alias of /v1/batch (Segment's historical import endpoint)."""
    return await _batch(request)


@status_router.get("/spool")
async def tracking_spool(request: Request, ws: AdminWorkspace) -> dict[str, Any]:
    """The server's tracking spool: records acknowledged but not stored yet, drain errors."""
    rt: Runtime = request.app.state.runtime
    ingest = await _queue(request, rt)
    return ingest.status()


_FAST_SINGLE = {f"/v1/{call}": call for call in CALLS}
_FAST_BATCH = frozenset({"/v1/batch", "/v1/import"})


class FastPath:
    """ASGI middleware: ``POST /v1/*`` straight to its handler, past the router.

    Tracking calls are most of a server's requests, and matching them against every route of
    the API, then building the endpoint's dependencies, cost about a quarter of the event
    loop's time per call (measured with cProfile on thread CPU time). The handlers and the
    error envelope (the app's own ``SiyuError`` handler) are the routes' own; the routes stay
    for the OpenAPI schema and for an app built without this middleware.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        call = _FAST_SINGLE.get(path)
        if scope.get("method") != "POST" or (call is None and path not in _FAST_BATCH):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        response: Response
        try:
            response = await (_single(request, call) if call else _batch(request))
        except SiyuError as exc:
            response = await scope["app"].exception_handlers[SiyuError](request, exc)
        await response(scope, receive, send)
