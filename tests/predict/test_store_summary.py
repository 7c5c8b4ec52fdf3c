"""The calibration summary from the order store equals the NumPy one, on both engines.

The CDNOW sample goes in through the ingestion pipeline as Order Completed events; the Ibis
summary computed by the database must equal rfm_summary on the raw file, and BG/NBD fitted on it
must give the published estimates.
"""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from siyu.compute import tables
from siyu.errors import InvalidInput
from siyu.predict import BetaGeoFitter, rfm_summary, store_summary
from siyu.predict.store_summary import calibration_summary, calibration_summary_arrow
from siyu.runtime import Runtime
from siyu.store.schema import orders


def _messages(transactions: pd.DataFrame) -> list[dict[str, object]]:
    return [
        {
            "type": "track",
            "event": "Order Completed",
            "userId": f"cdnow-{cid}",
            "messageId": f"cdnow-{i}",
            "timestamp": f"{day:%Y-%m-%d}T12:00:00Z",
            "properties": {"order_id": f"cdnow-{i}", "total": float(amount), "currency": "USD"},
        }
        for i, (cid, day, amount) in enumerate(
            zip(
                transactions["customer_id"],
                transactions["date"],
                transactions["amount"],
                strict=True,
            )
        )
    ]


def test_store_summary_equals_numpy_and_fits_cdnow(
    rt: Runtime, cdnow_transactions: pd.DataFrame, cdnow: pd.DataFrame
) -> None:
    report = rt.pipeline().ingest(_messages(cdnow_transactions))
    assert report.stored == len(cdnow_transactions)
    t = tables(rt.db, rt.workspace().workspace_id)
    got = calibration_summary(
        t,
        calibration_end=date(1997, 9, 30),
        holdout_end=date(1998, 6, 30),
        time_unit="W",
    ).execute()
    with rt.db.engine.connect() as conn:
        ids = dict(conn.execute(sa.text("SELECT customer_id, user_id FROM customers")).all())
    got.index = [int(ids[c].removeprefix("cdnow-")) for c in got["customer_id"]]
    got = got.sort_index()
    expected = cdnow.sort_index()
    assert list(got.index) == list(expected.index)
    for column in ("frequency", "recency", "T", "frequency_holdout", "duration_holdout"):
        np.testing.assert_allclose(got[column].astype(float), expected[column], atol=1e-9)
    np.testing.assert_allclose(got["monetary_value"], expected["monetary_value"], atol=1e-6)
    model = BetaGeoFitter().fit(got["frequency"], got["recency"], got["T"])
    assert {k: round(v, 3) for k, v in model.params_.items()} == {
        "r": 0.243,
        "alpha": 4.414,
        "a": 0.793,
        "b": 2.426,
    }


def test_bad_periods_are_refused(rt: Runtime) -> None:
    t = tables(rt.db, rt.workspace().workspace_id)
    with pytest.raises(InvalidInput, match="holdout_end"):
        calibration_summary(t, calibration_end=date(2025, 1, 1), holdout_end=date(2024, 1, 1))
    with pytest.raises(InvalidInput, match="time_unit"):
        calibration_summary(t, calibration_end=date(2025, 1, 1), time_unit="M")  # type: ignore[arg-type]


def _order(
    ws: str, n: int, customer: str | None, at: str, total: float, **extra: object
) -> dict[str, object]:
    return {
        "workspace_id": ws,
        "order_id": f"o{n}",
        "customer_id": customer,
        "message_id": f"m{n}",
        "placed_at": datetime.fromisoformat(at),
        "currency": "USD",
        "total": total,
        "line_count": 1,
        "base_currency": "USD",
        "fx_rate": 1,
        "total_base": total,
        "refunded": extra.get("refunded_base", 0),
        "refunded_base": extra.get("refunded_base", 0),
        "status": extra.get("status", "completed"),
        "updated_at": datetime.fromisoformat(at),
    }


