"""The ingestion pipeline on DuckDB and PostgreSQL: stored once, or quarantined with a reason."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from siyu.runtime import Runtime
from tests.collect.helpers import order, refund, track


def rows(rt: Runtime, sql: str) -> list[Any]:
    with rt.db.engine.connect() as conn:
        return list(conn.execute(sa.text(sql)))


def count(rt: Runtime, table: str) -> int:
    return int(rows(rt, f"SELECT count(*) FROM {table}")[0][0])


def reasons(rt: Runtime) -> dict[int, tuple[str, str]]:
    return {
        int(p): (code, reason)
        for p, code, reason in rows(rt, "SELECT position, reason_code, reason FROM quarantine")
    }


def test_events_stored_once_across_batches(rt: Runtime) -> None:
    pipeline = rt.pipeline()
    batch = [track(f"m{i}") for i in range(10)]
    first = pipeline.ingest(batch)
    again = pipeline.ingest([*batch, track("m10")])
    assert (first.stored, first.duplicates) == (10, 0)
    assert (again.stored, again.duplicates) == (1, 10)
    assert count(rt, "events") == 11


def test_duplicates_within_a_batch(rt: Runtime) -> None:
    report = rt.pipeline().ingest([track("same"), track("same"), track("other")])
    assert (report.read, report.stored, report.duplicates) == (3, 2, 1)


def test_message_id_missing_is_deterministic(rt: Runtime) -> None:
    message = track("x")
    del message["messageId"]
    pipeline = rt.pipeline()
    assert pipeline.ingest([message]).stored == 1
    assert pipeline.ingest([dict(message)]).duplicates == 1


def test_timestamps_normalised_to_utc_and_sent_at_corrects_skew(rt: Runtime) -> None:
    from datetime import datetime

    received = datetime(2025, 3, 1, 12, 0, 0)
    skewed = {
        **track("skew"),
        "timestamp": "2025-03-01T18:59:00+07:00",  # 11:59 UTC by the device clock
        "sentAt": "2025-03-01T19:00:00+07:00",  # device clock says sent 12:00 UTC ...
    }
    local = {**track("local"), "timestamp": "2025-03-01T10:00:00+07:00"}
    rt.pipeline().ingest([skewed, local], received_at=received)
    stamps = dict(rows(rt, "SELECT message_id, timestamp FROM events"))
    assert stamps["local"] == datetime(2025, 3, 1, 3, 0, 0)
    # ... and the server received it at 12:00, so the event happened one minute before.
    assert stamps["skew"] == datetime(2025, 3, 1, 11, 59, 0)


BAD_INPUT: list[tuple[Any, str, str]] = [
    ("{not json", "malformed_json", "not valid JSON"),
    ("[1, 2]", "invalid", "must be a JSON object"),
    ({"type": "track", "event": "X", "timestamp": "2025-01-01T00:00:00Z"}, "invalid", "userId"),
    ({"type": "shout", "userId": "u"}, "invalid", "type must be one of"),
    ({"userId": "u", "event": "X"}, "invalid", "type is required"),
    ({"type": "track", "userId": "u"}, "invalid", "event"),
    (
        {"type": "track", "userId": "u", "event": "X", "timestamp": "2025-01-01T10:00:00"},
        "invalid",
        "no time zone",
    ),
    (
        {"type": "track", "userId": "u", "event": "X", "timestamp": "yesterday"},
        "invalid",
        "timestamp",
    ),
    (
        {"type": "track", "userId": "u", "event": "X", "timestamp": "2999-01-01T00:00:00Z"},
        "future_timestamp",
        "in the future",
    ),
    (order("o-cur", total=5, currency="XYZ"), "invalid", "properties.currency"),
    (order("o-neg", lines=[("a", 1.0, -2)]), "invalid", "properties.products[0].quantity"),
    (order("o-negt", total=-5), "invalid", "properties.total"),
    ({"type": "alias", "previousId": "a"}, "invalid", "userId"),
    ({"type": "group", "userId": "u"}, "invalid", "groupId"),
    (
        {"type": "track", "userId": "u", "event": "Consent Updated", "properties": {}},
        "invalid",
        "properties.purpose",
    ),
]


def test_bad_input_is_quarantined_with_a_reason(rt: Runtime) -> None:
    payloads = [bad for bad, _, _ in BAD_INPUT]
    report = rt.pipeline().ingest([track("good-1"), *payloads, track("good-2")])
    assert report.read == len(payloads) + 2
    assert report.stored == 2
    assert report.quarantined == len(payloads)
    found = reasons(rt)
    for position, (_, code, fragment) in enumerate(BAD_INPUT, start=2):
        assert found[position][0] == code, (position, found[position])
        assert fragment in found[position][1], (position, found[position])


def test_oversize_event_is_quarantined(rt: Runtime) -> None:
    big = track("big", blob="x" * (rt.settings.max_event_bytes + 10))
    report = rt.pipeline().ingest([big])
    assert report.quarantined == 1
    assert reasons(rt)[1][0] == "too_large"


def test_orders_lines_and_products(rt: Runtime) -> None:
    msg = order("o1", lines=[("a", 10.0, 2), ("b", 5.5, 1)], shipping=4, tax=2)
    report = rt.pipeline().ingest([msg])
    assert report.orders == 1
    [(total, revenue, line_count, status)] = rows(
        rt, "SELECT total, revenue, line_count, status FROM orders"
    )
    assert (Decimal(revenue), Decimal(total)) == (Decimal("25.5"), Decimal("31.5"))
    assert (line_count, status) == (2, "completed")
    lines = rows(rt, "SELECT sum(price * quantity) FROM order_lines WHERE order_id = 'o1'")
    assert Decimal(lines[0][0]) == Decimal("25.5")
    assert count(rt, "products") == 2


def test_products_keep_the_latest_values_and_are_written_only_when_they_change(
    rt: Runtime,
) -> None:
    pipeline = rt.pipeline()

    def viewed(mid: str, ts: str, **props: Any) -> dict[str, Any]:
        return {**track(mid, product_id="p1", **props), "timestamp": ts}

    def stored() -> tuple[Any, ...]:
        [row] = rows(rt, "SELECT name, price, brand, first_seen_at, updated_at FROM products")
        return tuple(row)

    pipeline.ingest([viewed("v1", "2025-03-02T10:00:00Z", name="Mug", price=10, brand="Acme")])
    first = stored()
    assert (first[0], Decimal(first[1]), first[2]) == ("Mug", Decimal(10), "Acme")
    pipeline.ingest([viewed("v2", "2025-03-03T10:00:00Z", name="Mug", price=10)])
    assert stored() == first  # seen again, nothing changed: not written (updated_at kept)
    pipeline.ingest([viewed("v3", "2025-03-01T10:00:00Z", price=12)])
    name, price, brand, first_seen, updated = stored()
    assert (name, Decimal(price), brand) == ("Mug", Decimal(12), "Acme")  # empty values kept
    assert str(first_seen).startswith("2025-03-01 10:00")  # the earliest sighting
    assert updated > first[4]
    pipeline.ingest([viewed("v4", "2025-02-01T10:00:00Z", name="Mug", price=12)])
    assert str(stored()[3]).startswith("2025-02-01 10:00")  # only first seen earlier


def test_same_order_from_two_channels_is_one_order(rt: Runtime) -> None:
    pipeline = rt.pipeline()
    pipeline.ingest([order("o1", total=20, mid="webhook-1")])
    report = pipeline.ingest([order("o1", total=20, mid="import-row-7")])
    assert report.stored == 1
    assert report.quarantined == 0
    assert count(rt, "orders") == 1


def test_duplicated_order_id_with_different_total_is_quarantined(rt: Runtime) -> None:
    pipeline = rt.pipeline()
    report = pipeline.ingest([order("o1", total=20, mid="a"), order("o1", total=25, mid="b")])
    assert (report.stored, report.quarantined) == (1, 1)
    [(code, reason)] = [(c, r) for c, r in reasons(rt).values()]
    assert code == "order_conflict"
    assert "20" in reason
    assert "25" in reason


def test_refunds_adjust_orders(rt: Runtime) -> None:
    pipeline = rt.pipeline()
    pipeline.ingest([order("o1", total=100)])
    pipeline.ingest([refund("o1", 30, mid="r1")])
    assert rows(rt, "SELECT refunded, status FROM orders")[0] == (
        Decimal("30.0000"),
        "partially_refunded",
    )
    pipeline.ingest([refund("o1", None, mid="r2")])  # the rest
    refunded, status = rows(rt, "SELECT refunded, status FROM orders")[0]
    assert (Decimal(refunded), status) == (Decimal(100), "refunded")
    again = pipeline.ingest([refund("o1", 30, mid="r1")])
    assert again.duplicates == 1
    assert count(rt, "refunds") == 2


def test_refund_problems_are_quarantined(rt: Runtime) -> None:
    pipeline = rt.pipeline()
    pipeline.ingest([order("o1", total=10)])
    report = pipeline.ingest(
        [
            refund("missing", 5, mid="r1"),
            refund("o1", 50, mid="r2"),
            refund("o1", 5, mid="r3", currency="EUR"),
        ]
    )
    assert report.quarantined == 3
    assert report.stored == 0
    codes = sorted(code for code, _ in reasons(rt).values())
    assert codes == ["invalid", "refund_exceeds_order", "refund_unknown_order"]


def test_customers_from_identify_and_consents(rt: Runtime) -> None:
    identify = {
        "type": "identify",
        "userId": "u9",
        "timestamp": "2025-01-01T00:00:00Z",
        "messageId": "i1",
        "traits": {"email": "ann@example.de", "firstName": "Ann", "address": {"country": "de"}},
    }
    later = {
        **identify,
        "messageId": "i2",
        "timestamp": "2025-02-01T00:00:00Z",
        "traits": {"phone": "+4915112345678"},
    }
    consent = track(
        "c1",
        "Consent Updated",
        user="u9",
        purpose="marketing",
        channel="email",
        status="granted",
        evidence={"form": "checkout", "text": "Send me offers"},
    )
    rt.pipeline().ingest([later, identify, consent])
    [(email, phone, first, country)] = rows(
        rt, "SELECT email, phone, first_name, country FROM customers WHERE user_id = 'u9'"
    )
    assert (email, phone, first, country) == ("ann@example.de", "+4915112345678", "Ann", "DE")
    [(purpose, channel, status)] = rows(rt, "SELECT purpose, channel, status FROM consents")
    assert (purpose, channel, status) == ("marketing", "email", "granted")


def test_base_currency_value_uses_rate_of_day_or_earlier(rt: Runtime) -> None:
    from siyu.money.fx import parse_rates_csv, store_rates

    ws = rt.workspace()
    table, errors = parse_rates_csv("date,currency,rate\n2025-02-27,EUR,1.10\n", "USD")
    assert not errors
    with rt.db.engine.begin() as conn:
        store_rates(conn, ws.workspace_id, table, "test")
    rt.pipeline().ingest(
        [
            order("eur", total=10, currency="EUR"),  # 2025-03-01: uses 02-27's rate
            order("idr", total=150000, currency="IDR"),  # no rate at all
        ]
    )
    got = {
        oid: (rate, base)
        for oid, rate, base in rows(rt, "SELECT order_id, fx_rate, total_base FROM orders")
    }
    assert Decimal(got["eur"][1]) == Decimal("11.0000")
    assert got["idr"] == (None, None)  # never 0
    problems = rt.status(ws)["problems"]
    assert any(p["code"] == "missing_fx_rate" and "IDR" in p["message"] for p in problems)


def test_quarantine_replay_stores_exactly_once(rt: Runtime) -> None:
    from siyu.collect.replay import replay

    pipeline = rt.pipeline()
    pipeline.ingest([refund("o1", 5, mid="r1")])
    pipeline.ingest([order("o1", total=10)])
    first = replay(pipeline)
    assert (first.replayed, first.stored) == (1, 1)
    second = replay(pipeline)
    assert second.replayed == 0
    assert count(rt, "refunds") == 1


@pytest.mark.parametrize("chunk", [1, 7, 500])
def test_chunking_changes_nothing(rt: Runtime, chunk: int) -> None:
    from siyu.collect import Pipeline
    from siyu.config import Settings

    settings = Settings(**{**rt.settings.model_dump(), "ingest_chunk_size": max(chunk, 100)})
    pipeline = Pipeline(rt.db, rt.workspace(), settings)
    batch = [track(f"m{i % 150}") for i in range(300)] + [order("o1", total=1)]
    report = pipeline.ingest(batch)
    assert (report.stored, report.duplicates) == (151, 150)


def test_chunks_prepared_ahead_are_written_in_order(rt: Runtime) -> None:
    """Several chunks (the next one is validated in a worker while the current one is written):
    duplicates across chunk boundaries, a refund two chunks after its order and a bad record
    all end as a plain chunk-by-chunk loop would leave them."""
    from siyu.collect import Pipeline
    from siyu.config import Settings

    settings = Settings(**{**rt.settings.model_dump(), "ingest_chunk_size": 100})
    pipeline = Pipeline(rt.db, rt.workspace(), settings)
    batch: list[dict[str, Any]] = [order("o1", total=10)]
    batch += [track(f"m{i % 120}") for i in range(1, 250)]  # m1..m119 again from 121 on
    batch += [{**track("bad"), "timestamp": "yesterday"}]  # position 251
    batch += [refund("o1", 4, mid="r1")] + [track(f"n{i}") for i in range(98)]
    seen: list[int] = []
    report = pipeline.ingest(batch, progress=seen.append)
    assert seen == [100, 100, 100, 50]
    assert (report.read, report.stored, report.quarantined) == (350, 1 + 120 + 1 + 98, 1)
    assert report.duplicates == 249 - 120
    assert (report.orders, report.refunds) == (1, 1)
    assert set(reasons(rt)) == {251}
    assert count(rt, "events") == report.stored
    assert rows(rt, "SELECT refunded, status FROM orders") == [
        (Decimal("4.0000"), "partially_refunded")
    ]


def test_parts_of_several_sources_end_as_one_ingest_per_part(rt: Runtime) -> None:
    """One run over several sources' parts (the next chunk prepared while the current one is
    written, across parts): each part's events carry its source, its bad record its own
    position and origin, a duplicate across parts counts once, and no chunk mixes parts."""
    from siyu.collect import Pipeline
    from siyu.collect.pipeline import Part
    from siyu.collect.sources import ensure_source
    from siyu.config import Settings

    ws = rt.workspace().workspace_id
    with rt.db.engine.begin() as conn:
        shop = ensure_source(conn, ws, "shop", "shopify").source_id
        chat = ensure_source(conn, ws, "chat", "whatsapp").source_id
    settings = Settings(**{**rt.settings.model_dump(), "ingest_chunk_size": 100})
    pipeline = Pipeline(rt.db, rt.workspace(), settings)
    shop_records = [order("o1", total=10)] + [track(f"s{i}") for i in range(149)]
    chat_records: list[dict[str, Any]] = [track(f"c{i}") for i in range(60)]
    chat_records[41] = {**track("bad"), "timestamp": "yesterday"}  # position 42 of its part
    chat_records.append(track("s5"))  # stored by the first part already
    seen: list[int] = []
    report = pipeline.ingest_parts(
        iter([Part(shop_records, shop, "file:shop"), Part(chat_records, chat, "file:chat")]),
        progress=seen.append,
    )
    assert seen == [100, 50, 61]
    assert (report.read, report.stored, report.duplicates, report.quarantined) == (
        211,
        150 + 59,
        1,
        1,
    )
    assert sorted(rows(rt, "SELECT source_id, count(*) FROM events GROUP BY source_id")) == sorted(
        [(shop, 150), (chat, 59)]
    )
    assert rows(rt, "SELECT source_id, origin, position FROM quarantine") == [
        (chat, "file:chat", 42)
    ]
    assert count(rt, "orders") == 1


def test_base_rate_is_the_nearest_earlier_day_per_currency(rt: Runtime) -> None:
    from siyu.money.fx import fill_base_values, parse_rates_csv, store_rates

    ws = rt.workspace()
    csv = (
        "date,currency,rate\n2025-02-20,EUR,1.00\n2025-02-27,EUR,1.10\n2025-03-05,EUR,1.50\n"
        "2025-02-28,GBP,1.25\n2025-03-02,GBP,2.00\n"
    )
    table, errors = parse_rates_csv(csv, "USD")
    assert not errors
    with rt.db.engine.begin() as conn:
        store_rates(conn, ws.workspace_id, table, "test")
    rt.pipeline().ingest(  # orders of 2025-03-01
        [
            order("eur", total=10, currency="EUR"),
            order("gbp", total=10, currency="GBP"),
            order("usd", total=10, currency="USD"),
        ]
    )
    got = {
        oid: (Decimal(rate), Decimal(base))
        for oid, rate, base in rows(rt, "SELECT order_id, fx_rate, total_base FROM orders")
    }
    assert got == {
        "eur": (Decimal("1.1"), Decimal("11")),
        "gbp": (Decimal("1.25"), Decimal("12.5")),
        "usd": (Decimal(1), Decimal(10)),
    }
    with rt.db.engine.begin() as conn:  # nothing left to fill: a second pass changes nothing
        assert fill_base_values(conn, ws.workspace_id) == 0
        assert fill_base_values(conn, ws.workspace_id, ["eur", "gbp"]) == 0


def test_a_chunk_meeting_stored_events_is_written_once(rt: Runtime) -> None:
    """A chunk's events first go in with a plain insert (DuckDB; PostgreSQL copies under a
    savepoint); a stored messageId voids that attempt and the chunk is written again with the
    conflict check. Its order, customers and new events are stored once; the chunk after it
    is checked too, and the one after a chunk without stored duplicates is plain again."""
    from siyu.collect import Pipeline
    from siyu.config import Settings

    settings = Settings(**{**rt.settings.model_dump(), "ingest_chunk_size": 100})
    pipeline = Pipeline(rt.db, rt.workspace(), settings)
    first = pipeline.ingest([track(f"a{i}", user=f"u{i}") for i in range(100)])
    resent: list[dict[str, Any]] = [track(f"a{i}", user=f"u{i}") for i in range(40)]
    resent += [order("o1", total=5, user="buyer")]
    resent += [track(f"b{i}", user=f"v{i}") for i in range(59)]
    resent += [track(f"c{i}", user=f"w{i}") for i in range(100)]  # the next chunks: all new
    resent += [track(f"d{i}", user=f"x{i}") for i in range(100)]
    expectations: list[bool] = []
    write = pipeline._write_chunk

    def spy(*args: Any, expect_new: bool) -> Any:
        expectations.append(expect_new)
        return write(*args, expect_new=expect_new)

    pipeline._write_chunk = spy  # type: ignore[method-assign,assignment]
    report = pipeline.ingest(resent)
    assert first.stored == 100
    assert (report.read, report.stored, report.duplicates) == (300, 260, 40)
    assert report.orders == 1
    if rt.db.engine.dialect.name == "duckdb":
        # void plain attempt, its checked retry, checked (after stored duplicates), plain again
        assert expectations == [True, False, False, True]
    assert count(rt, "events") == 360
    assert count(rt, "orders") == 1
    assert count(rt, "order_lines") == int(rows(rt, "SELECT line_count FROM orders")[0][0])
    assert count(rt, "customers") == 100 + 59 + 100 + 100 + 1  # and o1's buyer


def test_a_timestamp_past_year_9999_in_utc_is_quarantined(rt: Runtime) -> None:
    late = {**track("late"), "timestamp": "9999-12-31T23:00:00-05:00"}
    early = {**track("early"), "timestamp": "0001-01-01T01:00:00+05:00"}
    report = rt.pipeline().ingest([late, early, track("fine")])
    assert (report.stored, report.quarantined) == (1, 2)
    found = reasons(rt)
    assert found[1][0] == found[2][0] == "invalid"
    assert "out of range" in found[1][1]


def test_customer_keys_of_the_pipeline_equal_customer_key() -> None:
    """keep_new_calls hashes the workspace prefix once; the keys must stay those of
    rows.customer_key, which the importers and One-ID use."""
    from datetime import datetime

    from siyu.collect import rows
    from siyu.collect.validate import ValidCall

    senders = [("u1", None), (None, "a1"), ("u2", "a2"), ("", "a3"), ("ü ß", None)]
    senders += [(None, None)]
    valid = [
        ValidCall(i, {"user_id": u, "anonymous_id": a}, f"m{i}", datetime(2025, 1, 1), {})
        for i, (u, a) in enumerate(senders)
    ]
    calls: list[ValidCall] = []
    assert rows.keep_new_calls("ws_x", valid, set(), {}, calls) == (0, 0)
    assert [v.customer_id for v in calls] == [rows.customer_key("ws_x", u, a) for u, a in senders]
    assert calls[-1].customer_id is None


def test_a_chunk_without_identify_keeps_stored_traits_and_widens_seen_times(rt: Runtime) -> None:
    """A chunk of track calls only: the customers upsert leaves the trait columns out (every
    incoming one is NULL), so stored traits stay and only the seen times move."""
    identify = {
        "type": "identify",
        "userId": "u9",
        "timestamp": "2025-02-01T00:00:00Z",
        "messageId": "i1",
        "traits": {"email": "ann@example.de", "lastName": "Lee", "birthday": "1990-05-04"},
    }
    pipeline = rt.pipeline()
    pipeline.ingest([identify])
    before = rows(rt, "SELECT traits FROM customers WHERE user_id = 'u9'")
    early = {**track("t1", user="u9"), "timestamp": "2025-01-01T00:00:00Z"}
    late = {**track("t2", user="u9"), "timestamp": "2025-03-01T00:00:00Z"}
    pipeline.ingest([early, late, track("t3", user="new")])
    [(email, last, birthday, first_seen, last_seen, traits)] = rows(
        rt,
        "SELECT email, last_name, birthday, first_seen_at, last_seen_at, traits FROM customers "
        "WHERE user_id = 'u9'",
    )
    assert (email, last, str(birthday)) == ("ann@example.de", "Lee", "1990-05-04")
    assert (str(first_seen)[:10], str(last_seen)[:10]) == ("2025-01-01", "2025-03-01")
    assert [(traits,)] == [tuple(r) for r in before]
    assert count(rt, "customers") == 2


def test_events_about_a_customer_do_not_move_her_seen_times(rt: Runtime) -> None:
    """A points expiry or a message sent to her is stored as her event but is not her act: a
    win-back segment on last_seen_at must not lose her when the win-back message goes out.
    A customer with only such events still gets a row (every event's customer has one)."""

    def at(record: dict[str, Any], day: str) -> dict[str, Any]:
        return {**record, "timestamp": f"{day}T00:00:00Z"}

    pipeline = rt.pipeline()
    pipeline.ingest([at(track("own1", user="u5"), "2025-01-10")])
    pipeline.ingest(
        [
            at(track("sys1", "Points Expired", user="u5", points=10), "2025-06-01"),
            at(track("sys2", "Message Sent", user="u6", channel="email"), "2025-05-01"),
            at(track("own2", user="u7"), "2025-04-01"),
            at(track("sys3", "Points Earned", user="u7", points=5), "2025-07-01"),
        ]
    )
    pipeline.ingest([at(track("sys4", "Member Tier Changed", user="u7"), "2025-08-01")])
    seen = {
        r[0]: (str(r[1])[:10], str(r[2])[:10])
        for r in rows(rt, "SELECT user_id, first_seen_at, last_seen_at FROM customers")
    }
    assert seen == {
        "u5": ("2025-01-10", "2025-01-10"),
        "u6": ("2025-05-01", "2025-05-01"),
        "u7": ("2025-04-01", "2025-04-01"),
    }
    assert count(rt, "events") == 6


def _identify(message_id: str, at: str, **traits: str) -> dict[str, Any]:
    return {
        "type": "identify",
        "userId": "u7",
        "timestamp": at,
        "messageId": message_id,
        "traits": traits,
    }


def test_customer_traits_follow_the_time_they_were_said_not_arrival(rt: Runtime) -> None:
    """Reviewer F1: an import of older data after live tracking must not regress traits.
    An older identify only fills what the row lacks; a newer one wins; within a chunk too."""
    pipeline = rt.pipeline()
    pipeline.ingest([_identify("new", "2025-03-01T00:00:00Z", email="now@example.com")])
    pipeline.ingest(
        [  # older, arriving later: its email loses, its first name is new information
            _identify("old2", "2025-01-02T00:00:00Z", email="old2@example.com", lastName="Li"),
            _identify("old1", "2025-01-01T00:00:00Z", email="old1@example.com", firstName="Ann"),
        ]
    )
    sql = (
        "SELECT email, first_name, last_name, traits, traits_at FROM customers WHERE user_id = 'u7'"
    )
    [(email, first, last, traits, said)] = rows(rt, sql)
    doc = traits if isinstance(traits, dict) else json.loads(traits)
    assert (email, first, last) == ("now@example.com", "Ann", "Li")
    assert doc == {"email": "now@example.com", "firstName": "Ann", "lastName": "Li"}
    assert str(said)[:10] == "2025-03-01"
    pipeline.ingest([_identify("newer", "2025-04-01T00:00:00Z", email="later@example.com")])
    [(email, first, _, traits, said)] = rows(rt, sql)
    doc = traits if isinstance(traits, dict) else json.loads(traits)
    assert (email, first, doc["email"], str(said)[:10]) == (
        "later@example.com",
        "Ann",
        "later@example.com",
        "2025-04-01",
    )
    # A track call afterwards changes neither the traits nor their time.
    pipeline.ingest([{**track("t9", user="u7"), "timestamp": "2025-05-01T00:00:00Z"}])
    assert rows(rt, sql)[0][0] == "later@example.com"
    assert str(rows(rt, sql)[0][4])[:10] == "2025-04-01"


def test_customer_rows_stored_before_traits_times_take_the_next_identify(rt: Runtime) -> None:
    """A row without ``traits_at`` (stored before migration 0018) counts as the oldest."""
    pipeline = rt.pipeline()
    pipeline.ingest([_identify("a", "2025-03-01T00:00:00Z", email="a@example.com")])
    with rt.db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE customers SET traits_at = NULL"))
    pipeline.ingest([_identify("b", "2024-01-01T00:00:00Z", email="b@example.com")])
    assert rows(rt, "SELECT email FROM customers WHERE user_id = 'u7'") == [("b@example.com",)]
