"""Lifecycle tiers: ordered rules over customer features, first match wins.

A tier model is data: an ordered list of (tier, rule). The precedence is the order of the list,
and a customer who matches no rule gets the model's ``fallback`` tier, so every customer has
exactly one tier and can be told why. Three models ship; thresholds are configurable.

Default model (precedence top to bottom):

| tier | rule |
| --- | --- |
| churned | no interaction for ``churn_days`` (180) days or more |
| new | first interaction less than ``new_days`` (30) days ago |
| loyal | more than ``loyal_orders`` (3) purchases in 365 days and AOV above the workspace's |
| active | 1 to ``active_max_orders`` (2) purchases in the last 90 days |
| potential | first interaction 30-90 days ago, no purchase, >= 3 interactions in 30 days |
| unclassified | none of the above |

The workspace AOV is the total net spend over the total orders of all customers in the last
365 days (or per market with ``aov_scope="market"``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import ibis
import ibis.expr.types as ir

from siyu.errors import InvalidInput


@dataclass(frozen=True)
class TierConfig:
    """Thresholds of the tier models (defaults from the product spec)."""

    model: str = "default"
    new_days: int = 30
    potential_min_days: int = 30
    potential_max_days: int = 90
    potential_interactions_30: int = 3
    active_min_orders: int = 1
    active_max_orders: int = 2
    loyal_orders: int = 3  # strictly more than this many in 365 days
    aov_scope: str = "workspace"  # or "market"
    churn_days: int = 180
    high_value_spend_365: float = 500.0
    apparel_diamond_orders_30: int = 3
    apparel_diamond_aov: float = 100.0
    extra: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.model not in TIER_MODELS:
            raise InvalidInput(
                f"Tier model {self.model!r} is not known.",
                hint=f"Use one of: {', '.join(TIER_MODELS)}.",
                field="model",
            )
        if self.aov_scope not in ("workspace", "market"):
            raise InvalidInput("aov_scope must be 'workspace' or 'market'.", field="aov_scope")


def _default(f: ir.Table, c: TierConfig) -> list[tuple[str, ir.BooleanValue]]:
    never_bought = f.orders_total == 0
    return [
        ("churned", f.days_since_last_interaction >= c.churn_days),
        ("new", f.days_since_first_interaction < c.new_days),
        ("loyal", (f.orders_365 > c.loyal_orders) & (f.aov_365 > f.reference_aov)),
        (
            "active",
            (f.orders_90 >= c.active_min_orders) & (f.orders_90 <= c.active_max_orders),
        ),
        (
            "potential",
            never_bought
            & (f.days_since_first_interaction >= c.potential_min_days)
            & (f.days_since_first_interaction <= c.potential_max_days)
            & (f.interactions_30 >= c.potential_interactions_30),
        ),
    ]


def _apparel(f: ir.Table, c: TierConfig) -> list[tuple[str, ir.BooleanValue]]:
    """Four-tier apparel model: Diamond, Gold, Silver, Churn warning."""
    aov_30 = (f.orders_30 > 0).ifelse(f.spend_30 / f.orders_30, 0.0)
    return [
        (
            "diamond",
            (f.orders_30 >= c.apparel_diamond_orders_30) & (aov_30 > c.apparel_diamond_aov),
        ),
        ("gold", (f.orders_60 >= 1) & (f.orders_60 <= 2)),
        ("silver", f.orders_90 == 1),
        ("churn_warning", (f.orders_total > 0) & (f.orders_90 == 0)),
    ]


def _dtc_rfm(f: ir.Table, c: TierConfig) -> list[tuple[str, ir.BooleanValue]]:
    """Five-segment DTC model on RFM scores (needs r_score, f_score, m_score columns)."""
    return [
        ("high_value", (f.r_score >= 4) & (f.f_score >= 4) & (f.m_score >= 4)),
        ("churn_risk", (f.r_score <= 2) & (f.f_score >= 4) & (f.m_score >= 4)),
        ("new", (f.r_score >= 4) & (f.f_score <= 1)),
        ("potential", (f.r_score >= 3) & ((f.f_score >= 2) | (f.m_score >= 3))),
        ("low_value", f.r_score.notnull()),
    ]


RuleSet = Callable[[ir.Table, TierConfig], list[tuple[str, ir.BooleanValue]]]

# model -> (rules in precedence order, tier names in that order, fallback tier)
TIER_MODELS: dict[str, tuple[RuleSet, tuple[str, ...], str]] = {
    "default": (
        _default,
        ("churned", "new", "loyal", "active", "potential"),
        "unclassified",
    ),
    "apparel": (_apparel, ("diamond", "gold", "silver", "churn_warning"), "unclassified"),
    "dtc_rfm": (
        _dtc_rfm,
        ("high_value", "churn_risk", "new", "potential", "low_value"),
        "no_purchase",
    ),
}


def tier_names(model: str) -> list[str]:
    """Tier names of a model in precedence order, the fallback last."""
    _, names, fallback = TIER_MODELS[model]
    return [*names, fallback]


def with_reference_aov(features: ir.Table, config: TierConfig) -> ir.Table:
    """Add the AOV a customer is compared with: the workspace's or the market's."""
    group = ["country"] if config.aov_scope == "market" else []
    window = ibis.window(group_by=group)
    total = features.spend_365.sum().over(window)
    count = features.orders_365.sum().over(window)
    return features.mutate(reference_aov=(count > 0).ifelse(total / count, ibis.null()))


def with_tiers(features: ir.Table, config: TierConfig | None = None) -> ir.Table:
    """``features`` with ``tier`` and ``high_value`` (and the ``reference_aov`` they compare with).

    Added as columns of the same rows: nothing is joined back by ``customer_id`` (at 1M
    customers such a join builds a million-row hash table).
    """
    config = config or TierConfig()
    f = with_reference_aov(features, config)
    rules, names, fallback = TIER_MODELS[config.model]
    matched = rules(f, config)
    assert tuple(name for name, _ in matched) == names
    tier = ibis.cases(*[(cond, name) for name, cond in matched], else_=fallback)
    return f.mutate(tier=tier, high_value=f.spend_365 > config.high_value_spend_365)


def tiers(features: ir.Table, config: TierConfig | None = None) -> ir.Table:
    """(customer_id, tier, high_value) for every customer in ``features``."""
    return with_tiers(features, config).select("customer_id", "tier", "high_value")
