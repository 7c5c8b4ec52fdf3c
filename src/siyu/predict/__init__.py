"""Predict: customer lifetime value and churn from transaction histories.

The public API of the slice; other slices import only from here.
"""

from __future__ import annotations

from siyu.predict.attributes import CHURN_BANDS, PREDICTION_SCHEMA, prediction_attributes
from siyu.predict.btyd import (
    BetaGeoFitter,
    GammaGammaFitter,
    ParetoNBDFitter,
    customer_lifetime_value,
)
from siyu.predict.errors import FitFailed, ModelNotFitted
from siyu.predict.summary import rfm_summary

__all__ = [
    "CHURN_BANDS",
    "PREDICTION_SCHEMA",
    "BetaGeoFitter",
    "FitFailed",
    "GammaGammaFitter",
    "ModelNotFitted",
    "ParetoNBDFitter",
    "customer_lifetime_value",
    "prediction_attributes",
    "rfm_summary",
]
