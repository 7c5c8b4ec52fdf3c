"""The truth table matches the events exactly and contains every adversarial trap."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import phonenumbers
import pyarrow as pa

from siyu.demo import truth

from .conftest import AS_OF, SEED, market_of, person_of

SOURCE_USER_KIND = {
    "shopify": "shopify_customer_id",
    "amazon": "amazon_buyer",
    "tiktok_shop": "tiktok_user_id",
    "whatsapp": "whatsapp",
    "instagram": "instagram",
    "email": "email",
    "web": "shopify_customer_id",
}


def _account_kind(value: str) -> str:
    """Which account an id of another system is, by its shape (see siyu.demo.ids)."""
    if value.startswith("A"):
        return "amazon_buyer"
    return {17: "instagram", 19: "tiktok_user_id"}.get(len(value), "shopify_customer_id")


def _identifiers(source: str, r: dict[str, Any]) -> set[tuple[str, str, str, str]]:
    person = person_of(r)
    out = set()
    if "userId" in r:
        # The web store sends the store's customer id, or for a visitor without an account the
        # marketplace or Instagram account a registration or DM link identified.
        kind = _account_kind(r["userId"]) if source == "web" else SOURCE_USER_KIND[source]
        out.add((person, kind, r["userId"], source))
    if r["type"] == "alias":  # previousId: an Amazon, TikTok or Instagram account
        out.add((person, _account_kind(r["previousId"]), r["previousId"], source))
    if "anonymousId" in r:
        out.add((person, "anonymous_id", r["anonymousId"], source))
    for kind in ("email", "phone"):
        if kind in r.get("traits", {}):
            out.add((person, kind, r["traits"][kind], source))
    return out


def test_truth_is_exactly_the_identifiers_in_the_events(
    chunks: list[tuple[str, list[dict[str, Any]]]], truth_table: pa.Table
) -> None:
    seen: set[tuple[str, str, str, str]] = set()
    for source, recs in chunks:
        for r in recs:
            seen |= _identifiers(source, r)
    rows = truth_table.select(["person_id", "kind", "value", "source"]).to_pylist()
    table = {(row["person_id"], row["kind"], row["value"], row["source"]) for row in rows}
    assert len(table) == len(rows)
    assert seen == table


def test_truth_chunks_follow_generate_chunks() -> None:
    tables = list(truth(1_200, SEED, AS_OF, chunk_customers=500))
    assert len(tables) == 3
    again = pa.concat_tables(truth(1_200, SEED, AS_OF, chunk_customers=1_200))
    assert pa.concat_tables(tables).to_pylist() == again.to_pylist()


def test_truth_schema(truth_table: pa.Table) -> None:
    assert truth_table.schema.names == ["person_id", "kind", "value", "source", "adversarial"]
    assert all(t == pa.string() for t in truth_table.schema.types)
    kinds = set(truth_table.column("kind").to_pylist())
    assert kinds == {
        "email", "phone", "anonymous_id", "shopify_customer_id", "amazon_buyer",
        "tiktok_user_id", "whatsapp", "instagram",
    }  # fmt: skip


def _persons_by_value(rows: list[dict[str, Any]], flag: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        if row["adversarial"] == flag:
            out[row["value"]].add(row["person_id"])
    return out


def test_adversarial_cases_are_present(truth_table: pa.Table) -> None:
    rows = truth_table.to_pylist()
    flags = {row["adversarial"] for row in rows}
    assert {"family_phone", "store_tablet", "recycled_number", "typo_email"} <= flags
    family = _persons_by_value(rows, "family_phone")
    assert any(len(people) >= 2 for people in family.values())
    tablet = _persons_by_value(rows, "store_tablet")
    assert all(len(people) >= 3 for people in tablet.values())
    recycled = _persons_by_value(rows, "recycled_number")
    assert any(len(people) == 2 for people in recycled.values())
    emails: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        if row["kind"] == "email":
            emails[row["person_id"]].add(row["value"])
    typos = [row for row in rows if row["adversarial"] == "typo_email"]
    for row in typos:
        others = emails[row["person_id"]] - {row["value"]}
        assert others, "a typo'd e-mail sits next to the right one"
        assert all(row["value"] not in emails[p] for p in emails if p != row["person_id"])


def test_recycled_number_changes_hands_in_time(
    chunks: list[tuple[str, list[dict[str, Any]]]], truth_table: pa.Table
) -> None:
    rows = truth_table.to_pylist()
    numbers = {
        value for value, people in _persons_by_value(rows, "recycled_number").items()
        if len(people) == 2
    }  # fmt: skip
    spans: dict[tuple[str, str], list[str]] = defaultdict(list)
    for source, recs in chunks:
        if source != "whatsapp":
            continue
        for r in recs:
            if r["userId"] in numbers:
                spans[(r["userId"], person_of(r))].append(r["timestamp"])
    checked = 0
    for number in numbers:
        owners = sorted((min(ts), max(ts)) for (n, _), ts in spans.items() if n == number)
        if len(owners) == 2:
            assert owners[0][1] < owners[1][0]
            checked += 1
    assert checked


def test_web_logins_link_anonymous_ids_to_customers(
    chunks: list[tuple[str, list[dict[str, Any]]]],
) -> None:
    linked = anonymous_only = 0
    for source, recs in chunks:
        if source == "web":
            for r in recs:
                linked += "userId" in r
                anonymous_only += "userId" not in r
    assert linked > 0
    assert anonymous_only > 0


def test_phone_numbers_are_valid_for_their_market(
    chunks: list[tuple[str, list[dict[str, Any]]]],
) -> None:
    """Every format (E.164, bare digits as in wa_id, local) parses to a mobile of the market."""
    checked = 0
    for _, recs in chunks:
        for r in recs:
            phone = r.get("traits", {}).get("phone")
            if phone is None:
                continue
            market = market_of(r)
            parsed = phonenumbers.parse(
                phone if phone.startswith("+") or not phone.isdigit() else "+" + phone,
                market.phone_region,
            )
            assert phonenumbers.is_valid_number(parsed), (phone, market.code)
            assert phonenumbers.region_code_for_number(parsed) == market.phone_region
            checked += 1
    assert checked > 100
