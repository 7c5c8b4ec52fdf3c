"""Item-to-item recommendations on sparse matrices (SciPy), no per-customer Python.

- Customer x product matrices of purchases and of product views, each interaction weighted by
  ``0.5 ** (age / half_life)`` (time decay: last month's basket counts more than last year's).
- Item-item similarity: cosine of the co-occurrence ``X.T @ X`` (customers who bought/viewed
  both), diagonal removed; co-purchase plus ``view_weight`` x co-view, plus the merchant's
  complement rules as extra item-item weights.
- A customer's scores: her decayed purchase + view profile times the similarity matrix, in
  chunks of customers. Products she bought within ``skip_days`` are skipped unless they are
  replenishable (bought again by at least ``replenish_share`` of their buyers). Ties and empty
  profiles are ordered by what is popular in her market (country), else overall: new customers
  get the popular-in-market list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
REASONS: tuple[str, ...] = (
    "co_purchase",
    "co_view",
    "complement",
    "favourite_category",
    "popular",
)


@dataclass(frozen=True)
class Interactions:
    """Integer-coded interactions: customer index, product index, age in days at the cut-off."""

    customer: Ints
    product: Ints
    age_days: Floats


@dataclass(frozen=True)
class RecoData:
    customers: npt.NDArray[np.str_]
    products: npt.NDArray[np.str_]
    skus: npt.NDArray[np.str_]
    categories: npt.NDArray[np.str_]
    names: npt.NDArray[np.str_]
    country: Ints
    """Market index per customer (-1 unknown); markets are the rows of popularity by market."""
    markets: int
    purchases: Interactions
    views: Interactions


@dataclass(frozen=True)
class Rule:
    when_bought: str
    recommend: str
    weight: float = 1.0


@dataclass(frozen=True)
class Params:
    half_life_days: float = 90.0
    view_weight: float = 0.5
    skip_days: float = 180.0
    replenish_share: float = 0.2
    replenish_min_buyers: int = 5
    popular_days: float = 90.0
    popular_weight: float = 0.3
    category_weight: float = 2.0


@dataclass(frozen=True)
class Recommendations:
    """Top-N per customer: product indices, scores, reason codes and the 'because of' product."""

    product: Ints
    score: Floats
    reason: Ints
    because_of: Ints  # -1 for popularity


@dataclass
class ItemModel:
    data: RecoData
    params: Params = field(default_factory=Params)
    rules: Sequence[Rule] = ()

    def __post_init__(self) -> None:
        d, p = self.data, self.params
        shape = (len(d.customers), len(d.products))
        self.bought = _decayed(d.purchases, shape, p.half_life_days)
        self.viewed = _decayed(d.views, shape, p.half_life_days)
        self.sim_buy = _cosine(self.bought)
        self.sim_view = _cosine(self.viewed)
        self.sim_rule = _rule_matrix(d, self.rules)
        self.replenishable = _replenishable(d, p)
        self.popular = _popularity(d, p)
        self.category = np.unique(d.categories, return_inverse=True)[1].astype(np.int64)
        k = int(self.category.max()) + 1 if len(self.category) else 0
        self.category_onehot = sp.csr_matrix(
            (np.ones(len(self.category)), (np.arange(len(self.category)), self.category)),
            shape=(len(self.category), k),
        )
        best = np.zeros(k)
        np.maximum.at(best, self.category, self.popular[0])
        self.popular_in_category = np.divide(
            self.popular[0],
            best[self.category],
            out=np.zeros(len(self.category)),
            where=best[self.category] > 0,
        )
        self.sim_total: sp.csr_matrix = (
            self.sim_buy + p.view_weight * self.sim_view + self.sim_rule
        ).tocsr()

    def similar(self, product: int, top: int = 10) -> tuple[Ints, Floats]:
        """The ``top`` products most similar to ``product`` (index), with their similarity."""
        row = self.sim_total.getrow(product).toarray().ravel()
        row[product] = -np.inf
        order = np.argsort(-row, kind="stable")[:top]
        keep = order[row[order] > 0]
        return keep.astype(np.int64), row[keep]

    def recommend(self, customers: Ints | None = None, top: int = 10) -> Recommendations:
        """Top-``top`` products for the given customer indices (all by default)."""
        d, p = self.data, self.params
        who = np.arange(len(d.customers)) if customers is None else np.asarray(customers)
        m = len(d.products)
        top = min(top, m)
        chunk = max(1, 2_000_000 // max(m, 1))
        just_bought = _recent(d.purchases, (len(d.customers), m), p.skip_days)
        profile = (self.bought + p.view_weight * self.viewed).tocsr()
        parts = []
        for start in range(0, len(who), chunk):
            rows = who[start : start + chunk]
            prof = profile[rows]
            affinity = (prof @ self.category_onehot).toarray()
            peak_cat = affinity.max(axis=1, keepdims=True)
            affinity = np.divide(
                affinity, peak_cat, out=np.zeros_like(affinity), where=peak_cat > 0
            )
            comps = [
                (prof @ self.sim_buy).toarray(),
                p.view_weight * (prof @ self.sim_view).toarray(),
                (self.bought[rows] @ self.sim_rule).toarray(),
                p.category_weight * affinity[:, self.category] * self.popular_in_category[None, :],
            ]
            score = comps[0] + comps[1] + comps[2] + comps[3]
            pop = self.popular[np.where(d.country[rows] >= 0, d.country[rows] + 1, 0)]
            # Similarity scaled to 0-1 per customer, blended with what sells in her market.
            peak = score.max(axis=1, keepdims=True)
            scaled = np.divide(score, peak, out=np.zeros_like(score), where=peak > 0)
            total = scaled + p.popular_weight * pop + 1e-9 * pop
            skip = just_bought[rows].toarray() & ~self.replenishable[None, :]
            total[skip] = -np.inf
            best = np.argpartition(-total, top - 1, axis=1)[:, :top] if top < m else None
            cand = best if best is not None else np.tile(np.arange(m), (len(rows), 1))
            order = np.argsort(-np.take_along_axis(total, cand, axis=1), axis=1, kind="stable")
            chosen = np.take_along_axis(cand, order, axis=1)
            value = np.take_along_axis(total, chosen, axis=1)
            stacked = np.stack([np.take_along_axis(c, chosen, axis=1) for c in comps])
            reason = np.where(stacked.max(axis=0) > 0, stacked.argmax(axis=0), len(REASONS) - 1)
            because = _because_of(prof, self.sim_total, chosen, reason == len(REASONS) - 1)
            parts.append((chosen, value, reason, because))
        if not parts:
            empty = np.zeros((0, top))
            return Recommendations(
                empty.astype(np.int64), empty, empty.astype(np.int64), empty.astype(np.int64)
            )
        return Recommendations(
            np.vstack([x[0] for x in parts]).astype(np.int64),
            np.vstack([x[1] for x in parts]),
            np.vstack([x[2] for x in parts]).astype(np.int64),
            np.vstack([x[3] for x in parts]).astype(np.int64),
        )

    def popular_top(self, top: int = 10) -> Ints:
        """The overall most popular products (the baseline and the cold-start list)."""
        return np.argsort(-self.popular[0], kind="stable")[:top].astype(np.int64)


def _decayed(x: Interactions, shape: tuple[int, int], half_life: float) -> sp.csr_matrix:
    weight = 0.5 ** (np.maximum(x.age_days, 0.0) / half_life)
    matrix = sp.csr_matrix((weight, (x.customer, x.product)), shape=shape)
    matrix.sum_duplicates()
    # Saturate: ten views of one product are not ten times the evidence of one.
    matrix.data = np.log1p(matrix.data)
    return matrix


def _cosine(x: sp.csr_matrix) -> sp.csr_matrix:
    co = (x.T @ x).tocsr()
    co.setdiag(0.0)
    co.eliminate_zeros()
    norm = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
    inv = np.divide(1.0, norm, out=np.zeros_like(norm), where=norm > 0)
    scale = sp.diags(inv)
    out: sp.csr_matrix = (scale @ co @ scale).tocsr()
    return out


def _matches(d: RecoData, key: str) -> npt.NDArray[np.bool_]:
    """Products a rule side names: by id, SKU or category (exact), or by a phrase of the name."""
    k = key.strip().lower()
    out: npt.NDArray[np.bool_] = (
        (np.char.lower(d.products.astype(str)) == k)
        | (np.char.lower(d.skus.astype(str)) == k)
        | (np.char.lower(d.categories.astype(str)) == k)
        | (np.char.find(np.char.lower(d.names.astype(str)), k) >= 0)
    )
    return out


def _rule_matrix(d: RecoData, rules: Sequence[Rule]) -> sp.csr_matrix:
    m = len(d.products)
    total = sp.csr_matrix((m, m))
    for rule in rules:  # a handful of merchant rules, each one sparse outer product
        src = _matches(d, rule.when_bought).astype(float)
        dst = _matches(d, rule.recommend).astype(float)
        outer = sp.csr_matrix(src[:, None]) @ sp.csr_matrix(dst[None, :])
        total = total + rule.weight * outer
    total = total.tocsr()
    total.setdiag(0.0)
    total.eliminate_zeros()
    return total


def _recent(x: Interactions, shape: tuple[int, int], days: float) -> sp.csr_matrix:
    keep = x.age_days <= days
    ones = np.ones(int(keep.sum()), dtype=bool)
    return sp.csr_matrix((ones, (x.customer[keep], x.product[keep])), shape=shape, dtype=bool)


def _replenishable(d: RecoData, p: Params) -> npt.NDArray[np.bool_]:
    """Products a good share of whose buyers buy again on another day."""
    x = d.purchases
    day = np.floor(x.age_days).astype(np.int64)
    key = np.unique(np.column_stack([x.customer, x.product, day]), axis=0)
    pair, days = np.unique(key[:, :2], axis=0, return_counts=True)
    m = len(d.products)
    buyers = np.bincount(pair[:, 1], minlength=m)
    again = np.bincount(pair[:, 1], weights=(days > 1).astype(float), minlength=m)
    share = np.divide(again, buyers, out=np.zeros(m), where=buyers > 0)
    out: npt.NDArray[np.bool_] = (buyers >= p.replenish_min_buyers) & (share >= p.replenish_share)
    return out


def _popularity(d: RecoData, p: Params) -> Floats:
    """Rows: overall, then one per market. Recent purchases, scaled to [0, 1] per row."""
    x = d.purchases
    recent = x.age_days <= p.popular_days
    if not recent.any():  # a quiet shop: all-time popularity
        recent = np.ones_like(recent)
    m = len(d.products)
    market = d.country[x.customer[recent]] + 1  # 0 = unknown market
    counts = sp.csr_matrix(
        (np.ones(int(recent.sum())), (market, x.product[recent])), shape=(d.markets + 1, m)
    ).toarray()
    overall = counts.sum(axis=0, keepdims=True)
    # Markets with few purchases borrow from the overall ranking.
    table = counts + 0.1 * overall / max(d.markets, 1)
    table[0] = overall[0]
    top = table.max(axis=1, keepdims=True)
    # Row 0 is overall, a customer's market is row country + 1.
    out: Floats = np.divide(table, top, out=np.zeros_like(table), where=top > 0)
    return out


def _because_of(
    profile: sp.csr_matrix, sim: sp.csr_matrix, chosen: Ints, popular: npt.NDArray[np.bool_]
) -> Ints:
    """For each recommendation, the profile product that contributed most (-1 for popular)."""
    out = np.full(chosen.shape, -1, dtype=np.int64)
    # Row j of the transpose is column j of ``sim``: gathering rows of a CSR matrix is cheap,
    # slicing columns and converting them back for every top-N position was half this step.
    by_target = sim.T.tocsr()
    for k in range(chosen.shape[1]):  # top-N columns, each vectorised over the customers
        contrib = profile.multiply(by_target[chosen[:, k]]).tocsr()
        if contrib.nnz == 0:
            continue
        best, has = _row_argmax_positive(contrib)
        out[:, k] = np.where(has & ~popular[:, k], best, -1)
    return out


def _row_argmax_positive(m: sp.csr_matrix) -> tuple[Ints, npt.NDArray[np.bool_]]:
    """Per row, the column of its largest stored value (the lowest such column, on ties) and
    whether that value is above 0: scipy's ``argmax(axis=1)`` and ``max(axis=1) > 0`` in one
    vectorised pass (scipy's loop over rows was a sixth of the recommendations' time)."""
    m.sum_duplicates()  # sorted columns, as scipy's argmax makes them: ties go to the lowest
    n = m.shape[0]
    counts = np.diff(m.indptr)
    filled = counts > 0
    peak = np.zeros(n)
    if filled.any():
        peak[filled] = np.maximum.reduceat(m.data, m.indptr[:-1][filled])
    row_of = np.repeat(np.arange(n), counts)
    at_peak = np.flatnonzero(m.data == peak[row_of])
    rows, first = np.unique(row_of[at_peak], return_index=True)
    best = np.zeros(n, dtype=np.int64)
    best[rows] = m.indices[at_peak[first]]
    return best, peak > 0
