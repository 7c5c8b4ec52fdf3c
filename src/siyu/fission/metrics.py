"""Fission metrics: how far invites spread and what the customers they bring are worth.

Everything is computed in the database, set-based, over one half-open range ``[since, until)``
(naive UTC), from what is already stored: the ``Referral Link Shared`` and ``Referral Link
Clicked`` events, the ``referrals`` table, the orders and the predicted CLV in
``customer_scores``. Five aggregate queries, whatever the number of customers; only their small
results reach Python. The definitions (also in docs/loyalty.md, "Fission metrics"):

- **invites sent**: ``Referral Link Shared`` events in the range; **sharers**: distinct
  customers who shared; **visits**: ``Referral Link Clicked`` events in the range;
- **fission coefficient**: visits per share;
- **referred customers**: referrals whose friend's first order (``order_placed_at``) falls in
  the range and that qualified (state ``qualified`` or ``rewarded``; rejected ones, for fraud
  or a refund, do not count);
- **invite conversion**: referred customers / invites sent;
- **K-factor**: invites per customer x invite conversion, where "per customer" is per customer
  who ordered in the range (the base that could invite);
- **30-day retention**: among customers whose first order falls in the range, the share with
  another order within 30 days of it, referred (the friend of a qualified referral) against
  organic (everybody else); **predicted CLV**: the mean ``clv_12m`` of the same two groups;
- **cost per referred customer**: the base-currency cost of the rewards granted in the range
  (``reward_cost_base``, both sides) / the referrals rewarded in the range;
- **top inviters** (KOC ranking): per referrer, by referred customers, then referrals, then
  shares: shares, visits to their code, referrals, referred customers and the referred first
  orders' revenue in base currency.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from siyu.errors import InvalidInput
from siyu.store.database import Database

SHARED = "Referral Link Shared"
CLICKED = "Referral Link Clicked"
CONVERTED = ("qualified", "rewarded")
RETENTION_DAYS = 30


@dataclass(frozen=True)
class Cohort:
    """New customers of the range (first order in it): how many came back, what they are worth."""

    customers: int
    retained_30d: int
    retention_30d: float | None
    scored: int
    """Customers of the group with a predicted CLV."""
    avg_clv_12m: float | None


@dataclass(frozen=True)
class Inviter:
    """One referrer's line of the KOC ranking."""

    customer_id: str
    shares: int
    visits: int
    referrals: int
    referred_customers: int
    referred_revenue_base: float


@dataclass(frozen=True)
class FissionMetrics:
    """The fission numbers of one workspace over ``[since, until)``; ratios are None on 0/0."""

    since: datetime
    until: datetime
    invites_sent: int
    sharers: int
    visits: int
    fission_coefficient: float | None
    referrals_created: int
    referred_customers: int
    invite_conversion: float | None
    active_customers: int
    invites_per_customer: float | None
    k_factor: float | None
    referred: Cohort
    organic: Cohort
    reward_cost_base: float
    rewarded_referrals: int
    cost_per_referred_customer: float | None
    top_inviters: list[Inviter] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["since"] = self.since.isoformat()
        out["until"] = self.until.isoformat()
        return out


def _ratio(num: float, den: float) -> float | None:
    return None if not den else float(num) / float(den)


def _json_text(dialect: str, column: str, key: str) -> str:
    if dialect == "duckdb":
        return f"json_extract_string({column}, '$.{key}')"
    return f"({column}->>'{key}')"


def _shares(conn: sa.Connection, params: dict[str, Any]) -> tuple[int, int, int]:
    row = conn.execute(
        sa.text(
            """
            SELECT COALESCE(SUM(CASE WHEN e.event = :shared THEN 1 ELSE 0 END), 0),
                   COUNT(DISTINCT CASE WHEN e.event = :shared THEN e.customer_id END),
                   COALESCE(SUM(CASE WHEN e.event = :clicked THEN 1 ELSE 0 END), 0)
            FROM events e
            WHERE e.workspace_id = :ws AND e.event IN (:shared, :clicked)
              AND e.timestamp >= :since AND e.timestamp < :until
            """
        ),
        params,
    ).one()
    return int(row[0]), int(row[1]), int(row[2])


