"""Request dependencies: the runtime, and API-key authentication with scopes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from siyu.access import ApiKey, Workspace, authenticate, get_workspace_by_id
from siyu.errors import PayloadTooLarge, Unauthorized
from siyu.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthorized("This endpoint needs an API key.")
    return value.strip()


def api_key(request: Request, rt: RuntimeDep) -> ApiKey:
    return authenticate(rt.db.engine, _bearer(request))


KeyDep = Annotated[ApiKey, Depends(api_key)]


class Scoped:
    """Dependency: an API key with ``scope``; yields the key's workspace."""

    def __init__(self, scope: str) -> None:
        self.scope = scope

    def __call__(self, key: KeyDep, rt: RuntimeDep) -> Workspace:
        key.require(self.scope)
        with rt.db.engine.connect() as conn:
            return get_workspace_by_id(conn, key.workspace_id)


ReadWorkspace = Annotated[Workspace, Depends(Scoped("read"))]
WriteWorkspace = Annotated[Workspace, Depends(Scoped("write"))]
AdminWorkspace = Annotated[Workspace, Depends(Scoped("admin"))]


async def limit_batch_size(request: Request, rt: RuntimeDep) -> None:
    """Refuse a body over ``max_batch_bytes`` (413) before it is parsed as JSON."""
    limit = rt.settings.max_batch_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The request body is {declared} bytes; the limit is {limit}.")
    size = len(await request.body())
    if size > limit:
        raise PayloadTooLarge(f"The request body is {size} bytes; the limit is {limit}.")


BatchLimit = Depends(limit_batch_size)
