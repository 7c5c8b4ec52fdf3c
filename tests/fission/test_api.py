"""The /api/fission routes on both engines: codes, referrals and review, group buys, assists,
process; every state change lands in the event log; errors use the one envelope."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from siyu.access import create_key
from siyu.api import create_app
from siyu.config import Settings
from siyu.fission.common import utcnow
from siyu.runtime import Runtime
from tests.fission.helpers import customer, events, ingest, order


@pytest.fixture
def client(settings: Settings, rt: Runtime) -> Iterator[TestClient]:
    with rt.db.engine.begin() as conn:
        _, secret = create_key(conn, rt.workspace().workspace_id, "t", frozenset({"admin"}))
    with TestClient(create_app(settings, rt)) as c:
        c.headers["Authorization"] = f"Bearer {secret}"
        yield c


def test_referral_routes(rt: Runtime, client: TestClient) -> None:
    koc, friend = customer(rt, "koc"), customer(rt, "friend")
    made = client.post("/api/fission/codes", json={"customer_id": koc})
    assert made.status_code == 201
    code = made.json()["code"]
    assert made.json()["link"].endswith(f"/r/{code}")
    assert client.post("/api/fission/codes", json={"customer_id": koc}).status_code == 200
    ref = client.post("/api/fission/referrals", json={"code": code, "friend_id": friend})
    assert ref.status_code == 201
    rid = ref.json()["referral_id"]
    assert ref.json()["state"] == "pending"
    again = client.post("/api/fission/referrals", json={"code": code, "friend_id": friend})
    assert again.status_code == 200
    assert again.json()["referral_id"] == rid
    # Event published at once.
    assert [e["referral_id"] for e in events(rt, "Referral Created")] == [rid]

    ingest(rt, order("friend", "o-f", 40, at=utcnow()))
    report = client.post("/api/fission/process").json()
    assert report["referrals"]["qualified"] == 1
    assert report["events"] >= 1
    listed = client.get("/api/fission/referrals", params={"state": "qualified"}).json()
    assert [r["referral_id"] for r in listed["referrals"]] == [rid]
    shown = client.get(f"/api/fission/referrals/{rid}").json()
    assert [h["state"] for h in shown["history"]] == ["created", "qualified"]
    assert len(events(rt, "Referral Qualified")) == 1

    metrics = client.get("/api/fission/metrics").json()
    assert (metrics["referrals_created"], metrics["referred_customers"]) == (1, 1)
    assert [i["customer_id"] for i in metrics["top_inviters"]] == [koc]
    backwards = {"since": "2026-03-02T00:00:00", "until": "2026-03-01T00:00:00"}
    assert client.get("/api/fission/metrics", params=backwards).status_code == 400
    # Reviewing: no flag to clear -> 409 in the envelope; reject works.
    refused = client.post(f"/api/fission/referrals/{rid}/review", json={"approve": True})
    assert refused.status_code == 409
    assert "no flag to clear" in refused.json()["error"]["message"]
    rejected = client.post(
        f"/api/fission/referrals/{rid}/review", json={"approve": False, "reason": "fraud_ring"}
    )
    assert rejected.json()["state"] == "rejected"
    assert [e["reason"] for e in events(rt, "Referral Rejected")] == ["fraud_ring"]

    bad = client.get("/api/fission/referrals", params={"state": "done"})
    assert bad.status_code == 400
    assert bad.json()["error"]["field"] == "state"
    missing = client.get("/api/fission/referrals/ref_missing")
    assert missing.status_code == 404
    program = client.put("/api/fission/program", json={"burst_limit": 5}).json()
    assert program["burst_limit"] == 5
    assert client.get("/api/fission/program").json()["burst_limit"] == 5
    assert client.put("/api/fission/program", json={"nope": 1}).status_code == 400


def test_group_buy_routes(rt: Runtime, client: TestClient) -> None:
    lead, a, b = (customer(rt, u) for u in ("lead", "a", "b"))
    body = {
        "campaign_id": "duo",
        "name": "Duo",
        "product_id": "p1",
        "currency": "USD",
        "list_price": 50,
        "group_size": 2,
        "discount_pct": 30,
    }
    made = client.post("/api/fission/groupbuys/campaigns", json=body)
    assert made.status_code == 201
    assert made.json()["tiers"] == [{"members": 2, "price": "35.00"}]
    assert client.post("/api/fission/groupbuys/campaigns", json=body).status_code == 409
    assert [
        c["campaign_id"] for c in client.get("/api/fission/groupbuys/campaigns").json()["campaigns"]
    ] == ["duo"]
    assert client.get("/api/fission/groupbuys/campaigns/duo").json()["group_size"] == 2
    group = client.post("/api/fission/groupbuys/campaigns/duo/groups", json={"leader_id": lead})
    assert group.status_code == 201
    gid = group.json()["group_id"]
    joined = client.post(f"/api/fission/groupbuys/groups/{gid}/join", json={"customer_id": a})
    assert joined.json()["status"] == "completed"
    full = client.post(f"/api/fission/groupbuys/groups/{gid}/join", json={"customer_id": b})
    assert full.status_code == 409
    assert full.json()["error"]["code"] == "group_buy_refused"
    listed = client.get("/api/fission/groupbuys/groups", params={"status": "completed"}).json()
    assert [g["group_id"] for g in listed["groups"]] == [gid]
    assert len(client.get(f"/api/fission/groupbuys/groups/{gid}").json()["member_list"]) == 2
    assert client.post("/api/fission/groupbuys/settle").json() == {"completed": 0, "expired": 0}
    assert len(events(rt, "Group Buy Completed")) == 2
    assert len(events(rt, "Group Buy Opened")) == 1


def test_assist_routes(rt: Runtime, client: TestClient) -> None:
    target, h1, h2 = (customer(rt, u) for u in ("target", "h1", "h2"))
    body = {
        "campaign_id": "unlock",
        "name": "Unlock",
        "thresholds": [{"helpers": 2, "reward": {"kind": "points", "points": 50}}],
    }
    assert client.post("/api/fission/assists/campaigns", json=body).status_code == 201
    assert client.get("/api/fission/assists/campaigns/unlock").json()["daily_cap"] == 3
    assert len(client.get("/api/fission/assists/campaigns").json()["campaigns"]) == 1
    url = "/api/fission/assists/campaigns/unlock/assists"
    first = client.post(url, json={"target_id": target, "helper_id": h1})
    assert first.status_code == 201
    assert first.json()["assists"] == 1
    twice = client.post(url, json={"target_id": target, "helper_id": h1})
    assert twice.status_code == 409
    assert twice.json()["error"]["code"] == "assist_refused"
    second = client.post(url, json={"target_id": target, "helper_id": h2}).json()
    assert [u["threshold"] for u in second["unlocked"]] == [2]
    status = client.get(f"/api/fission/assists/campaigns/unlock/targets/{target}").json()
    assert status["assists"] == 2
    assert [r["threshold"] for r in status["rewards"]] == [2]
    assert len(events(rt, "Assist Given")) == 2
    assert len(events(rt, "Assist Reward Unlocked")) == 1
    with rt.db.engine.connect() as conn:
        unlocked = conn.execute(
            sa.text("SELECT count(*) FROM events WHERE event = 'Assist Reward Unlocked'")
        ).scalar_one()
    assert unlocked == 1