@pytest.mark.parametrize("bitstring", [True, False], ids=["bitstring", "two-group-bys"])
@pytest.mark.parametrize("first_orders", [3, 1])
def test_summary_counts_days_once_and_leaves_out_cancelled_and_refunded(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch, bitstring: bool, first_orders: int
) -> None:
    # Both ways of counting days on DuckDB (the bitstring, and the two group-bys that
    # PostgreSQL and long histories use) give the same summary as rfm_summary.
    if not bitstring:
        monkeypatch.setattr(store_summary, "MAX_BITSTRING_DAYS", -1)
    # With one first order read, every customer with two orders on her first day takes the
    # second query.
    monkeypatch.setattr(store_summary, "FIRST_ORDERS", first_orders)
    ws = rt.workspace().workspace_id
    log = [
        # a: two orders on her first day (one summed transaction), one later, one after the cut-off
        ("a", "2025-01-01T08:00:00", 10.0, {}),
        ("a", "2025-01-01T23:59:59", 5.0, {}),
        ("a", "2025-02-01T12:00:00", 30.0, {}),
        ("a", "2025-04-01T00:00:00", 99.0, {}),
        # b: a cancelled and a fully refunded order left out, a partial refund netted
        ("b", "2024-12-01T10:00:00", 20.0, {}),
        ("b", "2024-12-05T10:00:00", 50.0, {"status": "cancelled"}),
        ("b", "2024-12-06T10:00:00", 50.0, {"status": "refunded", "refunded_base": 50.0}),
        ("b", "2025-01-10T10:00:00", 40.0, {"status": "partially_refunded", "refunded_base": 15.0}),
        ("b", "2025-01-10T18:00:00", 5.0, {}),
        ("b", "2025-03-31T23:59:59", 12.0, {}),
        # e: four orders on her first day (more than the first orders read in the fast path)
        ("e", "2025-02-01T01:00:00", 1.0, {}),
        ("e", "2025-02-01T02:00:00", 2.0, {}),
        ("e", "2025-02-01T03:00:00", 4.0, {}),
        ("e", "2025-02-01T04:00:00", 8.0, {}),
        ("e", "2025-02-03T04:00:00", 16.0, {}),
        # c: one order only; d: only after the cut-off (not a customer yet); no customer at all
        ("c", "2025-03-01T09:00:00", 7.0, {}),
        ("d", "2025-04-02T09:00:00", 7.0, {}),
        (None, "2025-03-02T09:00:00", 7.0, {}),
    ]
    with rt.db.engine.begin() as conn:
        conn.execute(
            sa.insert(orders),
            [_order(ws, i, c, at, total, **extra) for i, (c, at, total, extra) in enumerate(log)],
        )
    t = tables(rt.db, ws)
    got = (
        calibration_summary(t, calibration_end=date(2025, 3, 31), time_unit="D")
        .to_pyarrow()
        .to_pandas()
        .set_index("customer_id")
        .sort_index()
    )
    arrow = (
        calibration_summary_arrow(t, calibration_end=date(2025, 3, 31), time_unit="D")
        .to_pandas()
        .set_index("customer_id")
        .sort_index()
    )
    pd.testing.assert_frame_equal(arrow, got, check_dtype=False)
    counted = pd.DataFrame(
        [
            (c, at, total - extra.get("refunded_base", 0.0))
            for c, at, total, extra in log
            if c is not None and extra.get("status") not in ("cancelled", "refunded")
        ],
        columns=["customer_id", "date", "amount"],
    )
    expected = rfm_summary(counted, calibration_end="2025-03-31", time_unit="D").sort_index()
    assert list(got.index) == ["a", "b", "c", "e"] == list(expected.index)
    for column in ("frequency", "recency", "T", "monetary_value"):
        np.testing.assert_allclose(got[column].astype(float), expected[column], atol=1e-9)
    assert got.loc["a"].tolist() == [1, 31.0, 89.0, 30.0]
    # b: days 12-01 (20), 01-10 (25 + 5), 03-31 (12): two repeat days worth 42
    assert got.loc["b"].tolist() == [2, 120.0, 120.0, 21.0]
    assert got.loc["e"].tolist() == [1, 2.0, 58.0, 16.0]
