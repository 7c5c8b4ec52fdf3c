"""The supervised churn model: gradient boosting with calibrated probabilities, and its reasons.

scikit-learn's HistGradientBoostingClassifier (missing values handled natively: a one-time buyer
has no purchase cycle) inside CalibratedClassifierCV, so that a risk of 70 means about 70 in 100
such customers lapse. Deterministic: no early stopping; the rows are put in the order of their
values (:func:`canonical_order`), then dealt into the calibration's folds by a seeded shuffle;
the booster's binning sample (taken above 200,000 rows) has a fixed seed too.

Reasons (documented in docs/predict.md): a feature's contribution for a customer is how much her
probability falls when that one feature is set to the population's median, everything else
kept: ``p(x) - p(x with x_j := median_j)``. Positive contributions push her risk up compared with
a typical customer; the largest ones are her top reasons. It is model-agnostic, exact for the
model used, and costs one prediction per feature (vectorised, in chunks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from siyu.predict.churn.features import FEATURES

if TYPE_CHECKING:
    from sklearn.calibration import CalibratedClassifierCV

# scikit-learn is imported where a model is fitted or measured, not with this module: the
# registry imports it to register the model, and every command paid about a second for it.

FloatArray = npt.NDArray[np.float64]
CHUNK = 20_000
#: Below this many rows OpenMP threads cost more than they save (and spin on a busy machine).
THREADED_ROWS = 50_000


def _threads(rows: int) -> int | None:
    return None if rows >= THREADED_ROWS else 1


@dataclass(frozen=True)
class Metrics:
    """Quality of churn probabilities against observed labels."""

    customers: int
    churn_rate: float
    roc_auc: float
    pr_auc: float
    brier: float

    @classmethod
    def of(cls, churned: npt.ArrayLike, probability: npt.ArrayLike) -> Metrics:
        from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

        y = np.asarray(churned, dtype=bool)
        p = np.clip(np.asarray(probability, dtype=float), 0.0, 1.0)
        return cls(
            customers=int(y.size),
            churn_rate=float(y.mean()),
            roc_auc=float(roc_auc_score(y, p)),
            pr_auc=float(average_precision_score(y, p)),
            brier=float(brier_score_loss(y, p)),
        )


def canonical_order(x: FloatArray, y: npt.NDArray[np.bool_]) -> npt.NDArray[np.intp]:
    """The rows sorted by label, then by every feature (missing values last).

    The calibration's folds were consecutive slices of the rows, so the fitted model depended
    on their order. Callers read customers sorted by id, and customer ids are hashes that
    include the workspace id: the same history loaded into two workspaces (the demo built twice
    with one seed) gave different churn risks. Starting from the values' order makes the model
    a function of the data alone (rows equal in every value are interchangeable). The folds
    must not be slices of this order (each would hold one range of the first feature): the
    caller shuffles them with a fixed seed.
    """
    keys = [x[:, j] for j in range(x.shape[1] - 1, -1, -1)]
    return np.lexsort([*keys, y])


class ChurnModel:
    """Fit on point-in-time features and labels; predict calibrated churn probabilities."""

    def __init__(self) -> None:
        self._model: CalibratedClassifierCV | None = None
        self.medians_: FloatArray = np.zeros(len(FEATURES))

    def fit(self, x: FloatArray, churned: npt.ArrayLike) -> ChurnModel:
        y = np.asarray(churned, dtype=bool)
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.model_selection import StratifiedKFold

        booster = HistGradientBoostingClassifier(
            max_iter=150,
            learning_rate=0.05,
            max_leaf_nodes=15,
            min_samples_leaf=20,
            l2_regularization=1.0,
            early_stopping=False,
            random_state=0,
        )
        # Isotonic calibration needs many customers per fold; Platt scaling is safer below.
        method = "isotonic" if len(y) >= 3000 else "sigmoid"
        folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
        self._model = CalibratedClassifierCV(booster, method=method, cv=folds)
        order = canonical_order(x, y)
        with threadpool_limits(_threads(len(y)), user_api="openmp"):
            self._model.fit(x[order], y[order])
        medians = np.nanmedian(np.where(np.isfinite(x), x, np.nan), axis=0)
        self.medians_ = np.asarray(medians, dtype=float)
        return self

    def predict(self, x: FloatArray) -> FloatArray:
        if self._model is None:
            from siyu.predict.errors import ModelNotFitted

            raise ModelNotFitted("The churn model has not been fitted.")
        with threadpool_limits(_threads(len(x)), user_api="openmp"):
            out: FloatArray = self._model.predict_proba(x)[:, 1]
        return out

    def contributions(self, x: FloatArray) -> FloatArray:
        """(n, features): p(x) - p(x with one feature set to the population median)."""
        n, k = x.shape
        out = np.zeros((n, k))
        medians = self.medians_
        # A row whose feature already is the median gives the same prediction when it is "moved"
        # there: its contribution is exactly 0, so only the other (row, feature) pairs are
        # predicted (the demo's counts are mostly at their median: ~half the predictions).
        moves = ~((x == medians) | (np.isnan(x) & np.isnan(medians)))
        for start in range(0, n, CHUNK):
            part = x[start : start + CHUNK]
            base = self.predict(part)
            rows, features = np.nonzero(moves[start : start + CHUNK])
            if len(rows) == 0:
                continue
            moved_rows = part[rows]
            moved_rows[np.arange(len(rows)), features] = medians[features]
            out[start + rows, features] = base[rows] - self.predict(moved_rows)
        return out
