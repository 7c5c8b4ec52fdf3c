"""Tables of the predict slice.

``customer_scores``: the latest scores per customer, each family (CLV, churn) with its model
version and date, so a profile can say which model produced a number and when. The columns of a
family are empty until that family has run: a small shop gets a rule-based churn risk without
CLV, which needs more data. Journeys trigger on ``churn_risk`` crossing a threshold.

``customer_recommendations``: the top-N products per customer (post-purchase cross-sell), and
``reco_rules``: the complement rules a merchant adds ("yoga mat -> yoga wear").
"""

from __future__ import annotations

import sqlalchemy as sa

from siyu.store.schema import JSONDoc, metadata

customer_scores = sa.Table(
    "customer_scores",
    metadata,
    sa.Column("workspace_id", sa.String(40), nullable=False),
    sa.Column("customer_id", sa.String(40), nullable=False),
    # CLV family (siyu predict clv)
    sa.Column("model_version", sa.String(80)),
    sa.Column("as_of", sa.DateTime()),
    sa.Column("scored_at", sa.DateTime()),
    sa.Column("p_alive", sa.Float()),
    sa.Column("expected_orders_12m", sa.Float()),
    sa.Column("expected_order_value", sa.Float()),
    sa.Column("clv_12m", sa.Float()),
    sa.Column("expected_next_order_at", sa.DateTime()),
    # churn family (siyu predict churn)
    sa.Column("churn_risk", sa.Integer()),
    sa.Column("churn_reasons", JSONDoc),
    sa.Column("churn_method", sa.String(16)),
    sa.Column("churn_model_version", sa.String(80)),
    sa.Column("churn_as_of", sa.DateTime()),
    sa.Column("churn_scored_at", sa.DateTime()),
    sa.PrimaryKeyConstraint("workspace_id", "customer_id"),
)

customer_recommendations = sa.Table(
    "customer_recommendations",
    metadata,
    sa.Column("workspace_id", sa.String(40), nullable=False),
    sa.Column("customer_id", sa.String(40), nullable=False),
    sa.Column("rank", sa.Integer(), nullable=False),
    sa.Column("product_id", sa.String(200), nullable=False),
    sa.Column("score", sa.Float(), nullable=False),
    sa.Column("reason", sa.String(24), nullable=False),
    sa.Column("because_of", sa.String(200)),
    sa.Column("model_version", sa.String(80), nullable=False),
    sa.Column("as_of", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "customer_id", "rank"),
)

reco_rules = sa.Table(
    "reco_rules",
    metadata,
    sa.Column("workspace_id", sa.String(40), nullable=False),
    sa.Column("rule_id", sa.String(40), nullable=False),
    sa.Column("when_bought", sa.String(200), nullable=False),
    sa.Column("recommend", sa.String(200), nullable=False),
    sa.Column("weight", sa.Float(), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "rule_id"),
)
