"""rfm_summary: transaction log -> frequency, recency, T, monetary_value (+ holdout)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siyu.errors import InvalidInput
from siyu.predict import rfm_summary

LOG = pd.DataFrame(
    [
        ("A", "2024-01-01", 10.0),
        ("A", "2024-01-01", 5.0),  # same day as the first: one transaction of 15
        ("A", "2024-01-08", 20.0),
        ("A", "2024-01-22", 30.0),
        ("A", "2024-02-05", 7.0),  # holdout
        ("B", "2024-01-15", 50.0),
        ("C", "2024-02-01", 9.0),  # first purchase after the calibration end: not a customer yet
        ("D", "2024-01-10", 12.0),
        ("D", "2024-01-31", 8.0),  # on the calibration end date: still calibration
        ("D", "2024-02-10", 1.0),
        ("D", "2024-02-10", 2.0),  # holdout, same day: one transaction of 3
        ("D", "2024-03-01", 100.0),  # after the holdout end
    ],
    columns=["customer_id", "date", "amount"],
)


def test_weekly_summary_by_hand() -> None:
    out = rfm_summary(LOG, calibration_end="2024-01-31", holdout_end="2024-02-29")
    assert list(out.index) == ["A", "B", "D"]
    assert out.index.name == "customer_id"
    assert list(out.columns) == [
        "frequency",
        "recency",
        "T",
        "monetary_value",
        "frequency_holdout",
        "monetary_value_holdout",
        "duration_holdout",
    ]
    expected = pd.DataFrame(
        {
            "frequency": [2.0, 0.0, 1.0],
            "recency": [21 / 7, 0.0, 21 / 7],
            "T": [30 / 7, 16 / 7, 21 / 7],
            "monetary_value": [25.0, 0.0, 8.0],
            "frequency_holdout": [1.0, 0.0, 1.0],
            "monetary_value_holdout": [7.0, 0.0, 3.0],
            "duration_holdout": [29 / 7] * 3,
        },
        index=pd.Index(["A", "B", "D"], name="customer_id"),
    )
    pd.testing.assert_frame_equal(out, expected)


def test_daily_unit_and_no_amounts() -> None:
    out = rfm_summary(
        LOG.drop(columns="amount"), calibration_end="2024-01-31", time_unit="D", amount=None
    )
    assert list(out.columns) == ["frequency", "recency", "T"]
    assert out.to_numpy().tolist() == [[2.0, 21.0, 30.0], [0.0, 0.0, 16.0], [1.0, 21.0, 21.0]]


def test_custom_column_names_and_timestamps() -> None:
    log = LOG.rename(columns={"customer_id": "who", "date": "at", "amount": "usd"})
    log["at"] = pd.to_datetime(log["at"]) + pd.Timedelta(hours=23, minutes=59)
    out = rfm_summary(
        log, calibration_end=dt.date(2024, 1, 31), customer_id="who", date="at", amount="usd"
    )
    assert out.index.name == "who"
    assert out.loc["A", "frequency"] == 2.0
    # Time-zone-aware stamps count on their local calendar day.
    aware = LOG.assign(date=pd.to_datetime(LOG["date"]).dt.tz_localize("Asia/Shanghai"))
    pd.testing.assert_frame_equal(
        rfm_summary(aware, calibration_end="2024-01-31"),
        rfm_summary(LOG, calibration_end="2024-01-31"),
    )


@pytest.mark.parametrize(
    ("kwargs", "frame", "field", "message"),
    [
        ({"time_unit": "M"}, LOG, "time_unit", "time_unit must be 'D' or 'W'"),
        ({"holdout_end": "2024-01-01"}, LOG, "holdout_end", "after calibration_end"),
        ({"calibration_end": "not a date"}, LOG, "calibration_end", "is not a date"),
        ({}, LOG.drop(columns="amount"), "amount", "no column"),
        ({}, LOG.assign(amount=np.nan), "amount", "missing or non-numeric"),
        ({}, LOG.assign(date=None), "date", "missing dates"),
        ({}, LOG.assign(date="yesterday-ish"), "date", "not dates"),
        ({}, LOG.assign(customer_id=None), "customer_id", "missing customer ids"),
    ],
)
def test_invalid_input(
    kwargs: dict[str, object], frame: pd.DataFrame, field: str, message: str
) -> None:
    arguments: dict[str, object] = {"calibration_end": "2024-01-31", **kwargs}
    with pytest.raises(InvalidInput, match=message) as info:
        rfm_summary(frame, **arguments)  # type: ignore[arg-type]
    assert info.value.field == field


def reference_summary(
    log: pd.DataFrame, end: pd.Timestamp, holdout_end: pd.Timestamp
) -> dict[int, tuple[float, ...]]:
    """Slow, obviously-correct per-customer loop (tests only)."""
    out: dict[int, tuple[float, ...]] = {}
    for customer, rows in log.groupby("customer_id"):
        daily = rows.groupby(rows["date"].dt.normalize())["amount"].sum().sort_index()
        cal = daily[daily.index <= end]
        if cal.empty:
            continue
        hold = daily[(daily.index > end) & (daily.index <= holdout_end)]
        x = len(cal) - 1
        out[int(customer)] = (  # type: ignore[arg-type]
            float(x),
            (cal.index[-1] - cal.index[0]).days / 7,
            (end - cal.index[0]).days / 7,
            float(cal.iloc[1:].mean()) if x else 0.0,
            float(len(hold)),
        )
    return out


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=6),
            st.integers(min_value=0, max_value=120),
            st.floats(min_value=0.5, max_value=500, allow_nan=False),
        ),
        min_size=1,
        max_size=60,
    )
)
def test_matches_a_per_customer_reference(rows: list[tuple[int, int, float]]) -> None:
    start = pd.Timestamp("2024-01-01")
    log = pd.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "date": [start + pd.Timedelta(days=r[1], hours=r[1] % 24) for r in rows],
            "amount": [r[2] for r in rows],
        }
    )
    end, holdout_end = start + pd.Timedelta(days=60), start + pd.Timedelta(days=100)
    out = rfm_summary(log, calibration_end=end, holdout_end=holdout_end)
    want = reference_summary(log, end, holdout_end)
    assert sorted(out.index) == sorted(want)
    for customer, values in want.items():
        got = out.loc[
            customer, ["frequency", "recency", "T", "monetary_value", "frequency_holdout"]
        ]
        np.testing.assert_allclose(got.to_numpy(dtype=float), values, rtol=1e-12)
