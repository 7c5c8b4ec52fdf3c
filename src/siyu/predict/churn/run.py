"""Churn risk for every buyer of a workspace, written to ``customer_scores.churn_*``.

Model (default): trained on the features as of ``as_of - 180 days`` with the labels of the 90
days after, measured on the later window (features as of ``as_of - 90 days``, labels up to
``as_of``) against the P(alive) baseline, then refitted on that latest complete window and
applied to the features as of ``as_of``. Below the minimums it refuses and names the minimum,
pointing at the rule score, which needs no training data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa

from siyu.access import Workspace
from siyu.compute import WorkspaceTables, tables
from siyu.errors import InvalidInput
from siyu.predict.btyd import BetaGeoFitter
from siyu.predict.churn.features import FEATURES, churn_features, churn_labels
from siyu.predict.churn.model import ChurnModel, Metrics
from siyu.predict.churn.reasons import json_lists, numbers
from siyu.predict.churn.rules import ALERT_ABOVE, rule_scores
from siyu.predict.errors import FitFailed
from siyu.predict.scores import NotEnoughData
from siyu.predict.store_scores import CHURN_COLUMNS, write_family
from siyu.predict.store_summary import calibration_summary
from siyu.store import Database

HORIZON_DAYS = 90
TOP_REASONS = 3
MIN_REASON_POINTS = 1.0


@dataclass(frozen=True)
class ChurnMinimums:
    """What the supervised model needs in its training window (the rules need nothing)."""

    customers: int = 500
    churned: int = 50
    retained: int = 50


@dataclass(frozen=True)
class ChurnReport:
    method: str
    model_version: str
    as_of: datetime
    customers: int
    alerts: int
    mean_risk: float
    test: Metrics | None = None
    baseline: Metrics | None = None
    rules_on_test: Metrics | None = None


def _frame(t: WorkspaceTables, as_of: datetime, labelled: bool) -> pd.DataFrame:
    expr = churn_features(t, as_of)
    if labelled:
        expr = expr.join(churn_labels(t, as_of, HORIZON_DAYS), "customer_id")
    frame: pd.DataFrame = expr.execute().sort_values("customer_id").reset_index(drop=True)
    return frame


def _matrix(frame: pd.DataFrame) -> np.ndarray:
    return frame[list(FEATURES)].to_numpy(dtype=float, na_value=np.nan)


def _check(minimums: ChurnMinimums, frame: pd.DataFrame, cutoff: datetime) -> None:
    churned = int(frame["churned"].sum())
    failed = [
        ("customers who had bought", len(frame), minimums.customers),
        ("customers who lapsed in the 90 days after it", churned, minimums.churned),
        ("customers who stayed active after it", len(frame) - churned, minimums.retained),
    ]
    for what, have, need in failed:
        if have < need:
            raise NotEnoughData(
                f"Not enough data for the churn model: {have} {what} at the training cut-off "
                f"{cutoff:%Y-%m-%d}, the model needs at least {need}.",
                hint="Use the transparent rule score (siyu predict churn --rules), which needs "
                "no training data, or import more history.",
            )


def _data_end(t: WorkspaceTables) -> datetime | None:
    last = t.execute(t.events.timestamp.max())
    return None if last is None or pd.isna(last) else pd.Timestamp(last).to_pydatetime()


def p_alive_baseline(t: WorkspaceTables, as_of: datetime, customer_ids: pd.Series) -> np.ndarray:
    """P(no purchase in the next 90 days) from BG/NBD fitted as of ``as_of``.

    1 - P(alive) + P(alive) * P(no purchase | alive), where the posterior purchase rate of an
    active customer is Gamma(r + x, alpha + T):
    P(none in t | alive) = ((alpha + T) / (alpha + T + t))^(r + x).
    """
    summary = calibration_summary(t, calibration_end=as_of.date(), time_unit="D").execute()
    summary = summary.set_index("customer_id").reindex(customer_ids)
    x = summary["frequency"].to_numpy(float)
    t_x = summary["recency"].to_numpy(float)
    big_t = summary["T"].to_numpy(float)
    model = BetaGeoFitter().fit(x, t_x, big_t)
    r, alpha = model.params_["r"], model.params_["alpha"]
    alive = model.conditional_probability_alive(x, t_x, big_t)
    quiet = ((alpha + big_t) / (alpha + big_t + HORIZON_DAYS)) ** (r + x)
    out: np.ndarray = 1 - alive + alive * quiet
    return out


def _model_reasons(model: ChurnModel, x: np.ndarray) -> list[str]:
    contrib = model.contributions(x) * 100
    order = np.argsort(-contrib, axis=1)[:, :TOP_REASONS]
    rows = np.arange(len(x))[:, None]
    points = contrib[rows, order]
    values = x[rows, order]
    typical = model.medians_[order]
    names = np.asarray(FEATURES, dtype=object)[order]
    pieces: list[pd.Series] = []
    for j in range(order.shape[1]):
        keep = points[:, j] >= MIN_REASON_POINTS
        piece = (
            '{"code": "'
            + pd.Series(names[:, j]).astype(str)
            + '", "points": '
            + numbers(points[:, j], 1)
            + ', "value": '
            + numbers(values[:, j])
            + ', "typical": '
            + numbers(typical[:, j])
            + "}"
        )
        pieces.append(piece.where(keep, ""))
    return json_lists(pieces)


def _store(
    db: Database,
    workspace: Workspace,
    frame: pd.DataFrame,
    risk: np.ndarray,
    reasons: list[str],
    method: str,
    version: str,
    as_of: datetime,
) -> None:
    n = len(frame)
    now = datetime.now(UTC).replace(tzinfo=None)
    data = pa.table(
        {
            "customer_id": pa.array(frame["customer_id"].astype(str).tolist(), pa.string()),
            "churn_risk": pa.array(risk, pa.int32()),
            "churn_reasons": pa.array(reasons, pa.string()),
            "churn_method": pa.array([method] * n, pa.string()),
            "churn_model_version": pa.array([version] * n, pa.string()),
            "churn_as_of": pa.array([as_of] * n, pa.timestamp("us")),
            "churn_scored_at": pa.array([now] * n, pa.timestamp("us")),
        }
    )
    with db.write_lock, db.engine.begin() as conn:
        write_family(conn, workspace.workspace_id, CHURN_COLUMNS, data)


def score_churn(
    db: Database,
    workspace: Workspace,
    *,
    as_of: datetime | None = None,
    rules: bool = False,
    minimums: ChurnMinimums | None = None,
) -> ChurnReport:
    """Score every buyer's churn risk (0-100) with reasons and store it."""
    as_of = as_of or datetime.now(UTC).replace(tzinfo=None)
    t = tables(db, workspace.workspace_id)
    end = _data_end(t)
    if end is None:
        raise InvalidInput("The workspace has no events: there is nobody to score.")
    test_cut = as_of - timedelta(days=HORIZON_DAYS)
    current = _frame(t, as_of, labelled=False)
    if current.empty:
        raise NotEnoughData(f"No customer had bought by {as_of:%Y-%m-%d}: nobody to score.")
    if rules:
        risk, reasons = rule_scores(current)
        rules_metrics = None
        if end >= as_of - timedelta(days=1):
            later = _frame(t, test_cut, labelled=True)
            if later["churned"].nunique() == 2:
                rules_metrics = Metrics.of(later["churned"], rule_scores(later)[0] / 100)
        version = f"rules-v1@{as_of:%Y-%m-%d}"
        _store(db, workspace, current, risk, reasons, "rules", version, as_of)
        return ChurnReport(
            "rules",
            version,
            as_of,
            len(current),
            int((risk > ALERT_ABOVE).sum()),
            float(risk.mean()),
            rules_on_test=rules_metrics,
        )
    train_cut = as_of - timedelta(days=2 * HORIZON_DAYS)
    train = _frame(t, train_cut, labelled=True)
    _check(minimums or ChurnMinimums(), train, train_cut)
    test = _frame(t, test_cut, labelled=True)
    _check(minimums or ChurnMinimums(), test, test_cut)
    model = ChurnModel().fit(_matrix(train), train["churned"])
    test_metrics = Metrics.of(test["churned"], model.predict(_matrix(test)))
    try:
        baseline = Metrics.of(test["churned"], p_alive_baseline(t, test_cut, test["customer_id"]))
    except FitFailed:
        baseline = None
    rules_metrics = Metrics.of(test["churned"], rule_scores(test)[0] / 100)
    final = ChurnModel().fit(_matrix(test), test["churned"])
    x = _matrix(current)
    risk = np.rint(final.predict(x) * 100).astype(np.int64)
    version = f"hgb-calibrated@{as_of:%Y-%m-%d}"
    _store(db, workspace, current, risk, _model_reasons(final, x), "model", version, as_of)
    return ChurnReport(
        "model",
        version,
        as_of,
        len(current),
        int((risk > ALERT_ABOVE).sum()),
        float(risk.mean()),
        test=test_metrics,
        baseline=baseline,
        rules_on_test=rules_metrics,
    )
