"""Errors of the predict slice, in the siyu error hierarchy (see :mod:`siyu.errors`).

Bad input data is :class:`siyu.errors.InvalidInput` (HTTP 400), like everywhere else. The two errors
here are about the state of a model, not about a request's format.
"""

from __future__ import annotations

from siyu.errors import SiyuError


class ModelNotFitted(SiyuError):
    """A fitted value or a prediction was asked of a model that has not been fitted."""

    code = "model_not_fitted"
    status = 409
    default_hint = "Call fit(...) on the model first (fit() returns the model itself)."


class FitFailed(SiyuError):
    """Maximum likelihood did not reach an interior optimum for this data."""

    code = "model_fit_failed"
    status = 422
    default_hint = (
        "The data do not identify the model: check that enough customers made repeat "
        "purchases, that the calibration period is long enough to show drop-out, and that "
        "the time unit (days or weeks) matches the recency and T columns."
    )
