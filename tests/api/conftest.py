"""Fixtures of the API tests: a TestClient on the real app and database, and API keys."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from siyu.access import Workspace, create_key
from siyu.api import create_app
from siyu.config import Settings
from siyu.runtime import Runtime

MakeKey = Callable[..., str]


@pytest.fixture
def client(settings: Settings, rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(settings, rt)) as test_client:
        yield test_client


@pytest.fixture
def workspace(rt: Runtime) -> Workspace:
    return rt.workspace()


@pytest.fixture
def make_key(rt: Runtime, workspace: Workspace) -> MakeKey:
    """Create a key with the given scopes (in the default workspace unless told); return it."""

    def make(*scopes: str, ws: Workspace | None = None, name: str = "test key") -> str:
        with rt.db.engine.begin() as conn:
            _, secret = create_key(conn, (ws or workspace).workspace_id, name, frozenset(scopes))
        return secret

    return make


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}
