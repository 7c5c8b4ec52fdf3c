"""Liveness, readiness and version endpoints (no authentication)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from siyu import __version__
from siyu.api import create_app
from siyu.config import Settings
from siyu.runtime import Runtime
from siyu.store import head_revision


def _expected_kind(settings: Settings) -> str:
    return "duckdb" if settings.database_url.startswith("duckdb") else "postgres"


def test_health_reports_database_and_current_schema(
    client: TestClient, settings: Settings, rt: Runtime
) -> None:
    response = client.get("/health")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ok",
        "database": _expected_kind(settings),
        "schema": head_revision(),
        "schema_current": True,
    }
    assert rt.db.kind == _expected_kind(settings)


def test_health_reports_a_database_without_schema(settings: Settings) -> None:
    with Runtime(settings) as rt, TestClient(create_app(settings, rt)) as client:
        body = client.get("/health").json()
    assert body["database"] == _expected_kind(settings)
    assert body["schema"] is None
    assert body["schema_current"] is False


def test_app_opens_and_closes_its_own_database(settings: Settings) -> None:
    """Without a runtime (as under 'siyu serve') the app opens the database in its lifespan."""
    with Runtime(settings) as rt:
        rt.init()
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").json()["schema_current"] is True
    # Closed again: a new runtime can open the same (DuckDB: single-writer) database.
    with Runtime(settings) as rt:
        assert rt.workspace().slug == "default"


def test_version(client: TestClient) -> None:
    response = client.get("/version")
    assert response.status_code == 200
    assert response.json() == {"name": "siyu", "version": __version__}


def test_home_page_links_docs_and_health(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/docs" in response.text
    assert "/health" in response.text