def _referrals(conn: sa.Connection, params: dict[str, Any]) -> tuple[int, int, float, int]:
    row = conn.execute(
        sa.text(
            """
            SELECT
              COALESCE(SUM(CASE WHEN created_at >= :since AND created_at < :until
                                THEN 1 ELSE 0 END), 0),
              COALESCE(SUM(CASE WHEN state IN ('qualified', 'rewarded')
                                 AND order_placed_at >= :since AND order_placed_at < :until
                                THEN 1 ELSE 0 END), 0),
              COALESCE(SUM(CASE WHEN rewarded_at >= :since AND rewarded_at < :until
                                THEN COALESCE(reward_cost_base, 0) ELSE 0 END), 0),
              COALESCE(SUM(CASE WHEN rewarded_at >= :since AND rewarded_at < :until
                                THEN 1 ELSE 0 END), 0)
            FROM referrals
            WHERE workspace_id = :ws
            """
        ),
        params,
    ).one()
    return int(row[0]), int(row[1]), float(row[2]), int(row[3])


def _active(conn: sa.Connection, params: dict[str, Any]) -> int:
    return int(
        conn.execute(
            sa.text(
                "SELECT COUNT(DISTINCT customer_id) FROM orders WHERE workspace_id = :ws "
                "AND customer_id IS NOT NULL AND placed_at >= :since AND placed_at < :until"
            ),
            params,
        ).scalar_one()
    )


def _cohorts(conn: sa.Connection, params: dict[str, Any]) -> tuple[Cohort, Cohort]:
    rows = conn.execute(
        sa.text(
            f"""
            WITH firsts AS (
                SELECT customer_id, MIN(placed_at) AS first_at
                FROM orders
                WHERE workspace_id = :ws AND customer_id IS NOT NULL AND placed_at < :until
                GROUP BY customer_id
                HAVING MIN(placed_at) >= :since),
            early AS (
                SELECT o.customer_id, COUNT(*) AS n
                FROM orders o JOIN firsts f ON f.customer_id = o.customer_id
                WHERE o.workspace_id = :ws
                  AND o.placed_at <= f.first_at + INTERVAL '{RETENTION_DAYS} days'
                GROUP BY o.customer_id),
            friends AS (
                SELECT DISTINCT friend_id AS customer_id FROM referrals
                WHERE workspace_id = :ws AND state IN ('qualified', 'rewarded'))
            SELECT CASE WHEN fr.customer_id IS NULL THEN 0 ELSE 1 END AS referred,
                   COUNT(*) AS customers,
                   COALESCE(SUM(CASE WHEN e.n >= 2 THEN 1 ELSE 0 END), 0) AS retained,
                   COUNT(s.clv_12m) AS scored,
                   AVG(s.clv_12m) AS clv
            FROM firsts f
            JOIN early e ON e.customer_id = f.customer_id
            LEFT JOIN friends fr ON fr.customer_id = f.customer_id
            LEFT JOIN customer_scores s
              ON s.workspace_id = :ws AND s.customer_id = f.customer_id
            GROUP BY CASE WHEN fr.customer_id IS NULL THEN 0 ELSE 1 END
            """
        ),
        params,
    ).all()
    found = {int(r[0]): r for r in rows}

    def cohort(referred: int) -> Cohort:
        r = found.get(referred)
        if r is None:
            return Cohort(0, 0, None, 0, None)
        customers, retained, scored = int(r[1]), int(r[2]), int(r[3])
        return Cohort(
            customers,
            retained,
            _ratio(retained, customers),
            scored,
            None if r[4] is None else float(r[4]),
        )

    return cohort(1), cohort(0)


