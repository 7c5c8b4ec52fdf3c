"""Reasons behind a churn score: stored as JSON lists of small objects, rendered as text on read.

Stored structured (``code``, ``points``, ``value``, ``typical``) so the API returns data and the
CLI, console and journeys render it in the reader's language; :func:`describe` gives English.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

TEXT: Mapping[str, str] = {
    "days_since_last_order": "{value:.0f} days since the last order (typical {typical:.0f})",
    "days_since_first_order": "customer for {value:.0f} days (typical {typical:.0f})",
    "orders_total": "{value:.0f} orders in all (typical {typical:.0f})",
    "orders_90": "{value:.0f} orders in 90 days (typical {typical:.0f})",
    "orders_365": "{value:.0f} orders in 365 days (typical {typical:.0f})",
    "spend_365": "spent {value:.0f} in 365 days (typical {typical:.0f})",
    "avg_cycle_days": "buys every {value:.0f} days on average (typical {typical:.0f})",
    "cycle_ratio": "{value:.1f} purchase cycles since the last order (typical {typical:.1f})",
    "days_since_last_interaction": (
        "{value:.0f} days since the last interaction (typical {typical:.0f})"
    ),
    "interactions_30": "{value:.0f} interactions in 30 days (typical {typical:.0f})",
    "interactions_90": "{value:.0f} interactions in 90 days (typical {typical:.0f})",
    "visit_days_30": "{value:.0f} days with a visit in 30 days (typical {typical:.0f})",
    "email_opens_90": "{value:.0f} email opens in 90 days (typical {typical:.0f})",
    "negative_30": "{value:.0f} negative service interactions in 30 days",
    "few_visits": "fewer than 2 visits in the last 30 days ({value:.0f})",
    "low_open_rate": "email open rate {value:.0%} in 90 days (under 5%)",
    "overdue": "{value:.0f} days since the last order, more than the cycle + 30 ({typical:.0f})",
    "negative_service": "a negative service interaction in the last 30 days",
    "open_rate_unknown": "no email sends recorded: the open-rate rule was not judged",
}


def numbers(values: np.ndarray, decimals: int = 2) -> pd.Series:
    """Numbers as JSON text, NaN as ``null`` (vectorised)."""
    rounded = np.round(np.asarray(values, dtype=float), decimals)
    text = pd.Series(rounded).astype(str).fillna("null")
    out: pd.Series = text.where(np.isfinite(rounded), "null")
    return out


def json_lists(pieces: Sequence[pd.Series]) -> list[str]:
    """Join per-customer JSON object texts column by column ('' = absent) into JSON lists.

    Vectorised over customers: one string operation per column, no per-row Python.
    """
    if not pieces:
        return []
    text = pieces[0].astype(str).reset_index(drop=True)
    for piece in pieces[1:]:
        part = piece.astype(str).reset_index(drop=True)
        sep = pd.Series(np.where((text != "") & (part != ""), ", ", ""), dtype=str)
        text = text + sep + part
    out: list[str] = ("[" + text + "]").tolist()
    return out


class _Unknown:
    """A number stored as ``null`` (NaN when scored: no typical value among too few buyers, a
    ratio without a cycle): rendered as "unknown" whatever the template's number format."""

    def __format__(self, spec: str) -> str:
        return "unknown"


def describe(reasons: Sequence[Mapping[str, Any]]) -> list[str]:
    """English sentences for stored reasons (unknown codes are shown as they are)."""
    lines = []
    for r in reasons:
        template = TEXT.get(str(r.get("code")), "{code}")
        fields = {k: _Unknown() if v is None else v for k, v in r.items()}
        try:
            line = template.format(**{"value": 0.0, "typical": 0.0, **fields})
        except (KeyError, ValueError, TypeError):
            line = str(r.get("code"))
        points = r.get("points")
        lines.append(f"{line} (+{points} points)" if points else line)
    return lines
