"""Measurement of a journey: funnel, per-step outcomes, conversions, A/B test and holdout lift.

The database aggregates (GROUP BY over enrollments, step runs, messages and orders); Python
only does the statistics on those few numbers. A conversion is an order placed by the customer
between entering the journey and the end of the goal's attribution window (7 days when the
journey has no goal), counted the same way for every variant and for the holdout, so their
rates compare directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from siyu.journeys.tables import journey_enrollments as en
from siyu.journeys.tables import journey_step_runs as runs
from siyu.journeys.versions import get_journey, load_version
from siyu.store.database import Database
from siyu.store.schema import events, orders


@dataclass(frozen=True)
class VariantResult:
    variant: str
    enrolled: int
    converted: int
    revenue: float

    @property
    def rate(self) -> float:
        return self.converted / self.enrolled if self.enrolled else 0.0


@dataclass(frozen=True)
class Comparison:
    """Two-proportion z-test of ``variant`` against ``baseline`` (conversion rates)."""

    variant: str
    baseline: str
    difference: float
    relative_lift: float | None
    z: float
    p_value: float


@dataclass
class JourneyMetrics:
    journey_id: str
    entered: int = 0
    active: int = 0
    completed: int = 0
    exited: int = 0
    goal: int = 0
    failed: int = 0
    sent: int = 0
    delivered: int = 0
    opened: int = 0
    clicked: int = 0
    unsubscribed: int = 0
    conversions: int = 0
    revenue: float = 0.0
    steps: dict[str, dict[str, int]] = field(default_factory=dict)
    variants: list[VariantResult] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    holdout_lift: float | None = None  # (treated rate - holdout rate) / holdout rate

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in vars(self).items() if k not in ("variants", "comparisons")}
        out["variants"] = [{**vars(v), "rate": v.rate} for v in self.variants]
        out["comparisons"] = [vars(c) for c in self.comparisons]
        return out


def two_proportion_test(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """(z, two-sided p) of H0: p1 == p2, with the pooled standard error."""
    from scipy.stats import norm

    if n1 == 0 or n2 == 0:
        return 0.0, 1.0
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0
    z = (x1 / n1 - x2 / n2) / se
    return z, float(2 * norm.sf(abs(z)))


def _window(db: Database, ws: str, journey_id: str, version: int) -> timedelta:
    with db.engine.connect() as conn:
        d = load_version(conn, ws, journey_id, version)
    return d.goal.attribution.delta if d.goal is not None else timedelta(days=7)


def journey_metrics(db: Database, ws: str, journey_id: str) -> JourneyMetrics:
    info = get_journey(db, ws, journey_id)
    window = _window(db, ws, journey_id, info.version)
    m = JourneyMetrics(journey_id)
    scope = (en.c.workspace_id == ws, en.c.journey_id == journey_id)
    with db.engine.connect() as conn:
        for state, n in conn.execute(
            sa.select(en.c.state, sa.func.count()).where(*scope).group_by(en.c.state)
        ).all():
            m.entered += int(n)
            if state in ("active", "completed", "exited", "goal", "failed"):
                setattr(m, state, int(n))
        for step_id, outcome, n in conn.execute(
            sa.select(
                runs.c.step_id, sa.func.coalesce(runs.c.outcome, runs.c.state), sa.func.count()
            )
            .where(runs.c.workspace_id == ws, runs.c.journey_id == journey_id)
            .group_by(runs.c.step_id, sa.func.coalesce(runs.c.outcome, runs.c.state))
        ).all():
            m.steps.setdefault(step_id, {})[outcome] = int(n)
        _message_counts(conn, ws, journey_id, m)
        # Orders inside each enrollment's attribution window, per variant.
        o = orders
        conv = (
            sa.select(
                en.c.enrollment_id,
                en.c.variant,
                sa.func.count(o.c.order_id).label("n_orders"),
                sa.func.coalesce(sa.func.sum(o.c.total_base), 0).label("revenue"),
            )
            .select_from(
                en.outerjoin(
                    o,
                    sa.and_(
                        o.c.workspace_id == en.c.workspace_id,
                        o.c.customer_id == en.c.customer_id,
                        o.c.placed_at >= en.c.entered_at,
                        o.c.placed_at < en.c.entered_at + window,
                        o.c.status != "cancelled",
                    ),
                )
            )
            .where(*scope)
            .group_by(en.c.enrollment_id, en.c.variant)
            .subquery()
        )
        found = conn.execute(
            sa.select(
                conv.c.variant,
                sa.func.count(),
                sa.func.sum(sa.case((conv.c.n_orders > 0, 1), else_=0)),
                sa.func.sum(conv.c.revenue),
            ).group_by(conv.c.variant)
        ).all()
        per_variant = [(v or "all", n, c, r) for v, n, c, r in found]
        m.unsubscribed = int(
            conn.execute(
                sa.select(sa.func.count(sa.distinct(en.c.enrollment_id)))
                .select_from(
                    en.join(
                        events,
                        sa.and_(
                            events.c.workspace_id == en.c.workspace_id,
                            events.c.customer_id == en.c.customer_id,
                            events.c.event == "Unsubscribed",
                            events.c.timestamp >= en.c.entered_at,
                        ),
                    )
                )
                .where(*scope)
            ).scalar_one()
        )
    m.variants = [
        VariantResult(str(v), int(n), int(c or 0), float(r or 0)) for v, n, c, r in per_variant
    ]
    m.variants.sort(key=lambda v: v.variant)
    m.conversions = sum(v.converted for v in m.variants)
    m.revenue = sum(v.revenue for v in m.variants)
    _compare(m)
    return m


def _message_counts(conn: sa.Connection, ws: str, journey_id: str, m: JourneyMetrics) -> None:
    try:
        from siyu.messaging.tables import messages as msg
    except ImportError:  # messaging slice not installed
        return
    row = conn.execute(
        sa.select(
            sa.func.count(msg.c.sent_at),
            sa.func.count(msg.c.delivered_at),
            sa.func.count(msg.c.read_at),
        ).where(msg.c.workspace_id == ws, msg.c.journey_id == journey_id)
    ).one()
    m.sent, m.delivered, m.opened = (int(x) for x in row)
    m.clicked = int(
        conn.execute(
            sa.select(sa.func.count(sa.distinct(events.c.customer_id))).where(
                events.c.workspace_id == ws,
                events.c.event.in_(("Email Clicked", "Message Clicked")),
                sa.literal_column("(events.properties ->> 'campaign_id')") == journey_id,
            )
        ).scalar_one()
    )


def _compare(m: JourneyMetrics) -> None:
    by_name = {v.variant: v for v in m.variants}
    holdout = by_name.get("holdout")
    tested = [v for v in m.variants if v.variant not in ("holdout", "all")]
    if len(tested) >= 2:
        base = tested[0]
        for v in tested[1:]:
            z, p = two_proportion_test(v.converted, v.enrolled, base.converted, base.enrolled)
            lift = (v.rate - base.rate) / base.rate if base.rate else None
            m.comparisons.append(
                Comparison(v.variant, base.variant, v.rate - base.rate, lift, z, p)
            )
    if holdout is not None:
        treated = [v for v in m.variants if v.variant != "holdout"]
        n = sum(v.enrolled for v in treated)
        x = sum(v.converted for v in treated)
        z, p = two_proportion_test(x, n, holdout.converted, holdout.enrolled)
        rate = x / n if n else 0.0
        m.holdout_lift = (rate - holdout.rate) / holdout.rate if holdout.rate else None
        m.comparisons.append(
            Comparison("treated", "holdout", rate - holdout.rate, m.holdout_lift, z, p)
        )