def _inviters(conn: sa.Connection, params: dict[str, Any], top: int) -> list[Inviter]:
    code = _json_text(conn.dialect.name, "e.properties", "referral_code")
    rows = conn.execute(
        sa.text(
            f"""
            WITH ev AS (
                SELECT CASE WHEN e.event = :shared THEN COALESCE(rc.customer_id, e.customer_id)
                            ELSE rc.customer_id END AS customer_id,
                       CASE WHEN e.event = :shared THEN 1 ELSE 0 END AS shared,
                       CASE WHEN e.event = :clicked THEN 1 ELSE 0 END AS clicked
                FROM events e
                LEFT JOIN referral_codes rc
                  ON rc.workspace_id = :ws
                 AND rc.code = REPLACE(UPPER(TRIM({code})), '-', '')
                WHERE e.workspace_id = :ws AND e.event IN (:shared, :clicked)
                  AND e.timestamp >= :since AND e.timestamp < :until),
            shares AS (
                SELECT customer_id, SUM(shared) AS shares, SUM(clicked) AS visits
                FROM ev WHERE customer_id IS NOT NULL GROUP BY customer_id),
            refs AS (
                SELECT referrer_id AS customer_id,
                       SUM(CASE WHEN created_at >= :since AND created_at < :until
                                THEN 1 ELSE 0 END) AS referrals,
                       SUM(CASE WHEN state IN ('qualified', 'rewarded')
                                 AND order_placed_at >= :since AND order_placed_at < :until
                                THEN 1 ELSE 0 END) AS converted,
                       SUM(CASE WHEN state IN ('qualified', 'rewarded')
                                 AND order_placed_at >= :since AND order_placed_at < :until
                                THEN COALESCE(order_total * fx_rate, 0) ELSE 0 END) AS revenue
                FROM referrals
                WHERE workspace_id = :ws
                  AND ((created_at >= :since AND created_at < :until)
                       OR (order_placed_at >= :since AND order_placed_at < :until))
                GROUP BY referrer_id)
            SELECT COALESCE(s.customer_id, r.customer_id) AS customer_id,
                   COALESCE(s.shares, 0) AS shares, COALESCE(s.visits, 0) AS visits,
                   COALESCE(r.referrals, 0) AS referrals, COALESCE(r.converted, 0) AS converted,
                   COALESCE(r.revenue, 0) AS revenue
            FROM shares s FULL OUTER JOIN refs r ON r.customer_id = s.customer_id
            ORDER BY converted DESC, referrals DESC, shares DESC, customer_id
            LIMIT :top
            """
        ),
        {**params, "top": top},
    ).all()
    return [
        Inviter(str(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4]), round(float(r[5]), 4))
        for r in rows
    ]


def fission_metrics(
    db: Database, workspace_id: str, since: datetime, until: datetime, *, top: int = 10
) -> FissionMetrics:
    """The fission metrics of ``[since, until)`` (naive UTC) and the ``top`` inviters."""
    if until <= since:
        raise InvalidInput(
            f"The range ends ({until}) before it starts ({since}).",
            hint="Give since < until (until is excluded).",
            field="until",
        )
    if not 0 <= top <= 1000:
        raise InvalidInput(f"top must be between 0 and 1000, got {top}.", field="top")
    params: dict[str, Any] = {
        "ws": workspace_id,
        "since": since,
        "until": until,
        "shared": SHARED,
        "clicked": CLICKED,
    }
    with db.engine.connect() as conn:
        shares, sharers, visits = _shares(conn, params)
        created, referred, cost, rewarded = _referrals(conn, params)
        active = _active(conn, params)
        referred_cohort, organic_cohort = _cohorts(conn, params)
        inviters = _inviters(conn, params, top) if top else []
    per_customer = _ratio(shares, active)
    conversion = _ratio(referred, shares)
    return FissionMetrics(
        since=since,
        until=until,
        invites_sent=shares,
        sharers=sharers,
        visits=visits,
        fission_coefficient=_ratio(visits, shares),
        referrals_created=created,
        referred_customers=referred,
        invite_conversion=conversion,
        active_customers=active,
        invites_per_customer=per_customer,
        k_factor=None if per_customer is None or conversion is None else per_customer * conversion,
        referred=referred_cohort,
        organic=organic_cohort,
        reward_cost_base=round(cost, 4),
        rewarded_referrals=rewarded,
        cost_per_referred_customer=_ratio(cost, rewarded),
        top_inviters=inviters,
    )
