"""CLV scores for every buyer of a workspace, written to ``customer_scores``.

BG/NBD for purchases and Gamma-Gamma for spend, fitted on the calibration summary the database
computes (:mod:`siyu.predict.store_summary`) as of a moment. Below the minimums (too few buyers,
too short a history, too few repeat buyers for the spend model) siyu says which minimum failed
instead of producing numbers that look precise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from siyu.access import Workspace
from siyu.compute import tables
from siyu.config import Settings
from siyu.errors import InvalidInput
from siyu.predict.btyd import BetaGeoFitter, GammaGammaFitter
from siyu.predict.btyd.batch import predict_customers
from siyu.predict.store_scores import CLV_COLUMNS, write_family
from siyu.predict.store_summary import calibration_summary_arrow
from siyu.store import Database

UNITS_PER_YEAR = 365.25
#: The next order is searched for within this many days; beyond it, or when fewer than one more
#: order is expected at all (a customer who has probably lapsed), it is left empty.
NEXT_ORDER_HORIZON_DAYS = 1096


class NotEnoughData(InvalidInput):
    """The data are below a minimum that makes the model's numbers meaningful."""

    code = "not_enough_data"
    status = 422


@dataclass(frozen=True)
class Minimums:
    buyers: int = 500
    history_days: int = 180
    repeat_buyers: int = 50

    @classmethod
    def from_settings(cls, settings: Settings) -> Minimums:
        """The minimums configured (settings predict_min_*)."""
        return cls(
            settings.predict_min_buyers,
            settings.predict_min_history_days,
            settings.predict_min_repeat_buyers,
        )


@dataclass(frozen=True)
class ScoreReport:
    model_version: str
    as_of: datetime
    customers: int
    purchase_params: dict[str, float]
    spend_params: dict[str, float]
    total_clv_12m: float


def check_minimums(
    minimums: Minimums, buyers: int, history_days: float, repeat: int, *, what: str = "CLV"
) -> None:
    """Raise :class:`NotEnoughData` naming the first minimum the data fail."""
    failed = [
        (f"{buyers} buyers", f"at least {minimums.buyers}", buyers < minimums.buyers),
        (
            f"{history_days:.0f} days of purchase history",
            f"at least {minimums.history_days}",
            history_days < minimums.history_days,
        ),
        (
            f"{repeat} repeat buyers",
            f"at least {minimums.repeat_buyers}",
            repeat < minimums.repeat_buyers,
        ),
    ]
    for have, need, short in failed:
        if short:
            raise NotEnoughData(
                f"Not enough data for {what}: {have}, the model needs {need}.",
                hint="Wait for more orders or import history; the minimums are arguments "
                "(Minimums) if you accept less precise numbers.",
            )


def score_customers(
    db: Database,
    workspace: Workspace,
    *,
    as_of: datetime | None = None,
    months: int = 12,
    discount_rate: float = 0.01,
    minimums: Minimums | None = None,
) -> ScoreReport:
    """Fit, predict and store p_alive, expected orders, order value and CLV for every buyer."""
    as_of = as_of or datetime.now(UTC).replace(tzinfo=None)
    minimums = minimums or Minimums()
    t = tables(db, workspace.workspace_id)
    summary = calibration_summary_arrow(t, calibration_end=as_of.date(), time_unit="D")
    x, t_x, big_t, m = (
        summary[c].to_numpy().astype(np.float64)
        for c in ("frequency", "recency", "T", "monetary_value")
    )
    check_minimums(
        minimums, summary.num_rows, float(big_t.max()) if len(big_t) else 0.0, int((x > 0).sum())
    )
    purchases = BetaGeoFitter().fit(x, t_x, big_t)
    spend = GammaGammaFitter().fit(x[x > 0], m[x > 0])
    predicted = predict_customers(
        purchases,
        spend,
        x,
        t_x,
        big_t,
        np.where(x > 0, m, 0.0),
        horizon=months * UNITS_PER_YEAR / 12,
        months=months,
        discount_rate=discount_rate,
        time_unit="D",
        # The expected next order date: where one more order is expected, to half a day and
        # rounded up to whole days; none beyond 3 years or when fewer than one more order is
        # expected at all (a customer who has probably lapsed).
        next_purchase_within=float(NEXT_ORDER_HORIZON_DAYS),
        steps=11,
    )
    next_days = np.ceil(predicted.time_to_next_purchase)
    cutoff = np.datetime64(as_of.replace(hour=0, minute=0, second=0, microsecond=0), "us")
    next_at = cutoff + (np.nan_to_num(next_days) * 86_400e6).astype("timedelta64[us]")
    version = f"bgnbd+gammagamma@{as_of:%Y-%m-%d}"
    n = summary.num_rows
    now = datetime.now(UTC).replace(tzinfo=None)
    data = pa.table(
        {
            "customer_id": summary["customer_id"].cast(pa.string()),
            # One value for all: repeated by Arrow (a list of a million Python objects took
            # 0.38 s CPU to convert).
            "model_version": pa.repeat(pa.scalar(version, pa.string()), n),
            "as_of": pa.repeat(pa.scalar(as_of, pa.timestamp("us")), n),
            "scored_at": pa.repeat(pa.scalar(now, pa.timestamp("us")), n),
            "p_alive": pa.array(predicted.p_alive, pa.float64()),
            "expected_orders_12m": pa.array(predicted.expected_purchases, pa.float64()),
            "expected_order_value": pa.array(predicted.expected_spend, pa.float64()),
            "clv_12m": pa.array(predicted.clv, pa.float64()),
            "expected_next_order_at": pa.array(
                next_at, pa.timestamp("us"), mask=np.isnan(next_days)
            ),
        }
    )
    with db.write_lock, db.engine.begin() as conn:
        write_family(conn, workspace.workspace_id, CLV_COLUMNS, data)
    return ScoreReport(
        version, as_of, n, purchases.params_, spend.params_, float(np.sum(predicted.clv))
    )
