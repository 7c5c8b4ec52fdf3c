"""Tier rules at day 29/30/31 (and the other day boundaries), the DTC RFM preset, per-market RFM.

On DuckDB and PostgreSQL. Days are whole days before ``as_of`` ("within the last 30 days" holds
29 days ago, not 30).
"""

from __future__ import annotations

from typing import Any

from siyu.runtime import Runtime
from siyu.segments import RfmConfig, TierConfig, segments_expr
from tests.segments.test_tiers_rfm import AS_OF, buy, tiers_of, view


def _identify(user: str, country: str) -> dict[str, Any]:
    return {
        "type": "identify",
        "userId": user,
        "timestamp": "2024-01-01T00:00:00Z",
        "messageId": f"id-{user}",
        "traits": {"country": country},
    }


def _recent(user: str) -> list[dict[str, Any]]:
    """Three interactions in the last 30 days (the potential tier's default)."""
    return [view(user, d, 10 + i) for i, d in enumerate((1, 2, 3))]


def test_day_boundaries_29_30_31_and_more(rt: Runtime) -> None:
    records = [
        view("first29", 29),
        view("first30", 30),
        view("first31", 31),
        *[
            r
            for u, d in (("pot30", 30), ("pot90", 90), ("pot91", 91))
            for r in (view(u, d), *_recent(u))
        ],
        *[
            r
            for u, d in (("last179", 179), ("last180", 180), ("last181", 181))
            for r in (view(u, 400), view(u, d, 1))
        ],
    ]
    got = tiers_of(rt, records)
    assert [got["first29"], got["first30"], got["first31"]] == [
        "new",
        "unclassified",
        "unclassified",
    ]
    assert [got["pot30"], got["pot90"], got["pot91"]] == ["potential", "potential", "unclassified"]
    assert [got["last179"], got["last180"], got["last181"]] == [
        "unclassified",
        "churned",
        "churned",
    ]


def test_dtc_rfm_five_segments(rt: Runtime) -> None:
    records = [
        view("hv", 300),
        *[buy("hv", d, 150) for d in (5, 10, 15, 20)],  # R5 F4 M5
        view("cr", 300),
        *[buy("cr", d, 150) for d in (200, 210, 220, 230)],  # R2 F4 M5
        view("nw", 300),
        buy("nw", 3, 20),  # R5 F1 M1
        view("pt", 300),
        *[buy("pt", d, 30) for d in (100, 120)],  # R3 F2 M2
        view("lv", 330),
        buy("lv", 300, 10),  # R2 F1 M1
        view("np", 10),
    ]
    rt.pipeline().ingest(records)
    ws = rt.workspace().workspace_id
    config = RfmConfig(method="thresholds")
    df = segments_expr(rt.db, ws, AS_OF, TierConfig(model="dtc_rfm"), config).execute()
    with rt.db.engine.connect() as conn:
        users = dict(conn.exec_driver_sql("SELECT customer_id, user_id FROM customers").all())
    got = {users[c]: t for c, t in zip(df["customer_id"], df["tier"], strict=True)}
    assert got == {
        "hv": "high_value",
        "cr": "churn_risk",
        "nw": "new",
        "pt": "potential",
        "lv": "low_value",
        "np": "no_purchase",
    }


def test_rfm_per_market_quintiles(rt: Runtime) -> None:
    records: list[dict[str, Any]] = []
    for market, unit in (("ID", 1), ("DE", 100)):
        for i in range(5):
            user = f"{market}{i}"
            records += [_identify(user, market), buy(user, 10, unit * (i + 1))]
    rt.pipeline().ingest(records)
    ws = rt.workspace().workspace_id
    scores = {}
    for per_market in (False, True):
        config = RfmConfig(per_market=per_market)
        df = segments_expr(rt.db, ws, AS_OF, TierConfig(), config).execute()
        with rt.db.engine.connect() as conn:
            users = dict(conn.exec_driver_sql("SELECT customer_id, user_id FROM customers").all())
        scores[per_market] = {
            users[c]: int(m) for c, m in zip(df["customer_id"], df["m_score"], strict=True)
        }
    # Across the workspace the Indonesians fill the lower quintiles (the top one scores 3) ...
    assert [scores[False][f"ID{i}"] for i in range(5)] == [1, 1, 2, 2, 3]
    assert [scores[False][f"DE{i}"] for i in range(5)] == [3, 4, 4, 5, 5]
    # ... within each market the biggest spender scores 5 and the smallest 1.
    assert [scores[True][f"ID{i}"] for i in range(5)] == [1, 2, 3, 4, 5]
    assert [scores[True][f"DE{i}"] for i in range(5)] == [1, 2, 3, 4, 5]
