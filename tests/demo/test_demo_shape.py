"""Every demo message is a valid Segment message, deterministic and within its history."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from typing import Any

import orjson
import pytest

from siyu.demo import MARKETS, SOURCES, generate
from siyu.errors import InvalidInput

from .conftest import AS_OF, CUSTOMERS, SEED, market_of

ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
TRACK_EVENTS = {
    "Product Viewed", "Product Added", "Checkout Started", "Coupon Applied", "Order Completed",
    "Order Refunded", "Email Opened", "Email Clicked", "Message Received", "Message Sent",
    "Community Joined", "Community Message Posted", "Referral Link Shared", "Consent Updated",
}  # fmt: skip


def _dump(customers: int, seed: int, chunk: int) -> bytes:
    run = generate(customers, seed, AS_OF, chunk_customers=chunk)
    return b"\n".join(orjson.dumps((c.source, c.records)) for c in run)


def _by_id(customers: int, chunk: int) -> dict[str, bytes]:
    return {
        r["messageId"]: orjson.dumps(r)
        for c in generate(customers, SEED, AS_OF, chunk_customers=chunk)
        for r in c.records
    }


def test_same_arguments_give_identical_bytes() -> None:
    assert _dump(1_200, 3, 400) == _dump(1_200, 3, 400)


def test_seed_changes_the_output() -> None:
    assert _dump(600, 3, 600) != _dump(600, 4, 600)


def test_people_do_not_depend_on_chunk_size_or_run_size() -> None:
    whole = _by_id(2_000, 2_000)
    assert whole == _by_id(2_000, 500)
    assert whole == _by_id(2_000, 700)  # chunks that cut through blocks
    prefix = _by_id(1_000, 1_000)
    assert all(whole[key] == value for key, value in prefix.items())


def test_chunks_are_per_source_and_time_ordered(
    chunks: list[tuple[str, list[dict[str, Any]]]],
) -> None:
    names = [name for name, _ in SOURCES]
    for source, recs in chunks:
        assert source in names
        assert recs
        stamps = [r["timestamp"] for r in recs]
        assert stamps == sorted(stamps)
    assert {source for source, _ in chunks} == set(names)


def test_every_record_is_a_segment_message(records: list[dict[str, Any]]) -> None:
    end = dt.datetime.combine(AS_OF, dt.time(), dt.UTC)
    ids: set[str] = set()
    for r in records:
        assert r["type"] in {"identify", "track", "page", "alias"}
        assert r["messageId"] not in ids
        ids.add(r["messageId"])
        assert ISO_Z.match(r["timestamp"]), r["timestamp"]
        when = dt.datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00"))
        assert when < end
        assert r.get("userId") or r.get("anonymousId")
        assert {"locale", "timezone"} <= set(r["context"])
        if r["type"] == "track":
            assert r["event"] in TRACK_EVENTS
            assert isinstance(r["properties"], dict)
        elif r["type"] == "identify":
            assert r["traits"]["country"] in {m.code for m in MARKETS}
        elif r["type"] == "alias":
            assert r["previousId"] != r["userId"]
        else:
            assert r["name"]
            assert r["properties"]["url"].endswith(r["properties"]["path"])
    orjson.dumps(records)  # JSON-serialisable, no NaN or numpy scalars


def test_events_per_customer_and_recent_activity(records: list[dict[str, Any]]) -> None:
    assert 25 <= len(records) / CUSTOMERS <= 40
    recent = (AS_OF - dt.timedelta(days=30)).isoformat()
    assert sum(r["timestamp"] >= recent for r in records) > 0.05 * len(records)
    oldest = min(r["timestamp"] for r in records)
    assert oldest >= (AS_OF - dt.timedelta(days=731)).isoformat()


def test_markets_and_currencies(records: list[dict[str, Any]]) -> None:
    assert [m.code for m in MARKETS] == [
        "US", "GB", "DE", "FR", "ES", "ID", "TH", "PH", "MY", "BR", "MX", "SA"
    ]  # fmt: skip
    assert {m.code: m.currency for m in MARKETS}["SA"] == "SAR"
    assert {m.region for m in MARKETS} == {"EU", "UK", "US", "SEA", "LATAM", "MENA"}
    seen: Counter[str] = Counter()
    for r in records:
        market = market_of(r)
        seen[market.code] += 1
        assert r["context"]["timezone"] == market.timezone
        currency = r.get("properties", {}).get("currency") or r.get("traits", {}).get("currency")
        if currency is not None:
            assert currency == market.currency
        if r["type"] == "identify":
            assert r["traits"]["country"] == market.code
    assert set(seen) == {m.code for m in MARKETS}


def test_sources_are_the_seven_channels() -> None:
    assert SOURCES == (
        ("shopify", "shopify"), ("amazon", "amazon"), ("tiktok_shop", "tiktok_shop"),
        ("whatsapp", "whatsapp"), ("instagram", "instagram"), ("email", "email"), ("web", "web"),
    )  # fmt: skip


@pytest.mark.parametrize(("customers", "seed", "chunk"), [(-1, 7, 10), (10, -1, 10), (10, 7, 0)])
def test_bad_arguments_are_refused(customers: int, seed: int, chunk: int) -> None:
    with pytest.raises(InvalidInput):
        next(generate(customers, seed, AS_OF, chunk_customers=chunk))


def test_no_customers_no_chunks() -> None:
    assert list(generate(0, SEED, AS_OF)) == []


def test_default_as_of_is_today_utc() -> None:
    today = dt.datetime.now(dt.UTC).date().isoformat()
    stamps = [r["timestamp"] for c in generate(50, SEED) for r in c.records]
    assert stamps
    assert max(stamps) < today
