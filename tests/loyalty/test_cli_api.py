"""Rewards catalogue, tier multipliers, the CLI and the HTTP API of loyalty (both engines)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from siyu.api import create_app
from siyu.cli import app
from siyu.config import Settings
from siyu.errors import NotFound
from siyu.loyalty.catalogue import redeem_reward
from siyu.loyalty.coupons import quote
from siyu.loyalty.ledger import InsufficientPoints, balances, earn
from siyu.loyalty.program import save_program
from siyu.loyalty.sync import sync
from siyu.runtime import Runtime
from tests.api.conftest import bearer
from tests.loyalty.helpers import customer, events, order

NOW = datetime(2026, 3, 1, 9, 0)

CATALOGUE = {
    "rewards": [
        {
            "id": "eur5",
            "name": "EUR 5 off",
            "points": 400,
            "coupon": {"amount": 5, "currency": "EUR"},
        },
        {"id": "tote", "name": "Tote bag", "points": 250, "item": "TOTE-01"},
    ]
}


def test_points_buy_catalogue_coupons_and_items_once_per_key(rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    with rt.db.engine.begin() as conn:
        save_program(conn, ws, CATALOGUE, NOW)
    cid = customer(rt, "ann", at=NOW)
    earn(rt.db, ws, cid, 700, key="seed", reason="manual", now=NOW, expiry_months=12)
    got = redeem_reward(rt.db, ws, cid, "eur5", key="r1", now=NOW)
    again = redeem_reward(rt.db, ws, cid, "eur5", key="r1", now=NOW)
    assert got.entry.points == -400
    assert got.entry.created
    assert not again.entry.created
    assert got.coupon is not None
    assert again.coupon is not None
    assert again.coupon.code == got.coupon.code
    assert not again.coupon.created
    with rt.db.engine.connect() as conn:
        assert balances(conn, ws, [cid]) == {cid: 300}
        q = quote(
            conn,
            ws,
            got.coupon.code,
            customer_id=cid,
            subtotal=Decimal(30),
            currency="EUR",
            now=NOW,
        )
    assert q.discount == 5
    item = redeem_reward(rt.db, ws, cid, "tote", key="r2", now=NOW)
    assert (item.item, item.coupon, item.entry.reason, item.entry.reference) == (
        "TOTE-01",
        None,
        "item",
        "TOTE-01",
    )
    with pytest.raises(InsufficientPoints, match="50 points available; 400"):
        redeem_reward(rt.db, ws, cid, "eur5", key="r3", now=NOW)
    with pytest.raises(NotFound, match="No reward 'nope'"):
        redeem_reward(rt.db, ws, cid, "nope", key="r4", now=NOW)


def test_tier_multiplier_and_market_rate_apply_together(rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    with rt.db.engine.begin() as conn:
        save_program(conn, ws, {"market_points_per_unit": {"GB": 3}}, NOW)
    cid = customer(rt, "gus", country="GB", at=NOW)
    rt.pipeline().ingest([order("gus", "g1", 600, at=NOW)])
    sync(rt.db, ws, now=NOW.replace(day=2))  # 1800 points at 1x; 600 growth -> Silver (1.25x)
    rt.pipeline().ingest([order("gus", "g2", 10, at=NOW.replace(day=3))])
    sync(rt.db, ws, now=NOW.replace(day=4))
    with rt.db.engine.connect() as conn:
        assert balances(conn, ws, [cid]) == {cid: 1800 + 37}  # floor(10 x 3 x 1.25)


def test_cli_rewards_redeem_show_and_bonus(rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    cid = customer(rt, "cli", at=NOW)
    runner = CliRunner()
    result = runner.invoke(app, ["loyalty", "earn", cid, "800", "--key", "k1"])
    assert result.exit_code == 0, result.output
    assert "Credited 800 points; balance 800." in result.output
    result = runner.invoke(app, ["loyalty", "rewards"])
    assert "free-shipping" in result.output
    assert "10-percent-off" in result.output
    result = runner.invoke(app, ["loyalty", "redeem-reward", cid, "10-percent-off", "--key", "x"])
    assert result.exit_code == 0, result.output
    assert "Redeemed 10% off for 500 points: coupon " in result.output
    assert "balance 300." in result.output
    result = runner.invoke(app, ["loyalty", "redeem", cid, "301", "--key", "k2"])
    assert result.exit_code != 0
    assert "300 points available; 301 were asked for" in str(result.exception)
    result = runner.invoke(app, ["loyalty", "bonus", cid, "signup"])
    assert "signup: 100 points; balance 400." in result.output
    result = runner.invoke(app, ["loyalty", "show", cid, "--json"])
    assert '"balance": 400' in result.output
    assert len(events(rt, "Points Redeemed")) == 1
    assert [e["properties"]["customer_id"] for e in events(rt, "Coupon Issued")] == [cid]
    with rt.db.engine.connect() as conn:
        assert balances(conn, ws, [cid]) == {cid: 400}


@pytest.fixture
def client(settings: Settings, rt: Runtime) -> TestClient:
    return TestClient(create_app(settings, rt))


def test_api_rewards_overspend_envelope_and_profile_section(
    rt: Runtime, client: TestClient
) -> None:
    from siyu.access import create_key

    ws = rt.workspace().workspace_id
    with rt.db.engine.begin() as conn:
        _, secret = create_key(conn, ws, "t", frozenset({"admin"}))
    auth = bearer(secret)
    cid = customer(rt, "api", at=NOW)
    base = f"/api/loyalty/members/{cid}"
    r = client.post(
        f"{base}/points/earn", json={"points": 350, "idempotency_key": "e1"}, headers=auth
    )
    assert r.status_code == 201, r.text
    assert r.json()["balance"] == 350
    r = client.get("/api/loyalty/rewards", headers=auth)
    assert [x["id"] for x in r.json()] == ["free-shipping", "10-percent-off"]
    r = client.post(f"{base}/rewards/free-shipping", json={"idempotency_key": "w1"}, headers=auth)
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["points"], body["balance"], body["coupon"]["description"]) == (
        -300,
        50,
        "free shipping",
    )
    r = client.post(f"{base}/rewards/10-percent-off", json={"idempotency_key": "w2"}, headers=auth)
    assert r.status_code == 409
    err = r.json()["error"]
    assert err["code"] == "insufficient_points"
    assert err["details"] == {"available": 50, "requested": 500}
    r = client.get(f"/api/customers/{cid}", headers=auth)
    assert r.status_code == 200, r.text
    section = r.json()["loyalty"]
    assert section["points"]["balance"] == 50
    assert [c["code"] for c in section["coupons"]] == [body["coupon"]["code"]]
