"""Recommendations: item-to-item co-purchase and co-view similarity on sparse matrices,
favourite-category and popular-in-market candidates, merchant complement rules, offline
evaluation against popularity, and the stored top-N per customer."""

from __future__ import annotations

from siyu.predict.reco.evaluate import RankingMetrics, RecoEvaluation, evaluate_recommendations
from siyu.predict.reco.model import REASONS, ItemModel, Params, Rule
from siyu.predict.reco.run import (
    RecoReport,
    add_rule,
    evaluate,
    fit_model,
    list_rules,
    recommend_all,
    remove_rule,
    similar_products,
    stored_recommendations,
)

__all__ = [
    "REASONS",
    "ItemModel",
    "Params",
    "RankingMetrics",
    "RecoEvaluation",
    "RecoReport",
    "Rule",
    "add_rule",
    "evaluate",
    "evaluate_recommendations",
    "fit_model",
    "list_rules",
    "recommend_all",
    "remove_rule",
    "similar_products",
    "stored_recommendations",
]
