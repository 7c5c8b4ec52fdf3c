"""Invalid input and model state give clear siyu errors, with the field and a hint."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from siyu.errors import InvalidInput, SiyuError
from siyu.predict import (
    BetaGeoFitter,
    FitFailed,
    GammaGammaFitter,
    ModelNotFitted,
    ParetoNBDFitter,
    customer_lifetime_value,
)
from siyu.registry import Registry

TRANSACTION_MODELS = [BetaGeoFitter, ParetoNBDFitter]
GOOD = ([0.0, 1, 3], [0.0, 2, 5], [10.0, 10, 8])


@pytest.mark.parametrize("model_type", TRANSACTION_MODELS)
@pytest.mark.parametrize(
    ("frequency", "recency", "t_end", "field", "message"),
    [
        ([0, -1, 3], [0, 2, 5], [10, 10, 8], "frequency", "negative values for 1 customers"),
        ([0, 1.5, 3], [0, 2, 5], [10, 10, 8], "frequency", "not whole numbers"),
        ([0, 1, 3], [0, -2, 5], [10, 10, 8], "recency", "negative values"),
        ([0, 1, 3], [0, 2, 5], [10, -1, 8], "T", "negative values"),
        ([0, 1, 3], [0, 2, 9], [10, 10, 8], "recency", "recency greater than T"),
        ([0, 1, 3], [4, 2, 5], [10, 10, 8], "recency", "non-zero recency with frequency 0"),
        (
            [0, 1, 3],
            [0, 2],
            [10, 10, 8],
            "frequency",
            r"different lengths \(frequency=3, recency=2",
        ),
        ([0, np.nan, 3], [0, 2, 5], [10, 10, 8], "frequency", "missing or infinite"),
        ([0, 1, 3], [0, 2, np.inf], [10, 10, 8], "recency", "missing or infinite"),
        ([], [], [], "frequency", "empty"),
        (["a", "b", "c"], [0, 2, 5], [10, 10, 8], "frequency", "must be numbers"),
        ([[0, 1]], [[0, 1]], [[1, 2]], "frequency", "one-dimensional"),
    ],
)
def test_fit_rejects_invalid_summaries(
    model_type: Any, frequency: Any, recency: Any, t_end: Any, field: str, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message) as info:
        model_type().fit(frequency, recency, t_end)
    assert info.value.field == field
    assert info.value.status == 400
    assert info.value.hint


@pytest.mark.parametrize("model_type", TRANSACTION_MODELS)
def test_predictions_validate_too(model_type: Any) -> None:
    model = model_type.from_params(dict.fromkeys(model_type.param_names, 1.0))
    with pytest.raises(InvalidInput, match="recency greater than T"):
        model.conditional_probability_alive([1], [5], [4])
    with pytest.raises(InvalidInput, match="non-negative length of time") as info:
        model.conditional_expected_purchases(-1, [1], [1], [4])
    assert info.value.field == "t"
    # Empty input is a valid (empty) prediction.
    assert model.conditional_probability_alive([], [], []).shape == (0,)


@pytest.mark.parametrize("model_type", TRANSACTION_MODELS)
def test_weights_are_checked(model_type: Any) -> None:
    with pytest.raises(InvalidInput, match="negative values") as info:
        model_type().fit(*GOOD, weights=[1, -1, 1])
    assert info.value.field == "weights"
    with pytest.raises(InvalidInput, match="different lengths"):
        model_type().fit(*GOOD, weights=[1, 1])
    with pytest.raises(InvalidInput, match="sum to 0"):
        model_type().fit(*GOOD, weights=[0, 0, 0])


@pytest.mark.parametrize("model_type", TRANSACTION_MODELS)
def test_no_repeat_purchases_cannot_be_fitted(model_type: Any) -> None:
    with pytest.raises(FitFailed, match="No customer made a repeat purchase") as info:
        model_type().fit([0, 0, 0], [0, 0, 0], [5, 6, 7])
    assert info.value.status == 422
    assert "calibration period" in info.value.hint


def test_degenerate_data_fails_clearly() -> None:
    # Everybody buys at exactly the same rate and nobody drops out: the heterogeneity parameters
    # run off to infinity, and the fit says so instead of returning boundary values.
    x = np.full(500, 10.0)
    with pytest.raises(FitFailed, match="goes to"):
        BetaGeoFitter().fit(x, np.full(500, 50.0), np.full(500, 50.0))


@pytest.mark.parametrize("model_type", [*TRANSACTION_MODELS, GammaGammaFitter])
def test_unfitted_model_says_so(model_type: Any) -> None:
    model = model_type()
    assert repr(model) == f"<{model_type.__name__}: not fitted>"
    for attribute in ("params_", "standard_errors_", "log_likelihood_", "summary", "covariance_"):
        with pytest.raises(ModelNotFitted, match="not fitted yet") as info:
            getattr(model, attribute)
        assert info.value.status == 409
        assert "fit(" in info.value.hint
    if model_type is GammaGammaFitter:
        with pytest.raises(ModelNotFitted):
            model.conditional_expected_average_profit([1], [10.0])
    else:
        with pytest.raises(ModelNotFitted):
            model.conditional_probability_alive([1], [1], [2])


def test_from_params_checks_names_and_values() -> None:
    with pytest.raises(InvalidInput, match=r"needs the parameters \['a', 'alpha', 'b', 'r'\]"):
        BetaGeoFitter.from_params({"r": 1.0, "alpha": 1.0, "a": 1.0})
    with pytest.raises(InvalidInput, match="positive numbers"):
        ParetoNBDFitter.from_params({"r": 1.0, "alpha": -1.0, "s": 1.0, "beta": 1.0})
    model = GammaGammaFitter.from_params({"p": 6.0, "q": 3.0, "gamma": 15.0})
    assert np.isnan(model.log_likelihood_)
    assert model.params_ == {"p": 6.0, "q": 3.0, "gamma": 15.0}


def test_gamma_gamma_input_errors() -> None:
    with pytest.raises(InvalidInput, match="frequency is 0 for 1 customers") as info:
        GammaGammaFitter().fit([1, 0, 2], [10.0, 0.0, 12.0])
    assert info.value.field == "frequency"
    assert "frequency > 0" in info.value.hint
    with pytest.raises(InvalidInput, match="non-positive average spend"):
        GammaGammaFitter().fit([1, 1, 2], [10.0, -5.0, 12.0])
    with pytest.raises(InvalidInput, match="different lengths"):
        GammaGammaFitter().fit([1, 1, 2], [10.0, 12.0])
    with pytest.raises(FitFailed, match="two distinct"):
        GammaGammaFitter().fit([1, 1], [10.0, 10.0])
    heavy = GammaGammaFitter.from_params({"p": 1.0, "q": 0.8, "gamma": 10.0})
    with pytest.raises(FitFailed, match="no finite mean"):
        heavy.conditional_expected_average_profit([1], [10.0])


def test_clv_argument_errors() -> None:
    bg = BetaGeoFitter.from_params({"r": 0.24, "alpha": 4.4, "a": 0.8, "b": 2.4})
    gg = GammaGammaFitter.from_params({"p": 6.25, "q": 3.74, "gamma": 15.44})
    args = (bg, gg, [1.0], [2.0], [5.0], [20.0])
    with pytest.raises(InvalidInput, match="months must be a whole number"):
        customer_lifetime_value(*args, months=0)
    with pytest.raises(InvalidInput, match="discount_rate"):
        customer_lifetime_value(*args, discount_rate=float("nan"))
    with pytest.raises(InvalidInput, match="time_unit"):
        customer_lifetime_value(*args, time_unit="M")  # type: ignore[arg-type]


def test_errors_use_the_siyu_envelope() -> None:
    with pytest.raises(SiyuError) as info:
        BetaGeoFitter().fit([0, -1], [0, 1], [2, 2])
    envelope = info.value.envelope()
    assert envelope["success"] is False
    assert envelope["error"]["code"] == "invalid"
    assert envelope["error"]["field"] == "frequency"


def test_register_adds_the_model_fitters() -> None:
    from siyu.predict.btyd import register

    registry = Registry()
    register(registry)
    assert registry.model_fitters._items == {
        "bgnbd": BetaGeoFitter,
        "paretonbd": ParetoNBDFitter,
        "gammagamma": GammaGammaFitter,
    }
