"""Orders add up, ids look like their stores', seasons and co-purchases are visible."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from siyu.demo.catalogue import CATEGORIES, catalogue

from .conftest import market_of, person_of

ORDER_ID = {
    "shopify": re.compile(r"^SHP-\d+$"),
    "amazon": re.compile(r"^\d{3}-\d{7}-\d{7}$"),
    "tiktok_shop": re.compile(r"^\d{18}$"),
}


def _orders(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("event") == "Order Completed"]


def test_order_arithmetic(records: list[dict[str, Any]]) -> None:
    orders = _orders(records)
    assert len(orders) > 1_000
    for r in orders:
        p = r["properties"]
        digits = 0 if p["currency"] == "IDR" else 2
        lines = sum(line["price"] * line["quantity"] for line in p["products"])
        assert round(lines - p["discount"], digits) == p["revenue"]
        assert round(p["revenue"] + p["shipping"] + p["tax"], digits) == p["total"]
        assert p["total"] > 0
        assert min(p["discount"], p["shipping"], p["tax"]) >= 0
        for value in (p["total"], p["revenue"], p["shipping"], p["tax"], p["discount"]):
            assert round(value, digits) == value
            if digits == 0:
                assert isinstance(value, int)
        assert ("coupon" in p) == (p["discount"] > 0)
        assert p["products"]
        assert all(line["quantity"] >= 1 for line in p["products"])
        assert len({line["product_id"] for line in p["products"]}) == len(p["products"])


def test_order_ids_unique_and_store_shaped(records: list[dict[str, Any]]) -> None:
    orders = _orders(records)
    ids = [r["properties"]["order_id"] for r in orders]
    assert len(ids) == len(set(ids))
    by_affiliation = {"Shopify": "shopify", "Amazon": "amazon", "TikTok Shop": "tiktok_shop"}
    for r in orders:
        source = by_affiliation[r["properties"]["affiliation"]]
        assert ORDER_ID[source].match(r["properties"]["order_id"])


def test_refunds_are_few_positive_and_refer_to_orders(records: list[dict[str, Any]]) -> None:
    totals = {r["properties"]["order_id"]: r for r in _orders(records)}
    refunds = [r for r in records if r.get("event") == "Order Refunded"]
    assert 0.02 < len(refunds) / len(totals) < 0.06
    partial = 0
    for r in refunds:
        order = totals[r["properties"]["order_id"]]
        assert person_of(order) == person_of(r)
        assert order["timestamp"] < r["timestamp"]
        assert 0 < r["properties"]["total"] <= order["properties"]["total"]
        assert r["properties"]["currency"] == order["properties"]["currency"]
        partial += r["properties"]["total"] < order["properties"]["total"]
    assert 0 < partial < len(refunds)


def test_checkout_and_coupon_events_match_orders(records: list[dict[str, Any]]) -> None:
    orders = {r["properties"]["order_id"]: r["properties"] for r in _orders(records)}
    checkouts = [r for r in records if r.get("event") == "Checkout Started"]
    completed = [r for r in checkouts if r["properties"]["order_id"] in orders]
    abandoned = [r for r in checkouts if r["properties"]["order_id"].startswith("CHK-")]
    assert completed
    assert abandoned
    assert len(completed) + len(abandoned) == len(checkouts)
    for r in completed:
        assert r["properties"]["revenue"] == orders[r["properties"]["order_id"]]["revenue"]
    for r in (r for r in records if r.get("event") == "Coupon Applied"):
        order = orders[r["properties"]["order_id"]]
        assert r["properties"]["coupon_name"] == order["coupon"]
        assert r["properties"]["discount"] == order["discount"]


def test_us_november_beats_the_average_month(records: list[dict[str, Any]]) -> None:
    months: Counter[str] = Counter()
    for r in _orders(records):
        if market_of(r).code == "US":
            months[r["timestamp"][:7]] += 1
    november = [n for month, n in months.items() if month.endswith("-11")]
    assert november
    assert sum(november) / len(november) > sum(months.values()) / len(months)


def test_double_eleven_in_south_east_asia(records: list[dict[str, Any]]) -> None:
    days: Counter[str] = Counter()
    for r in _orders(records):
        if market_of(r).code in {"ID", "TH", "PH", "MY"}:
            days[r["timestamp"][5:10]] += 1
    assert days["11-11"] > 2.5 * sum(days.values()) / 365


def test_catalogue_is_stable_and_complete() -> None:
    cat = catalogue()
    assert len(cat) == 300
    assert len(set(cat.product_id)) == 300
    assert len(set(cat.sku)) == 300
    assert {CATEGORIES[c] for c in cat.category.tolist()} == {
        "baby", "beauty", "3C", "home", "apparel", "outdoor"
    }  # fmt: skip
    mat = cat.name.index("Siyu Trail Yoga Mat (Forest)")
    assert cat.name[int(cat.complement[mat])].startswith("Siyu Active Yoga Leggings")
    assert (cat.product_id[0], cat.sku[0]) == ("P10001", "BBY-BOT-01")


def test_complements_are_bought_together(records: list[dict[str, Any]]) -> None:
    cat = catalogue()
    mats = {pid for pid, name in zip(cat.product_id, cat.name, strict=True) if "Yoga Mat" in name}
    wear = {pid for pid, name in zip(cat.product_id, cat.name, strict=True)
            if "Yoga Leggings" in name}  # fmt: skip
    with_mat = with_both = with_wear = 0
    orders = _orders(records)
    for r in orders:
        ids = {line["product_id"] for line in r["properties"]["products"]}
        with_wear += bool(ids & wear)
        if ids & mats:
            with_mat += 1
            with_both += bool(ids & wear)
    assert with_mat > 20
    assert with_both / with_mat > 3 * with_wear / len(orders)


def test_the_days_before_eid_are_busy(records: list[dict[str, Any]]) -> None:
    """Eid al-Fitr 2025 fell on 30 March: ID, MY and SA shop hard in the ten days before."""
    before_eid = february = 0
    for r in _orders(records):
        if market_of(r).code in {"ID", "MY", "SA"}:
            day = r["timestamp"][:10]
            before_eid += "2025-03-20" <= day <= "2025-03-29"
            february += "2025-02-01" <= day <= "2025-02-10"
    assert before_eid > 1.5 * february
