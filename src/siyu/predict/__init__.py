"""Predict: customer lifetime value and churn from transaction histories.

The public API of the slice; other slices import only from here. The names are imported on
first use (:mod:`siyu.lazy`): the slice's table definitions load without SciPy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from siyu.lazy import exports

if TYPE_CHECKING:
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

__getattr__ = exports(
    __name__,
    {
        "CHURN_BANDS": "siyu.predict.attributes",
        "PREDICTION_SCHEMA": "siyu.predict.attributes",
        "prediction_attributes": "siyu.predict.attributes",
        "BetaGeoFitter": "siyu.predict.btyd",
        "GammaGammaFitter": "siyu.predict.btyd",
        "ParetoNBDFitter": "siyu.predict.btyd",
        "customer_lifetime_value": "siyu.predict.btyd",
        "FitFailed": "siyu.predict.errors",
        "ModelNotFitted": "siyu.predict.errors",
        "rfm_summary": "siyu.predict.summary",
    },
)
