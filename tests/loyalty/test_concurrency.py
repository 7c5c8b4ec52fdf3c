"""Simultaneous requests never overspend a balance nor use a coupon beyond its limits.

Real parallel requests: threads released together by a barrier, each through the HTTP API
(the app's thread pool) or through its own database engine (as separate server processes would).
Run on PostgreSQL (row locks) and DuckDB (the write lock).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from siyu.access import create_key
from siyu.api import create_app
from siyu.config import Settings
from siyu.errors import SiyuError
from siyu.loyalty.coupons import create_campaign, issue, redeem_code
from siyu.loyalty.ledger import earn
from siyu.runtime import Runtime
from siyu.store.database import Database
from tests.loyalty.helpers import customer

NOW = datetime(2026, 6, 1, 8, 0)


def _together(n: int, work: Callable[[int], Any]) -> list[Any]:
    barrier = threading.Barrier(n)

    def run(i: int) -> Any:
        barrier.wait()
        return work(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def test_parallel_redemptions_never_overspend(settings: Settings, rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    cid = customer(rt, "ann", at=NOW)
    earn(rt.db, ws, cid, 60, key="lot-a", reason="signup", now=NOW)
    earn(rt.db, ws, cid, 40, key="lot-b", reason="review", now=NOW)
    with rt.db.engine.begin() as conn:
        _, secret = create_key(conn, ws, "test", frozenset({"write"}))
    headers = {"Authorization": f"Bearer {secret}"}
    with TestClient(create_app(settings, rt)) as client:

        def spend(i: int) -> int:
            body = {"points": 30, "idempotency_key": f"checkout-{i}"}
            url = f"/api/loyalty/members/{cid}/points/redeem"
            return client.post(url, json=body, headers=headers).status_code

        codes = _together(8, spend)
        assert sorted(codes) == [201] * 3 + [409] * 5
        refused = client.post(
            f"/api/loyalty/members/{cid}/points/redeem",
            json={"points": 30, "idempotency_key": "late"},
            headers=headers,
        ).json()
        assert refused["error"]["code"] == "insufficient_points"
        assert refused["error"]["details"] == {"available": 10, "requested": 30}
        points = client.get(f"/api/loyalty/members/{cid}/points", headers=headers).json()
    assert points["balance"] == 10
    with rt.db.engine.connect() as conn:
        lots = conn.execute(
            sa.text(
                "SELECT lot_id, SUM(amount) FROM points_ledger WHERE lot_id IS NOT NULL "
                "GROUP BY lot_id ORDER BY lot_id"
            )
        ).all()
    assert [(lot, int(left)) for lot, left in lots] == [("lot-a", 0), ("lot-b", 10)]


def test_parallel_checkouts_never_exceed_coupon_limits(settings: Settings, rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    with rt.db.engine.begin() as conn:
        create_campaign(
            conn,
            ws,
            "FLASH",
            name="Flash",
            spec={"amount": 5, "currency": "USD"},
            now=NOW,
            global_limit=3,
            per_customer_limit=1,
        )
    codes = [
        issue(rt.db, ws, key=f"k{i}", now=NOW, campaign_id="FLASH", customer_id=f"c{i}").code
        for i in range(10)
    ]
    shared = issue(rt.db, ws, key="shared", now=NOW, spec={"percent": 10}, max_uses=2).code
    # PostgreSQL: one engine per worker, like separate server processes. DuckDB allows one
    # process per file, so its workers share the runtime's database (and its write lock).
    dbs = (
        [Database.open(settings.database_url) for _ in range(6)] if rt.db.kind == "postgres" else []
    )

    def db_of(i: int) -> Database:
        return dbs[i % len(dbs)] if dbs else rt.db

    def checkout(i: int) -> str:
        code, cid = (codes[i], f"c{i}") if i < 10 else (shared, f"x{i}")
        try:
            redeem_code(
                db_of(i),
                ws,
                code,
                order_id=f"o{i}",
                customer_id=cid,
                subtotal=Decimal(50),
                currency="USD",
                now=NOW,
            )
            return "ok"
        except SiyuError as exc:
            return exc.code

    try:
        results = _together(16, checkout)
    finally:
        for db in dbs:
            db.close()
    assert results[:10].count("ok") == 3  # the campaign's global limit
    assert results[10:].count("ok") == 2  # the shared code's max uses
    assert set(results) == {"ok", "coupon_refused"}
    with rt.db.engine.connect() as conn:
        per_campaign = conn.execute(
            sa.text("SELECT campaign_id, COUNT(*) FROM coupon_redemptions GROUP BY campaign_id")
        ).all()
    assert sorted((c or "", int(n)) for c, n in per_campaign) == [("", 2), ("FLASH", 3)]


def test_parallel_reward_redemptions_give_one_coupon_per_points_spent(
    settings: Settings, rt: Runtime
) -> None:
    # 8 simultaneous requests for the 300-point free-shipping reward on a balance of 700, plus
    # 4 retries of one request: two rewards are paid, each with exactly one coupon.
    ws = rt.workspace().workspace_id
    cid = customer(rt, "bea", at=NOW)
    earn(rt.db, ws, cid, 700, key="seed", reason="signup", now=NOW)
    with rt.db.engine.begin() as conn:
        _, secret = create_key(conn, ws, "test", frozenset({"write"}))
    headers = {"Authorization": f"Bearer {secret}"}
    with TestClient(create_app(settings, rt)) as client:

        def take(i: int) -> tuple[int, str | None]:
            key = f"redeem-{i}" if i < 8 else "redeem-retried"
            r = client.post(
                f"/api/loyalty/members/{cid}/rewards/free-shipping",
                json={"idempotency_key": key},
                headers=headers,
            )
            coupon = r.json().get("coupon") if r.status_code == 201 else None
            return r.status_code, coupon["code"] if coupon else None

        results = _together(12, take)
    paid = [code for status, code in results if status == 201]
    assert sorted(status for status, _ in results).count(409) == len(results) - len(paid)
    with rt.db.engine.connect() as conn:
        balance = conn.execute(sa.text("SELECT SUM(amount) FROM points_ledger")).scalar_one()
        issued = conn.execute(sa.text("SELECT code FROM coupons ORDER BY code")).scalars().all()
    assert int(balance) == 100  # 700 - 2 x 300: never overspent
    assert sorted(set(paid)) == list(issued)  # every 201 names a coupon that exists
    assert len(issued) == 2  # one coupon per reward paid, retries included
