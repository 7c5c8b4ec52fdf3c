"""``siyu predict`` / ``siyu reco`` and the predict API endpoints on the demo brand."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from siyu.access import create_key
from siyu.api import create_app
from siyu.cli import app
from siyu.runtime import Runtime

runner = CliRunner()
AS_OF = "2025-06-30"


def _cli(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def _buyer(rt: Runtime) -> str:
    with rt.db.engine.connect() as conn:
        found: str = conn.execute(
            sa.text("SELECT customer_id FROM orders ORDER BY placed_at DESC, order_id LIMIT 1")
        ).scalar_one()
    return found


def test_cli(demo_rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIYU_DATABASE_URL", demo_rt.settings.database_url)
    evaluation = json.loads(_cli("predict", "evaluate", "--json"))
    assert evaluation["customers"] > 500
    assert evaluation["tracking"][-1]["actual_cumulative"] == evaluation["actual_total"]
    assert "Cumulative repeat purchases" in _cli("predict", "evaluate", "--period-days", "30")
    out = _cli("predict", "churn", "--rules", "--as-of", AS_OF)
    assert "fewer than 2 visits in the last 30 days" in out
    assert "rule score / 100" in out
    assert "Stored" in _cli("reco", "run", "--as-of", AS_OF, "--top", "3")
    buyer = _buyer(demo_rt)
    listed = json.loads(_cli("reco", "for", buyer, "--json"))
    assert [r["rank"] for r in listed] == [1, 2, 3]
    assert listed[0]["product_id"] in _cli("reco", "for", buyer)
    assert "similarity" in _cli("reco", "similar", listed[0]["product_id"], "--top", "2")
    assert "hit-rate@10" in _cli("reco", "evaluate", "--as-of", AS_OF)
    added = _cli("reco", "rule", "add", "yoga mat", "apparel", "--weight", "2")
    rule_id = added.split()[1].rstrip(":")
    assert rule_id in _cli("reco", "rule", "list")
    assert "Removed" in _cli("reco", "rule", "remove", rule_id)
    # The minimums are settings: above the demo's buyer count the CLI refuses and says why.
    monkeypatch.setenv("SIYU_PREDICT_MIN_BUYERS", "100000")
    refused = runner.invoke(app, ["predict", "evaluate"])
    assert refused.exit_code != 0
    assert "the model needs at least 100000" in refused.output + str(refused.exception)
    monkeypatch.delenv("SIYU_PREDICT_MIN_BUYERS")
    bad = runner.invoke(app, ["predict", "churn", "--as-of", "30/06/2025"])
    assert bad.exit_code != 0
    assert "is not a date" in str(bad.exception)


def test_api(demo_rt: Runtime) -> None:
    from siyu.predict.churn import score_churn
    from siyu.predict.reco import recommend_all
    from tests.predict.conftest import DEMO_AS_OF

    ws = demo_rt.workspace()
    score_churn(demo_rt.db, ws, as_of=DEMO_AS_OF, rules=True)
    recommend_all(demo_rt.db, ws, as_of=DEMO_AS_OF, top=4)
    with demo_rt.db.engine.begin() as conn:
        _, read = create_key(conn, ws.workspace_id, "read", frozenset({"read"}))
        _, write = create_key(conn, ws.workspace_id, "write", frozenset({"write"}))
    buyer = _buyer(demo_rt)
    with TestClient(create_app(demo_rt.settings, demo_rt)) as client:
        h = {"Authorization": f"Bearer {read}"}
        scores = client.get(f"/api/customers/{buyer}/scores", headers=h)
        assert scores.status_code == 200, scores.text
        body = scores.json()
        assert 0 <= body["churn_risk"] <= 100
        assert body["churn_method"] == "rules"
        assert len(body["churn_reasons_text"]) == len(body["churn_reasons"])
        recs = client.get(f"/api/customers/{buyer}/recommendations?top=2", headers=h).json()
        assert [r["rank"] for r in recs["recommendations"]] == [1, 2]
        product = recs["recommendations"][0]["product_id"]
        similar = client.get(f"/api/products/{product}/similar?top=2", headers=h).json()
        assert len(similar["similar"]) == 2
        missing = client.get("/api/products/nope/similar", headers=h)
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"
        w = {"Authorization": f"Bearer {write}"}
        denied = client.post(
            "/api/reco/rules", json={"when_bought": "a", "recommend": "b"}, headers=h
        )
        assert denied.status_code == 403
        made = client.post(
            "/api/reco/rules", json={"when_bought": "yoga mat", "recommend": "apparel"}, headers=w
        )
        assert made.status_code == 201, made.text
        rule_id = made.json()["rule_id"]
        assert [r["rule_id"] for r in client.get("/api/reco/rules", headers=h).json()] == [rule_id]
        assert client.delete(f"/api/reco/rules/{rule_id}", headers=w).status_code == 204
        assert client.delete(f"/api/reco/rules/{rule_id}", headers=w).status_code == 404
