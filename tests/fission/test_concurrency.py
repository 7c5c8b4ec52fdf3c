"""Simultaneous requests never overfill a group nor issue a reward twice.

Real parallel requests: threads released together by a barrier, through the HTTP API (the app's
thread pool) or each with its own database engine (as separate server processes would).
PostgreSQL relies on row locks and constraints; DuckDB on its write lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from siyu.access import create_key
from siyu.api import create_app
from siyu.config import Settings
from siyu.errors import SiyuError
from siyu.fission.assists import assist
from siyu.fission.assists import create_campaign as create_assist_campaign
from siyu.fission.qualify import process_referrals
from siyu.fission.referrals import invite_code, refer
from siyu.loyalty.tables import coupons
from siyu.runtime import Runtime
from siyu.store.database import Database
from tests.fission.helpers import T0, customer, ingest, order

D = timedelta(days=1)


def _together(n: int, work: Callable[[int], Any]) -> list[Any]:
    barrier = threading.Barrier(n)

    def run(i: int) -> Any:
        barrier.wait()
        return work(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def _engines(settings: Settings, rt: Runtime, n: int) -> list[Database]:
    """One engine per worker on PostgreSQL; DuckDB allows one process per file (shared)."""
    if rt.db.kind == "postgres":
        return [Database.open(settings.database_url) for _ in range(n)]
    return []


def test_parallel_joins_never_overfill_a_group(settings: Settings, rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    lead = customer(rt, "lead")
    friends = [customer(rt, f"f{i}") for i in range(8)]
    with rt.db.engine.begin() as conn:
        _, secret = create_key(conn, ws, "t", frozenset({"admin"}))
    headers = {"Authorization": f"Bearer {secret}"}
    campaign = {
        "campaign_id": "trio",
        "name": "Trio",
        "product_id": "p",
        "currency": "USD",
        "list_price": 30,
        "group_size": 3,
        "price": 20,
    }
    with TestClient(create_app(settings, rt)) as client:
        assert client.post(
            "/api/fission/groupbuys/campaigns", json=campaign, headers=headers
        ).is_success
        url = "/api/fission/groupbuys/campaigns/trio/groups"
        gid = client.post(url, json={"leader_id": lead}, headers=headers).json()["group_id"]

        def join(i: int) -> int:
            url = f"/api/fission/groupbuys/groups/{gid}/join"
            return client.post(url, json={"customer_id": friends[i]}, headers=headers).status_code

        codes = _together(8, join)
        group = client.get(f"/api/fission/groupbuys/groups/{gid}", headers=headers).json()
    assert sorted(codes) == [200, 200] + [409] * 6
    assert group["members"] == 3
    assert group["status"] == "completed"
    assert [m["seat"] for m in group["member_list"]] == [1, 2, 3]
    with rt.db.engine.connect() as conn:
        seats = conn.execute(sa.text("SELECT count(*) FROM group_buy_members")).scalar_one()
        opened = conn.execute(
            sa.text("SELECT count(*) FROM events WHERE event = 'Group Buy Completed'")
        ).scalar_one()
    assert seats == 3
    assert opened == 3


def test_parallel_assists_issue_each_reward_once_and_keep_the_cap(
    settings: Settings, rt: Runtime
) -> None:
    ws = rt.workspace().workspace_id
    target = customer(rt, "target")
    helpers = [customer(rt, f"h{i}") for i in range(8)]
    busy = customer(rt, "busy")
    others = [customer(rt, f"t{i}") for i in range(6)]
    reward = {"kind": "coupon", "amount": 5, "currency": "USD"}
    with rt.db.engine.begin() as conn:
        cid = create_assist_campaign(
            conn,
            ws,
            name="Unlock",
            thresholds=[{"helpers": 3, "reward": reward}],
            base_currency="USD",
            now=T0,
        )["campaign_id"]
    dbs = _engines(settings, rt, 8)

    def db_of(i: int) -> Database:
        return dbs[i % len(dbs)] if dbs else rt.db

    def help_target(i: int) -> str:
        try:
            assist(db_of(i), ws, cid, target, helpers[i], now=T0 + D)
            return "ok"
        except SiyuError as exc:
            return exc.code

    def busy_helper(i: int) -> str:
        try:
            assist(db_of(i), ws, cid, others[i], busy, now=T0 + D)
            return "ok"
        except SiyuError as exc:
            return exc.code

    try:
        assert _together(8, help_target) == ["ok"] * 8
        outcomes = _together(6, busy_helper)
    finally:
        for db in dbs:
            db.close()
    # The daily cap (3) holds under simultaneous assists by one helper.
    assert outcomes.count("ok") == 3
    assert set(outcomes) == {"ok", "assist_refused"}
    with rt.db.engine.connect() as conn:
        issued = conn.execute(
            sa.select(sa.func.count()).select_from(coupons).where(coupons.c.customer_id == target)
        ).scalar_one()
        recorded = conn.execute(sa.text("SELECT count(*) FROM assist_rewards")).scalar_one()
    assert issued == 1
    assert recorded == 1


def test_parallel_processors_reward_each_referral_once(settings: Settings, rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    code = invite_code(rt.db, ws, customer(rt, "koc")).code
    friends = [customer(rt, f"f{i}") for i in range(3)]
    for f in friends:
        refer(rt.db, ws, code, f, now=T0)
    ingest(rt, *[order(f"f{i}", f"o{i}", 40, at=T0 + D) for i in range(3)])
    process_referrals(rt.db, ws, now=T0 + 2 * D)
    dbs = _engines(settings, rt, 4)

    def run(i: int) -> int:
        return process_referrals(dbs[i] if dbs else rt.db, ws, now=T0 + 40 * D).rewarded

    try:
        rewarded = _together(4, run)
    finally:
        for db in dbs:
            db.close()
    # Several processors may each record a state change, but the coupons exist once per side.
    assert sum(rewarded) >= 3
    with rt.db.engine.connect() as conn:
        issued = conn.execute(sa.select(sa.func.count()).select_from(coupons)).scalar_one()
        states = conn.execute(sa.text("SELECT DISTINCT state FROM referrals")).scalars().all()
    assert issued == 6  # two sides x three referrals
    assert states == ["rewarded"]


def test_parallel_referrals_of_one_friend_keep_one(settings: Settings, rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    codes = [invite_code(rt.db, ws, customer(rt, f"koc{i}")).code for i in range(6)]
    friend = customer(rt, "friend")
    dbs = _engines(settings, rt, 6)

    def run(i: int) -> tuple[str, bool]:
        row, created = refer(dbs[i] if dbs else rt.db, ws, codes[i], friend, now=T0)
        return str(row["referral_id"]), created

    try:
        results = _together(6, run)
    finally:
        for db in dbs:
            db.close()
    assert [created for _, created in results].count(True) == 1
    assert len({rid for rid, _ in results}) == 1
    with rt.db.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM referrals")).scalar_one() == 1
