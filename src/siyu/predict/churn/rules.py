"""The transparent churn rule score for small shops: four rules, points that add up to 0-100.

| rule | points | fires when |
| --- | --- | --- |
| few_visits | 25 | fewer than 2 days with a visit (page, screen, product view) in 30 days |
| low_open_rate | 25 | email open rate under 5% over 90 days (only with recorded sends) |
| overdue | 35 | days since the last order > the customer's average purchase cycle + 30 days |
| negative_service | 15 | refund, cancellation, review of 2 or less, negative message (30 d) |

An alert is raised above 80 points: an overdue customer who neither visits nor opens emails
(85), or all four rules (100). A one-time buyer has no cycle of her own: the workspace's median
cycle of repeat buyers stands in (90 days if there are none). Without recorded email sends the
open-rate rule cannot be judged and gives no points (it says so in the reasons).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from siyu.predict.churn.reasons import json_lists, numbers

ALERT_ABOVE = 80
FALLBACK_CYCLE_DAYS = 90.0


@dataclass(frozen=True)
class Rule:
    code: str
    points: int
    text: str


RULES: tuple[Rule, ...] = (
    Rule("few_visits", 25, "fewer than 2 visits in the last 30 days"),
    Rule("low_open_rate", 25, "email open rate under 5% in the last 90 days"),
    Rule("overdue", 35, "no purchase for longer than the usual cycle + 30 days"),
    Rule("negative_service", 15, "a negative service interaction in the last 30 days"),
)


def rule_flags(features: pd.DataFrame) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
    """(customers, rules) booleans in :data:`RULES` order, and each customer's cycle."""
    cycle = features["avg_cycle_days"].to_numpy(float)
    known = cycle[np.isfinite(cycle)]
    typical = float(np.median(known)) if known.size else FALLBACK_CYCLE_DAYS
    cycle = np.where(np.isfinite(cycle), cycle, typical)
    sends = features["email_sends_90"].to_numpy(float)
    opens = features["email_opens_90"].to_numpy(float)
    rate = np.divide(opens, sends, out=np.ones_like(opens), where=sends > 0)
    flags = np.column_stack(
        [
            features["visit_days_30"].to_numpy(float) < 2,
            (sends > 0) & (rate < 0.05),
            features["days_since_last_order"].to_numpy(float) > cycle + 30,
            features["negative_30"].to_numpy(float) > 0,
        ]
    )
    return flags, cycle


def rule_scores(features: pd.DataFrame) -> tuple[npt.NDArray[np.int64], list[str]]:
    """0-100 score per customer and its reasons as JSON text (the rules that fired)."""
    flags, cycle = rule_flags(features)
    points = np.array([r.points for r in RULES])
    score = (flags * points).sum(axis=1).astype(np.int64)
    n = len(features)
    sends = features["email_sends_90"].to_numpy(float)
    values = {
        "few_visits": features["visit_days_30"].to_numpy(float),
        "low_open_rate": np.divide(
            features["email_opens_90"].to_numpy(float),
            sends,
            out=np.zeros(n),
            where=sends > 0,
        ),
        "overdue": features["days_since_last_order"].to_numpy(float),
        "negative_service": features["negative_30"].to_numpy(float),
    }
    typical = {"few_visits": 2.0, "low_open_rate": 0.05, "negative_service": 0.0}
    pieces: list[pd.Series] = []
    for j, rule in enumerate(RULES):
        value = numbers(values[rule.code], 3)
        limit = cycle + 30 if rule.code == "overdue" else np.full(n, typical[rule.code])
        piece = (
            f'{{"code": "{rule.code}", "points": {rule.points}, "value": '
            + value
            + ', "typical": '
            + numbers(limit, 3)
            + "}"
        )
        pieces.append(piece.where(flags[:, j], ""))
    unknown = '{"code": "open_rate_unknown", "points": 0}'
    pieces.append(pd.Series(np.where(sends > 0, "", unknown), dtype=str))
    return score, json_lists(pieces)
