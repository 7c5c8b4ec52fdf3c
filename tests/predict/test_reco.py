"""Recommendations: similarity, skipping what was just bought, replenishment, cold start by
market, complement rules, ranking metrics, and beating popularity on the demo brand."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import sqlalchemy as sa

from siyu.errors import InvalidInput, NotFound
from siyu.predict.reco import (
    REASONS,
    ItemModel,
    Params,
    Rule,
    add_rule,
    evaluate,
    list_rules,
    recommend_all,
    remove_rule,
    similar_products,
    stored_recommendations,
)
from siyu.predict.reco.evaluate import ranking_metrics
from siyu.predict.reco.model import Interactions, RecoData
from siyu.runtime import Runtime
from tests.predict.conftest import DEMO_AS_OF

# Products: 0 yoga mat, 1 yoga block, 2 leggings (apparel), 3 coffee (replenishable), 4 lamp.
PRODUCTS = np.array(["mat", "block", "leggings", "coffee", "lamp"])
CATEGORIES = np.array(["yoga", "yoga", "apparel", "grocery", "home"])


def _data(purchases: list[tuple[int, int, float]], country: list[int]) -> RecoData:
    c, p, age = (np.array(v) for v in zip(*purchases, strict=True))
    empty = Interactions(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    return RecoData(
        customers=np.array([f"c{i}" for i in range(len(country))]),
        products=PRODUCTS,
        skus=np.char.upper(PRODUCTS),
        categories=CATEGORIES,
        names=np.array(["Yoga Mat (Purple)", "Cork Block", "Leggings", "Coffee", "Lamp"]),
        country=np.array(country, dtype=np.int64),
        markets=2,
        purchases=Interactions(c.astype(np.int64), p.astype(np.int64), age.astype(float)),
        views=empty,
    )


def _shop() -> RecoData:
    rows: list[tuple[int, int, float]] = []
    for i in range(6):  # six customers bought the mat and the block together
        rows += [(i, 0, 100.0), (i, 1, 100.0)]
    for i in range(6, 12):  # six bought coffee on two different days (replenishable)
        rows += [(i, 3, 10.0), (i, 3, 40.0)]
    rows += [(12, 0, 5.0)]  # customer 12 just bought a mat
    rows += [(13, 3, 5.0)]  # customer 13 just bought coffee
    rows += [(i, 4, 20.0) for i in range(16, 19)]  # market 1 buys lamps
    # 14: new in market 1, 15: new, market unknown
    country = [0] * 14 + [1, -1] + [1] * 3
    return _data(rows, country)


def test_co_purchase_similarity_and_skipping_what_was_just_bought() -> None:
    model = ItemModel(_shop(), Params(category_weight=0.0))
    index, value = model.similar(0, top=2)
    assert index.tolist() == [1]  # nothing else was ever bought by a mat buyer
    assert 0.5 < value[0] < 1.0  # customer 12 bought a mat alone
    recs = model.recommend(np.array([12, 13]), top=3)
    # Customer 12: the block (bought with mats), never the mat she just bought.
    assert recs.product[0, 0] == 1
    assert REASONS[recs.reason[0, 0]] == "co_purchase"
    assert model.data.products[recs.because_of[0, 0]] == "mat"
    assert 0 not in recs.product[0]
    # Coffee is bought again by its buyers: it stays recommendable after a purchase.
    assert model.replenishable.tolist() == [False, False, False, True, False]
    assert 3 in recs.product[1]


def test_new_customers_get_what_is_popular_in_their_market() -> None:
    model = ItemModel(_shop())
    recs = model.recommend(np.array([14, 15]), top=1)
    assert model.data.products[recs.product[:, 0]].tolist() == ["lamp", "coffee"]
    assert [REASONS[r] for r in recs.reason[:, 0]] == ["popular", "popular"]
    assert recs.because_of[:, 0].tolist() == [-1, -1]


def test_complement_rules_by_category() -> None:
    plain = ItemModel(_shop(), Params(category_weight=0.0))
    ruled = ItemModel(_shop(), Params(category_weight=0.0), [Rule("pilates ball", "apparel")])
    assert ruled.sim_rule.nnz == 0  # a rule matching nothing changes nothing
    ruled = ItemModel(_shop(), Params(category_weight=0.0), [Rule("yoga mat", "apparel", 2.0)])
    before = plain.recommend(np.array([12]), top=2)
    after = ruled.recommend(np.array([12]), top=2)
    assert 2 not in before.product[0]
    assert after.product[0, 0] == 2
    assert REASONS[after.reason[0, 0]] == "complement"


def test_ranking_metrics_by_hand() -> None:
    truth = sp.csr_matrix(np.array([[1, 0, 1, 0], [0, 0, 0, 1], [0, 1, 0, 0]]))
    ranked = np.array([[2, 1], [0, 1], [0, 1]])
    m = ranking_metrics(truth, np.array([0, 1, 2]), ranked)
    assert m.hit_rate == pytest.approx(2 / 3)
    # AP: customer 0 hit at rank 1 of 2 relevant -> 1/2; customer 1: 0; customer 2 hit at
    # rank 2 of 1 relevant -> 1/2.
    assert m.map == pytest.approx((0.5 + 0 + 0.5) / 3)


def test_beats_popularity_on_the_demo_and_stores_top_n(demo_rt: Runtime) -> None:
    ws = demo_rt.workspace()
    result = evaluate(demo_rt.db, ws, as_of=DEMO_AS_OF)
    assert result.model.customers > 100
    assert result.model.hit_rate > result.popularity.hit_rate
    assert result.model.map > 1.3 * result.popularity.map
    report = recommend_all(demo_rt.db, ws, as_of=DEMO_AS_OF, top=5)
    assert report.rows == 5 * report.customers
    with demo_rt.db.engine.connect() as conn:
        counts = conn.execute(
            sa.text(
                "SELECT count(DISTINCT customer_id), min(rank), max(rank), "
                "count(DISTINCT product_id) FROM customer_recommendations"
            )
        ).one()
        buyer = conn.execute(
            sa.text("SELECT customer_id FROM orders ORDER BY placed_at DESC, order_id LIMIT 1")
        ).scalar_one()
        top = stored_recommendations(conn, ws.workspace_id, buyer, top=5)
    assert tuple(counts[:3]) == (report.customers, 1, 5)
    assert counts[3] > 20  # personalised, not one list for everybody
    assert [r["rank"] for r in top] == [1, 2, 3, 4, 5]
    assert all(r["name"] for r in top)
    similar = similar_products(demo_rt.db, ws, top[0]["product_id"], top=3)
    assert len(similar) == 3
    assert similar[0]["similarity"] >= similar[-1]["similarity"]
    with pytest.raises(NotFound, match="No product 'nope'"):
        similar_products(demo_rt.db, ws, "nope")


def test_rules_are_stored_listed_and_removed(rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    with rt.db.engine.begin() as conn:
        rule_id = add_rule(conn, ws, "Yoga Mat", "apparel", 1.5)
        with pytest.raises(InvalidInput, match="needs both"):
            add_rule(conn, ws, " ", "apparel")
    with rt.db.engine.connect() as conn:
        rules = list_rules(conn, ws)
    assert [(r["when_bought"], r["recommend"], r["weight"]) for r in rules] == [
        ("Yoga Mat", "apparel", 1.5)
    ]
    with rt.db.engine.begin() as conn:
        remove_rule(conn, ws, rule_id)
        with pytest.raises(NotFound):
            remove_rule(conn, ws, rule_id)


def test_row_argmax_matches_scipy_on_ties_negatives_and_empty_rows() -> None:
    import numpy as np
    import scipy.sparse as sp

    from siyu.predict.reco.model import _row_argmax_positive

    rng = np.random.default_rng(5)
    dense = rng.choice([0.0, 0.0, 0.5, 1.0, -1.0, 2.0], size=(400, 30))
    dense[:20] = 0.0  # empty rows
    dense[20:40] = -np.abs(dense[20:40])  # only negatives (and implicit zeros)
    for matrix in (sp.csr_matrix(dense), sp.csr_matrix(dense)[:, ::-1].tocsr()):
        best, has = _row_argmax_positive(matrix)
        expected_has = np.asarray(matrix.max(axis=1).toarray()).ravel() > 0
        assert (has == expected_has).all()
        expected = np.asarray(matrix.argmax(axis=1)).ravel()
        assert (best[has] == expected[has]).all()
