"""Per-kind limits counted per time window (``identity_limit_windows``), on both engines."""

from __future__ import annotations

import itertools
from typing import Any

import sqlalchemy as sa

from siyu.collect.sources import ensure_source
from siyu.identity.graph import resolve_new_events, resolve_workspace
from siyu.identity.resolve import Limits
from siyu.runtime import Runtime
from tests.identity.helpers import identify, ingest, scalar

WINDOWS = {"email": 30}


def _at(msg: dict[str, Any], when: str) -> dict[str, Any]:
    return {**msg, "timestamp": f"{when}T10:00:00Z"}


def _spread(account: str, prefix: str) -> list[dict[str, Any]]:
    """Six addresses over a year: never more than three within 30 days."""
    days = ["2025-01-02", "2025-01-09", "2025-01-16", "2025-06-02", "2025-06-09", "2025-06-16"]
    return [
        _at(identify(account, email=f"{prefix}{i}@mail.co", message_id=f"{prefix}-{i}"), d)
        for i, d in enumerate(days)
    ]


def _burst(account: str, prefix: str) -> list[dict[str, Any]]:
    """Six addresses in one week: a shared or abused account."""
    return [
        _at(identify(account, email=f"{prefix}{i}@mail.co", message_id=f"{prefix}-{i}"), d)
        for i, d in enumerate(f"2025-03-{day:02d}" for day in range(1, 7))
    ]


def _email_customers(rt: Runtime, prefix: str) -> int:
    return int(
        scalar(
            rt,
            "SELECT count(DISTINCT customer_id) FROM identities WHERE kind = 'email' "
            "AND value LIKE :p",
            p=f"{prefix}%",
        )
    )


def _resolve(rt: Runtime, windows: dict[str, int] | None) -> None:
    with rt.db.engine.begin() as conn:
        resolve_workspace(conn, rt.workspace().workspace_id, windows=windows)


def test_a_window_admits_values_spread_over_time_and_refuses_a_burst(rt: Runtime) -> None:
    ingest(rt, "shopify", _spread("6100000091", "spread") + _burst("6100000092", "burst"))
    _resolve(rt, None)  # the kind's plain limit: at most 5 emails ever
    assert _email_customers(rt, "spread") == 2
    assert _email_customers(rt, "burst") == 2
    _resolve(rt, WINDOWS)  # at most 5 emails first seen within any 30 days
    assert _email_customers(rt, "spread") == 1
    assert _email_customers(rt, "burst") == 2
    with rt.db.engine.connect() as conn:
        reasons = [
            str(r)
            for (r,) in conn.execute(
                sa.text("SELECT reason FROM identity_conflicts WHERE rule = 'limit:email'")
            )
        ]
    assert len(reasons) == 1
    assert "6 email values first seen within 30 days (at most 5)" in reasons[0]


def test_a_window_of_zero_in_the_setting_removes_the_window(rt: Runtime) -> None:
    ingest(rt, "shopify", _spread("6100000093", "zero"))
    _resolve(rt, {"email": 0})
    assert _email_customers(rt, "zero") == 2


def test_incremental_equals_full_with_windows(rt: Runtime) -> None:
    """Batches in an order that sees the burst's values in two halves still end where a full
    rebuild does."""
    ws = rt.workspace()
    with rt.db.engine.begin() as conn:
        source = ensure_source(conn, ws.workspace_id, "shopify", "shopify").source_id
    messages = _spread("6100000094", "inc") + _burst("6100000095", "hot")
    order = [5, 11, 0, 6, 7, 3, 1, 8, 2, 9, 4, 10]
    pipeline = rt.pipeline(ws)
    for lo, hi in itertools.pairwise([0, 4, 7, 12]):
        batch = [messages[i] for i in order[lo:hi]]
        pipeline.ingest(batch, source_id=source)
        with rt.db.engine.begin() as conn:
            resolve_new_events(
                conn, ws.workspace_id, [m["messageId"] for m in batch], windows=WINDOWS
            )

    def snapshot() -> tuple[object, ...]:
        with rt.db.engine.connect() as conn:
            return tuple(
                tuple(tuple(r) for r in conn.execute(sa.text(q)))
                for q in (
                    "SELECT kind, value, customer_id FROM identities ORDER BY 1, 2",
                    "SELECT rule, kind, value, other_kind, other_value FROM identity_conflicts "
                    "ORDER BY 1, 2, 3, 4, 5",
                )
            )

    incremental = snapshot()
    _resolve(rt, WINDOWS)
    assert snapshot() == incremental
    assert _email_customers(rt, "inc") == 1
    assert _email_customers(rt, "hot") == 2


def test_window_count_is_the_busiest_window() -> None:
    limits = Limits(most={"email": 2}, window={"email": 10})
    assert limits.count("email", [0, 5, 9, 30]) == 3  # 0, 5 and 9 fall in [0, 10)
    assert limits.count("email", [0, 10, 20]) == 1
    assert limits.count("email", [0, 1]) == 2  # within the limit: the plain count
