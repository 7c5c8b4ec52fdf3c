"""The CLI and the HTTP API of journeys, on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from siyu.access.workspaces import utcnow
from siyu.api import create_app
from siyu.cli import app
from siyu.config import Settings
from siyu.runtime import Runtime
from tests.api.conftest import bearer
from tests.journeys.helpers import MIN, ingest, track

JOURNEY = """
id: hello
name: Hello
trigger: {event: {name: Signed Up}}
steps:
  - id: mark
    set_trait: {name: greeted, value: true}
  - id: check
    branch: {if: {attribute: country, op: eq, value: DE}, then: de}
  - id: other
    exit: true
  - id: de
    set_tag: {tag: german}
"""


def test_cli_validate_publish_run_list(rt: Runtime, tmp_path: Path) -> None:
    runner = CliRunner()
    bad = tmp_path / "bad.yaml"
    bad.write_text(JOURNEY.replace("then: de", "then: mark"))
    result = runner.invoke(app, ["journeys", "validate", str(bad)])
    assert result.exit_code != 0
    assert "steps[1].branch.then: 'mark' is not after this step" in str(result.exception)

    good = tmp_path / "hello.yaml"
    good.write_text(JOURNEY)
    result = runner.invoke(app, ["journeys", "validate", str(good)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["journeys", "publish", str(good)])
    assert "Published 'hello' version 1." in result.output
    now = utcnow()
    ingest(rt, [track("ann", "Signed Up", now)], at=now)
    result = runner.invoke(app, ["journeys", "run"])
    assert result.exit_code == 0, result.output
    assert "entered 1, ended 0, steps 3" in result.output
    result = runner.invoke(app, ["journeys", "list"])
    assert "hello" in result.output
    result = runner.invoke(app, ["journeys", "stats", "hello", "--json"])
    assert '"entered": 1' in result.output
    result = runner.invoke(app, ["journeys", "preview", "hello", "--customer", "ann"])
    assert "condition is false -> next" in result.output
    result = runner.invoke(app, ["journeys", "library"])
    assert "cart-abandonment" in result.output
    result = runner.invoke(app, ["journeys", "failures"])
    assert "No failed steps." in result.output


@pytest.fixture
def client(settings: Settings, rt: Runtime) -> TestClient:
    return TestClient(create_app(settings, rt))


def test_api_publish_validate_pause_metrics(rt: Runtime, client: TestClient) -> None:
    from siyu.access import create_key

    with rt.db.engine.begin() as conn:
        _, secret = create_key(conn, rt.workspace().workspace_id, "t", frozenset({"admin"}))
    auth = bearer(secret)
    import yaml

    doc = yaml.safe_load(JOURNEY)
    bad = {**doc, "steps": [{"id": "x", "wait": {"hours": 0}}]}
    response = client.post("/api/journeys/validate", json=bad, headers=auth)
    assert response.status_code == 400
    body = response.json()
    assert body["error"]["code"] == "invalid"
    assert body["error"]["details"]["problems"][0].startswith("steps[0].wait:")

    response = client.post("/api/journeys", json=doc, headers=auth)
    assert response.status_code == 201
    assert response.json() == {"journey_id": "hello", "version": 1, "created": True}
    assert client.post("/api/journeys", json=doc, headers=auth).json()["created"] is False
    assert client.post("/api/journeys/hello/pause", headers=auth).json()["status"] == "paused"
    listed = client.get("/api/journeys", headers=auth).json()
    assert [(j["journey_id"], j["status"]) for j in listed] == [("hello", "paused")]
    client.post("/api/journeys/hello/resume", headers=auth)
    now = utcnow()
    ingest(rt, [track("bo", "Signed Up", now)], at=now)
    report = client.post("/api/journeys/run", json={"now": (now + MIN).isoformat()}, headers=auth)
    assert report.json()["entered"] == 1
    metrics = client.get("/api/journeys/hello/metrics", headers=auth).json()
    assert metrics["entered"] == 1
    assert metrics["exited"] == 1
    assert metrics["steps"]["mark"] == {"done": 1}
    one = client.get("/api/journeys/hello", headers=auth).json()
    assert one["definition"]["steps"][0]["id"] == "mark"
    missing = client.get("/api/journeys/nope/metrics", headers=auth)
    assert missing.status_code == 404
    assert client.get("/api/journeys/failures", headers=auth).json() == []
