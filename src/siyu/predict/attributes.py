"""Prediction scores as customer attributes of the tag language (``clv_decile >= 8``).

Read from the latest stored scores (``customer_scores``), whatever date tags are evaluated as
of: a score carries its own model version and date. Customers without a score have NULLs, which
no comparison matches.

- ``clv_decile``: 1-10 among the scored customers, 10 = the top 10% by 12-month CLV;
- ``churn_band``: ``low`` (under 30), ``medium`` (30-59), ``high`` (60-80), ``very_high`` (above
  80, the alert level of the rule score);
- ``days_to_next_order``: days from the tagging date to the expected next order date
  (negative when overdue).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import ibis
import ibis.expr.types as ir

from siyu.compute import WorkspaceTables
from siyu.segments.lang.schema import AttrType

#: (band, lowest risk in it), highest band first.
CHURN_BANDS: tuple[tuple[str, int], ...] = (
    ("very_high", 81),
    ("high", 60),
    ("medium", 30),
    ("low", 0),
)

PREDICTION_SCHEMA: Mapping[str, AttrType] = {
    "p_alive": "number",
    "expected_orders_12m": "number",
    "expected_order_value": "number",
    "clv_12m": "number",
    "clv_decile": "number",
    "churn_risk": "number",
    "churn_band": "string",
    "expected_next_order_at": "timestamp",
    "days_to_next_order": "number",
}


def prediction_attributes(t: WorkspaceTables, as_of: datetime) -> ir.Table:
    """One row per scored customer with :data:`PREDICTION_SCHEMA`'s columns."""
    s = t.customer_scores
    valued = s.filter(s.clv_12m.notnull())
    deciles = valued.select(
        "customer_id", clv_decile=ibis.ntile(10).over(order_by=valued.clv_12m) + 1
    )
    joined = s.left_join(deciles, "customer_id").drop("customer_id_right")
    risk = joined.churn_risk
    band = ibis.cases(*((risk >= low, name) for name, low in CHURN_BANDS), else_=None)
    next_day = joined.expected_next_order_at.date()
    return joined.select(
        "customer_id",
        "p_alive",
        "expected_orders_12m",
        "expected_order_value",
        "clv_12m",
        clv_decile=joined.clv_decile.cast("int64"),
        churn_risk=risk.cast("int64"),
        churn_band=risk.isnull().ifelse(ibis.null("string"), band),
        expected_next_order_at=joined.expected_next_order_at,
        days_to_next_order=next_day.delta(ibis.date(as_of.date()), unit="day"),
    )
