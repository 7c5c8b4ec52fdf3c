"""Holdout validation of the purchase model: expected vs actual repeat purchases.

The calibration/holdout split is by date: BG/NBD is fitted on what each customer did up to the
calibration end, then asked how many repeat purchases each will make in the holdout period, and
its answers are compared with what happened:

- per customer (mean absolute error, RMSE, correlation) and as the conditional-expectations
  table of Fader, Hardie & Lee (2005): customers grouped by calibration frequency 0..6, 7+, with
  the mean actual and mean expected holdout purchases of each group;
- in aggregate, and period by period as the cumulative tracking chart (as data): cumulative
  actual repeat purchases in the holdout next to the sum of every customer's conditional
  expectation up to the end of each period.

Two inputs, the same mathematics: a transaction log (the CDNOW analyses) or the order store,
where the database computes the summary and the per-period counts (Ibis).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import ibis
import numpy as np
import numpy.typing as npt
import pandas as pd

from siyu.access import Workspace
from siyu.compute import tables
from siyu.errors import InvalidInput
from siyu.predict.btyd import BetaGeoFitter
from siyu.predict.scores import Minimums, check_minimums
from siyu.predict.store_summary import calibration_summary, daily_transactions
from siyu.predict.summary import DAYS_PER_UNIT, TimeUnit, rfm_summary
from siyu.store import Database

FREQUENCY_GROUPS = 8  # 0..6 and "7+", as in the published conditional-expectations chart


@dataclass(frozen=True)
class HoldoutEvaluation:
    """The comparison, with every table a DataFrame (and :meth:`to_dict` for JSON)."""

    calibration_end: date
    holdout_end: date
    time_unit: str
    customers: int
    params: dict[str, float]
    actual_total: float
    expected_total: float
    mae: float
    rmse: float
    correlation: float
    by_frequency: pd.DataFrame = field(repr=False)
    tracking: pd.DataFrame = field(repr=False)
    per_customer: pd.DataFrame = field(repr=False)

    @property
    def aggregate_error(self) -> float:
        """(expected - actual) / actual over all customers."""
        return (self.expected_total - self.actual_total) / max(self.actual_total, 1.0)

    def to_dict(self, *, per_customer: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "calibration_end": self.calibration_end.isoformat(),
            "holdout_end": self.holdout_end.isoformat(),
            "time_unit": self.time_unit,
            "customers": self.customers,
            "params": self.params,
            "actual_total": self.actual_total,
            "expected_total": self.expected_total,
            "aggregate_error": self.aggregate_error,
            "mae": self.mae,
            "rmse": self.rmse,
            "correlation": self.correlation,
            "by_frequency": self.by_frequency.to_dict(orient="records"),
            "tracking": self.tracking.to_dict(orient="records"),
        }
        if per_customer:
            out["per_customer"] = self.per_customer.reset_index().to_dict(orient="records")
        return out


def compare_holdout(
    summary: pd.DataFrame,
    actual_per_period: npt.ArrayLike,
    *,
    period_length: float,
    calibration_end: date,
    holdout_end: date,
    time_unit: str,
) -> HoldoutEvaluation:
    """Fit BG/NBD on ``summary`` (with holdout columns) and compare with the holdout.

    ``actual_per_period`` counts the repeat purchases of these customers in each holdout period
    of ``period_length`` time units (the last period may be shorter).
    """
    x = summary["frequency"].to_numpy(float)
    t_x = summary["recency"].to_numpy(float)
    big_t = summary["T"].to_numpy(float)
    actual = summary["frequency_holdout"].to_numpy(float)
    duration = float(summary["duration_holdout"].iloc[0])
    model = BetaGeoFitter().fit(x, t_x, big_t)
    expected = model.conditional_expected_purchases(duration, x, t_x, big_t)

    group = np.minimum(x, FREQUENCY_GROUPS - 1).astype(np.int64)
    count = np.bincount(group, minlength=FREQUENCY_GROUPS)
    safe = np.maximum(count, 1)
    by_frequency = pd.DataFrame(
        {
            "frequency": [str(i) for i in range(FREQUENCY_GROUPS - 1)]
            + [f"{FREQUENCY_GROUPS - 1}+"],
            "customers": count,
            "actual_mean": np.bincount(group, actual, FREQUENCY_GROUPS) / safe,
            "expected_mean": np.bincount(group, expected, FREQUENCY_GROUPS) / safe,
        }
    )
    periods = np.asarray(actual_per_period, dtype=float)
    ends = np.minimum(period_length * np.arange(1, len(periods) + 1), duration)
    cumulative = model.conditional_expected_purchases(ends[:, None], x, t_x, big_t).sum(axis=1)
    tracking = pd.DataFrame(
        {
            "period": np.arange(1, len(periods) + 1),
            "end": ends,
            "actual": periods,
            "actual_cumulative": np.cumsum(periods),
            "expected_cumulative": cumulative,
        }
    )
    per_customer = pd.DataFrame(
        {
            "frequency": x,
            "recency": t_x,
            "T": big_t,
            "actual": actual,
            "expected": expected,
        },
        index=summary.index,
    )
    err = expected - actual
    corr = float(np.corrcoef(expected, actual)[0, 1]) if len(x) > 1 and actual.std() > 0 else 0.0
    return HoldoutEvaluation(
        calibration_end=calibration_end,
        holdout_end=holdout_end,
        time_unit=time_unit,
        customers=len(x),
        params=model.params_,
        actual_total=float(actual.sum()),
        expected_total=float(expected.sum()),
        mae=float(np.abs(err).mean()),
        rmse=float(np.sqrt((err**2).mean())),
        correlation=corr,
        by_frequency=by_frequency,
        tracking=tracking,
        per_customer=per_customer,
    )


def _periods(calibration_end: date, holdout_end: date, period_days: int) -> int:
    if period_days < 1:
        raise InvalidInput("period_days must be at least 1.", field="period_days")
    return -(-(holdout_end - calibration_end).days // period_days)


def evaluate_transactions(
    transactions: pd.DataFrame,
    *,
    calibration_end: date,
    holdout_end: date,
    time_unit: TimeUnit = "W",
    period_days: int = 7,
) -> HoldoutEvaluation:
    """The holdout comparison from a transaction log (customer_id, date, amount)."""
    summary = rfm_summary(
        transactions,
        calibration_end=calibration_end,
        holdout_end=holdout_end,
        time_unit=time_unit,
    )
    day = pd.to_datetime(transactions["date"]).dt.normalize()
    known = transactions["customer_id"].isin(summary.index)
    start = pd.Timestamp(calibration_end)
    in_holdout = known & (day > start) & (day <= pd.Timestamp(holdout_end))
    daily = pd.DataFrame(
        {"c": transactions["customer_id"][in_holdout], "d": day[in_holdout]}
    ).drop_duplicates()
    offset = (daily["d"] - start).dt.days.to_numpy()
    n = _periods(calibration_end, holdout_end, period_days)
    counts = np.bincount((offset - 1) // period_days, minlength=n)[:n]
    return compare_holdout(
        summary,
        counts,
        period_length=period_days / DAYS_PER_UNIT[time_unit],
        calibration_end=calibration_end,
        holdout_end=holdout_end,
        time_unit=time_unit,
    )


def evaluate_store(
    db: Database,
    workspace: Workspace,
    *,
    calibration_end: date | None = None,
    holdout_end: date | None = None,
    time_unit: TimeUnit = "D",
    period_days: int = 7,
    minimums: Minimums | None = None,
) -> HoldoutEvaluation:
    """The holdout comparison on the workspace's orders, computed by the database.

    Default split: the holdout is the last 180 days up to the latest order.
    """
    t = tables(db, workspace.workspace_id)
    if holdout_end is None:
        last = t.execute(t.orders.placed_at.max())
        if last is None or pd.isna(last):
            raise InvalidInput("The workspace has no orders to evaluate a model on.")
        holdout_end = pd.Timestamp(last).date()
    calibration_end = calibration_end or date.fromordinal(holdout_end.toordinal() - 180)
    if holdout_end <= calibration_end:
        raise InvalidInput(
            f"The holdout end {holdout_end} must come after the calibration end {calibration_end}.",
            field="holdout_end",
        )
    summary_expr = calibration_summary(
        t, calibration_end=calibration_end, holdout_end=holdout_end, time_unit=time_unit
    )
    summary = summary_expr.execute().set_index("customer_id").sort_index()
    x = summary["frequency"].to_numpy(float)
    check_minimums(
        minimums or Minimums(),
        len(summary),
        float(summary["T"].max() * DAYS_PER_UNIT[time_unit]) if len(summary) else 0.0,
        int((x > 0).sum()),
        what="a holdout evaluation",
    )
    days = daily_transactions(t)
    first = days.group_by("customer_id").aggregate(first_day=days.day.min())
    hold = days.join(first, "customer_id")
    cal = ibis.date(calibration_end)
    hold = hold.filter(
        (hold.first_day <= cal) & (hold.day > cal) & (hold.day <= ibis.date(holdout_end))
    )
    period = ((hold.day.delta(cal, unit="day") - 1) // period_days).name("period")
    counts = hold.group_by(period).aggregate(n=hold.count()).execute()
    n = _periods(calibration_end, holdout_end, period_days)
    per_period = np.zeros(n)
    per_period[counts["period"].to_numpy(np.int64)] = counts["n"].to_numpy(float)
    return compare_holdout(
        summary,
        per_period,
        period_length=period_days / DAYS_PER_UNIT[time_unit],
        calibration_end=calibration_end,
        holdout_end=holdout_end,
        time_unit=time_unit,
    )
