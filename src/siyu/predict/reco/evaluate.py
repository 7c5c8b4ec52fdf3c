"""Offline evaluation on a time split: hit-rate@k and MAP@k against a popularity baseline.

The model is fitted on everything up to the split; the truth is what each customer known at the
split bought in the test window after it. Products first seen after the split cannot be
recommended by either list and are left out of the truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from siyu.compute import WorkspaceTables
from siyu.predict.reco.data import load_reco_data, purchases
from siyu.predict.reco.model import ItemModel, Params, Rule
from siyu.predict.scores import NotEnoughData


@dataclass(frozen=True)
class RankingMetrics:
    customers: int
    hit_rate: float
    map: float


@dataclass(frozen=True)
class RecoEvaluation:
    split: datetime
    test_days: int
    k: int
    model: RankingMetrics
    popularity: RankingMetrics


def ranking_metrics(
    truth: sp.csr_matrix, rows: npt.NDArray[np.int64], ranked: npt.NDArray[np.int64]
) -> RankingMetrics:
    """Hit-rate@k and MAP@k of ``ranked`` (customers x k product indices) against ``truth``."""
    n, k = ranked.shape
    hits = np.asarray(truth[np.repeat(rows, k), ranked.ravel()]).reshape(n, k) > 0
    relevant = np.asarray(truth[rows].sum(axis=1)).ravel()
    precision_at = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    ap = (precision_at * hits).sum(axis=1) / np.maximum(np.minimum(relevant, k), 1)
    return RankingMetrics(n, float(hits.any(axis=1).mean()), float(ap.mean()))


def evaluate_recommendations(
    t: WorkspaceTables,
    as_of: datetime,
    *,
    test_days: int = 60,
    k: int = 10,
    params: Params | None = None,
    rules: Sequence[Rule] = (),
) -> RecoEvaluation:
    split = as_of - timedelta(days=test_days)
    data = load_reco_data(t, split)
    model = ItemModel(data, params or Params(), rules)
    later = purchases(t, split, as_of)
    c = pd.Index(data.customers).get_indexer(pd.Index(later["customer_id"].astype(str)))
    p = pd.Index(data.products).get_indexer(pd.Index(later["product_id"].astype(str)))
    keep = (c >= 0) & (p >= 0)
    if not keep.any():
        raise NotEnoughData(
            f"No customer known before {split:%Y-%m-%d} bought a known product in the "
            f"{test_days} days after it: nothing to evaluate recommendations on.",
            hint="Evaluate on a later date, or a longer test window (--test-days).",
        )
    shape = (len(data.customers), len(data.products))
    truth = sp.csr_matrix((np.ones(int(keep.sum())), (c[keep], p[keep])), shape=shape)
    rows = np.unique(c[keep]).astype(np.int64)
    recs = model.recommend(rows, top=k)
    baseline = np.tile(model.popular_top(k), (len(rows), 1))
    return RecoEvaluation(
        split,
        test_days,
        k,
        ranking_metrics(truth, rows, recs.product),
        ranking_metrics(truth, rows, baseline),
    )
