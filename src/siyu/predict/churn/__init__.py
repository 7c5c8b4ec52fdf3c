"""Churn risk: point-in-time features (Ibis), a calibrated gradient-boosting model with reasons,
and the transparent rule score for small shops."""

from __future__ import annotations

from siyu.predict.churn.features import FEATURES, churn_features, churn_labels
from siyu.predict.churn.model import ChurnModel, Metrics
from siyu.predict.churn.reasons import describe
from siyu.predict.churn.rules import ALERT_ABOVE, RULES, rule_scores
from siyu.predict.churn.run import ChurnMinimums, ChurnReport, score_churn

__all__ = [
    "ALERT_ABOVE",
    "FEATURES",
    "RULES",
    "ChurnMinimums",
    "ChurnModel",
    "ChurnReport",
    "Metrics",
    "churn_features",
    "churn_labels",
    "describe",
    "rule_scores",
    "score_churn",
]
