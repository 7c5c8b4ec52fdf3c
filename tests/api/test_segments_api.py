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


def test_saved_segments_crud_count_refresh_export(
    client: TestClient, make_key: MakeKey, rt: Runtime
) -> None:
    from tests.segments.test_saved import world

    rt.pipeline().ingest(world())
    ws = rt.workspace()
    run_segments(rt.db, ws, as_of=AS_OF)
    run_tags(rt.db, ws, as_of=AS_OF)
    read, write = bearer(make_key("read")), bearer(make_key("write"))

    live = client.post("/api/segments/count", headers=read, json={"expression": "tier:loyal"})
    assert live.status_code == 200
    assert (live.json()["members"], live.json()["customers"]) == (2, 3)
    bad = client.post(
        "/api/segments/count", headers=read, json={"expression": "tier:loyal and tier:nap"}
    )
    assert bad.status_code == 400
    error = bad.json()["error"]
    assert "unknown tier 'nap'" in error["message"]
    assert error["details"]["column"] == 16

    body = {"segment_id": "loyal", "expression": "tier:loyal", "name": "Loyal"}
    assert client.post("/api/segments", headers=read, json=body).status_code == 403
    created = client.post("/api/segments", headers=write, json=body)
    assert created.status_code == 201
    assert created.json()["version"] == 1
    assert client.post("/api/segments", headers=write, json=body).status_code == 409
    patched = client.patch(
        "/api/segments/loyal", headers=write, json={"expression": "tier:loyal and country=='ID'"}
    )
    assert patched.json()["version"] == 2
    assert patched.json()["expression"] == 'tier:loyal and country == "ID"'

    refreshed = client.post("/api/segments/refresh", headers=write).json()
    assert refreshed["members"] == {"loyal": 2}
    listed = client.get("/api/segments", headers=read).json()
    assert listed[0]["last_refresh"]["members"] == 2

    csv_file = client.get("/api/segments/loyal/export", headers=read)
    assert csv_file.status_code == 200
    assert csv_file.headers["x-siyu-rows"] == "2"
    lines = csv_file.text.strip().splitlines()
    assert lines[0].startswith('"customer_id","user_id","email"')
    assert len(lines) == 3
    parquet = client.get("/api/segments/loyal/export?format=parquet", headers=read)
    assert parquet.content[:4] == b"PAR1"

    assert client.delete("/api/segments/loyal", headers=write).status_code == 204
    assert client.get("/api/segments/loyal", headers=read).status_code == 404
