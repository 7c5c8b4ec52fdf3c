"""The HTTP API (FastAPI): one router per slice, one JSON error envelope."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from siyu import __version__
from siyu.api import errors
from siyu.api.routers import fission as fission_router
from siyu.api.routers import (
    health,
    identity,
    manage,
    predict,
    profiles,
    segments,
    tracking,
    webhooks,
)
from siyu.api.routers import invites as invites_router
from siyu.api.routers import journeys as journeys_router
from siyu.api.routers import loyalty as loyalty_router
from siyu.api.routers import messaging as messaging_router
from siyu.config import Settings
from siyu.runtime import Runtime


def create_app(settings: Settings, runtime: Runtime | None = None) -> FastAPI:
    """Build the app. The database opens with the app's lifespan unless a runtime is given."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = runtime is None
        app.state.runtime = runtime or Runtime(settings)
        scheduler = None
        if own and settings.segments_every_days > 0:
            from siyu.segments.schedule import schedule_forever

            scheduler = asyncio.create_task(schedule_forever(app.state.runtime))
        resolver = None
        if own and settings.identity_resolve == "background":
            from siyu.identity.hook import resolve_forever

            resolver = asyncio.create_task(resolve_forever(app.state.runtime))
        worker = None
        if own and settings.journeys_every_seconds > 0:
            from siyu.journeys.schedule import work_forever

            worker = asyncio.create_task(work_forever(app.state.runtime))
        fission = None
        if own and settings.fission_every_seconds > 0:
            from siyu.fission.schedule import process_forever

            fission = asyncio.create_task(process_forever(app.state.runtime))
        try:
            yield
        finally:
            if scheduler is not None:
                scheduler.cancel()
            if resolver is not None:
                resolver.cancel()
            if worker is not None:
                worker.cancel()
            if fission is not None:
                fission.cancel()
            if own:
                app.state.runtime.db.close()

    app = FastAPI(title="siyu", version=__version__, lifespan=lifespan)
    app.add_middleware(tracking.FastPath)
    if runtime is not None:
        app.state.runtime = runtime
    errors.install(app)
    # The tracking API first: routes are matched in order, and it takes most requests.
    app.include_router(tracking.router)
    app.include_router(tracking.status_router)
    app.include_router(health.router)
    app.include_router(manage.router)
    app.include_router(loyalty_router.router)
    app.include_router(journeys_router.router)
    app.include_router(fission_router.router)
    app.include_router(invites_router.router)
    app.include_router(messaging_router.router)
    app.include_router(predict.router)
    app.include_router(identity.router)
    app.include_router(profiles.router)
    app.include_router(segments.router)
    app.include_router(webhooks.router)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home() -> str:
        return (
            "<!doctype html><html lang='en'><meta charset='utf-8'><title>siyu</title>"
            "<h1>siyu 私域</h1><p>The API is running. Reference: <a href='/docs'>/docs</a>; "
            "health: <a href='/health'>/health</a>.</p></html>"
        )

    return app


__all__ = ["create_app"]
