"""RFM: recency, frequency and monetary value with 1-5 scores and the usual segment map.

- recency: days since the last order; frequency: orders in the window (default 365 days);
  monetary: net spend in the base currency in the same window;
- scores 1-5 by quintile (``percent_rank``, so equal values share a score: the many customers
  with one order all get F=1) or by fixed thresholds, optionally within each market;
- the segment comes from the (R, F) grid below (M is reported, not used by the map).

Only customers with at least one order have RFM; the rest have null scores and no segment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import ibis
import ibis.expr.types as ir

from siyu.errors import InvalidInput

# (segment, recency scores, frequency scores): every (R, F) cell belongs to exactly one segment.
SEGMENT_GRID: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...] = (
    ("Champions", (5,), (4, 5)),
    ("Loyal", (3, 4), (4, 5)),
    ("Loyal", (3,), (3,)),
    ("Potential Loyalist", (4, 5), (2, 3)),
    ("New", (5,), (1,)),
    ("Promising", (4,), (1,)),
    ("Need Attention", (3,), (2,)),
    ("About to Sleep", (3,), (1,)),
    ("At Risk", (1, 2), (3, 4)),
    ("Can't Lose", (1, 2), (5,)),
    ("Hibernating", (2,), (1, 2)),
    ("Hibernating", (1,), (2,)),
    ("Lost", (1,), (1,)),
)
SEGMENTS = tuple(dict.fromkeys(name for name, _, _ in SEGMENT_GRID))


@dataclass(frozen=True)
class RfmConfig:
    """How scores are made. Thresholds are 4 ascending cut points per measure."""

    window_days: int = 365
    method: str = "quintile"  # or "thresholds"
    per_market: bool = False
    recency_days: Sequence[float] = (30, 90, 180, 365)  # <=30 days -> R5 ... >365 -> R1
    frequency: Sequence[float] = (1, 2, 3, 5)  # 1 order -> F1, 2 -> F2, ... > 5 -> F5
    monetary: Sequence[float] = (50, 100, 250, 500)  # base-currency units

    def __post_init__(self) -> None:
        if self.method not in ("quintile", "thresholds"):
            raise InvalidInput(
                f"RFM method {self.method!r} is not known.",
                hint="Use 'quintile' or 'thresholds'.",
                field="method",
            )
        for name in ("recency_days", "frequency", "monetary"):
            cuts = list(getattr(self, name))
            if len(cuts) != 4 or cuts != sorted(cuts):
                raise InvalidInput(
                    f"RFM {name} thresholds must be 4 ascending numbers, got {cuts}.",
                    field=name,
                )


def _quintile(window: Any) -> ir.IntegerValue:
    """1..5 from the percent rank over ``window``: ties share the lowest bucket they reach."""
    rank = ibis.percent_rank().over(window)
    return ((rank * 5).floor() + 1).clip(upper=5).cast("int8")


def _bucket(value: ir.NumericValue, cuts: Sequence[float]) -> ir.IntegerValue:
    """1 + number of cut points strictly below the value (<= first cut -> 1)."""
    score: ir.IntegerValue = ibis.literal(1, "int8")
    for cut in cuts:
        score = score + (value > cut).ifelse(1, 0).cast("int8")
    return score.cast("int8")


def rfm(features: ir.Table, as_of: datetime, config: RfmConfig | None = None) -> ir.Table:
    """RFM values, scores and segment for every buyer in ``features`` (see features.py)."""
    config = config or RfmConfig()
    if config.window_days not in (30, 60, 90, 365):
        raise InvalidInput(
            f"RFM window of {config.window_days} days is not computed.",
            hint="Use 30, 60, 90 or 365.",
            field="window_days",
        )
    f = features.filter(features.orders_total > 0)
    f = f.mutate(
        recency=f.days_since_last_order,
        frequency=f[f"orders_{config.window_days}"],
        monetary=f[f"spend_{config.window_days}"],
    )
    if config.method == "thresholds":
        r_score = 6 - _bucket(f.recency, config.recency_days)
        scored = f.mutate(
            r_score=r_score.cast("int8"),
            f_score=_bucket(f.frequency, config.frequency),
            m_score=_bucket(f.monetary, config.monetary),
        )
    else:
        group = ["country"] if config.per_market else []
        scored = f.mutate(
            r_score=_quintile(ibis.window(group_by=group, order_by=ibis.desc(f.recency))),
            f_score=_quintile(ibis.window(group_by=group, order_by=f.frequency)),
            m_score=_quintile(ibis.window(group_by=group, order_by=f.monetary)),
        )
    segment = ibis.cases(
        *[
            (scored.r_score.isin(rs) & scored.f_score.isin(fs), name)
            for name, rs, fs in SEGMENT_GRID
        ]
    )
    return scored.mutate(rfm_segment=segment).select("customer_id", "country", *RFM_COLUMNS)


#: The RFM columns of a customer, in order (after its id and country).
RFM_COLUMNS = ("recency", "frequency", "monetary", "r_score", "f_score", "m_score", "rfm_segment")
