"""Segments endpoints: catalogue, live rule validation, workspace tags, a customer's segments."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi.testclient import TestClient

from siyu.runtime import Runtime
from siyu.segments import run_segments
from siyu.segments.tagging import run_tags
from tests.api.conftest import MakeKey, bearer
from tests.segments.test_tiers_rfm import AS_OF, buy, view


def test_catalogue_and_rule_validation(client: TestClient, make_key: MakeKey) -> None:
    read = bearer(make_key("read"))
    tags = client.get("/api/tags", headers=read).json()
    assert len(tags) >= 200
    assert {"tag_id", "family", "name_en", "name_zh", "description", "rule"} == set(tags[0])
    ok = client.post("/api/tags/validate", headers=read, json={"rule": "orders_total>1"})
    assert ok.status_code == 200
    assert ok.json() == {"valid": True, "rule": "orders_total > 1"}
    bad = client.post("/api/tags/validate", headers=read, json={"rule": "country in ()"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid"
    assert "1:13" in bad.json()["error"]["message"]


def test_workspace_tag_needs_write_scope(client: TestClient, make_key: MakeKey) -> None:
    body = {"tag_id": "vip", "rule": "spend_365 > 1000", "name_en": "VIP", "name_zh": "贵宾"}
    denied = client.post("/api/tags", headers=bearer(make_key("read")), json=body)
    assert denied.status_code == 403
    created = client.post("/api/tags", headers=bearer(make_key("write")), json=body)
    assert created.status_code == 201
    again = client.post("/api/tags", headers=bearer(make_key("write")), json=body)
    assert again.status_code == 409


def test_customer_segments_and_explain(client: TestClient, make_key: MakeKey, rt: Runtime) -> None:
    rt.pipeline().ingest([view("u", 300), buy("u", 10, 40), buy("u", 20, 40, 1)])
    ws = rt.workspace()
    run_segments(rt.db, ws, as_of=AS_OF)
    run_tags(rt.db, ws, as_of=AS_OF)
    with rt.db.engine.connect() as conn:
        customer = conn.execute(sa.text("SELECT customer_id FROM customers")).scalar_one()
    read = bearer(make_key("read"))
    got = client.get(f"/api/customers/{customer}/segments", headers=read).json()
    assert got["tiers"][0]["tier"] == "active"
    assert "repeat_buyer" in {t["tag_id"] for t in got["tags"]}
    why = client.get(f"/api/customers/{customer}/tags/repeat_buyer/explain", headers=read)
    assert why.status_code == 200
    missing = client.get(f"/api/customers/{customer}/tags/no_such_tag/explain", headers=read)
    assert missing.status_code == 404
