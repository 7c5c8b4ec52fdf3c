"""Coupons on both engines: kinds of discount, validity, limits, redemption from events."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from siyu.errors import InvalidInput, NotFound
from siyu.loyalty.coupons import (
    CouponRefused,
    create_campaign,
    issue,
    parse_spec,
    quote,
    record_from_events,
    redeem_code,
)
from siyu.loyalty.tables import coupon_redemptions
from siyu.runtime import Runtime
from tests.loyalty.helpers import customer, events, order

NOW = datetime(2026, 5, 1, 12, 0)


def test_discount_kinds() -> None:
    fixed = parse_spec({"amounts": {"eur": 20, "USD": 22}})
    assert fixed.discount(Decimal(100), "EUR") == 20
    assert fixed.discount(Decimal(15), "USD") == 15  # never more than the order
    assert fixed.discount(Decimal(100), "GBP") == 0  # no silent conversion
    pct = parse_spec({"percent": 15, "max_discount": {"EUR": 10}})
    assert pct.discount(Decimal("40.00"), "USD") == Decimal("6.00")
    assert pct.discount(Decimal(200), "EUR") == 10
    tiers = parse_spec(
        {"tiers": [{"spend": 100, "save": 10}, {"spend": 200, "save": 30}], "currency": "CNY"}
    )
    assert [tiers.discount(Decimal(x), "CNY") for x in (99, 100, 199, 250)] == [0, 10, 10, 30]
    ship = parse_spec({"free_shipping": True})
    assert ship.discount(Decimal(50), "EUR", shipping=Decimal("4.90")) == Decimal("4.90")
    with pytest.raises(InvalidInput, match="exactly one of"):
        parse_spec({"percent": 10, "free_shipping": True})
    with pytest.raises(InvalidInput, match="not an ISO 4217"):
        parse_spec({"amount": 5, "currency": "EURO"})
    with pytest.raises(InvalidInput, match="ordered by increasing spend"):
        parse_spec(
            {"tiers": [{"spend": 200, "save": 30}, {"spend": 100, "save": 10}], "currency": "CNY"}
        )


def test_validity_owner_and_limits_at_checkout(rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    with rt.db.engine.begin() as conn:
        create_campaign(
            conn,
            ws,
            "SPRING",
            name="Spring",
            spec={"percent": 10},
            now=NOW,
            valid_days=30,
            per_customer_limit=1,
            global_limit=2,
        )
    a = issue(rt.db, ws, key="a", now=NOW, customer_id="ca", campaign_id="SPRING", max_uses=None)
    assert a.code.startswith("SPRING-")
    assert a.expires_at == NOW + timedelta(days=30)
    basket = {"subtotal": Decimal(80), "currency": "EUR"}
    with rt.db.engine.connect() as conn:
        assert quote(conn, ws, a.code.lower(), customer_id="ca", now=NOW, **basket).discount == 8
        with pytest.raises(CouponRefused, match="belongs to another customer"):
            quote(conn, ws, a.code, customer_id="cb", now=NOW, **basket)
        with pytest.raises(CouponRefused, match="expired"):
            quote(conn, ws, a.code, customer_id="ca", now=NOW + timedelta(days=31), **basket)
        with pytest.raises(NotFound, match="No coupon with code"):
            quote(conn, ws, "NOPE-1234", customer_id="ca", now=NOW, **basket)
    first = redeem_code(rt.db, ws, a.code, order_id="o1", customer_id="ca", now=NOW, **basket)
    assert first.created
    assert first.discount == 8
    assert not redeem_code(
        rt.db, ws, a.code, order_id="o1", customer_id="ca", now=NOW, **basket
    ).created
    with pytest.raises(CouponRefused, match="already used campaign SPRING 1 time"):
        redeem_code(rt.db, ws, a.code, order_id="o2", customer_id="ca", now=NOW, **basket)
    # Global limit 2: a second customer may, a third may not.
    b = issue(rt.db, ws, key="b", now=NOW, customer_id="cb", campaign_id="SPRING")
    c = issue(rt.db, ws, key="c", now=NOW, customer_id="cc", campaign_id="SPRING")
    redeem_code(rt.db, ws, b.code, order_id="o3", customer_id="cb", now=NOW, **basket)
    with pytest.raises(CouponRefused, match="reached its limit of 2 uses"):
        redeem_code(rt.db, ws, c.code, order_id="o4", customer_id="cc", now=NOW, **basket)
    # Single-use ad-hoc code.
    d = issue(rt.db, ws, key="d", now=NOW, spec={"amount": 5, "currency": "EUR"})
    redeem_code(rt.db, ws, d.code, order_id="o5", customer_id=None, now=NOW, **basket)
    with pytest.raises(CouponRefused, match="used 1 of 1 times"):
        redeem_code(rt.db, ws, d.code, order_id="o6", customer_id=None, now=NOW, **basket)


def test_redemptions_are_recorded_from_orders_and_coupon_applied(rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    ann = customer(rt, "ann", at=NOW)
    one = issue(
        rt.db, ws, key="k1", now=NOW, customer_id=ann, spec={"amount": 10, "currency": "USD"}
    )
    two = issue(rt.db, ws, key="k2", now=NOW, customer_id=ann, spec={"percent": 5})
    rt.pipeline().ingest(
        [
            order("ann", "o1", 90, at=NOW, coupon=one.code, discount=10),
            order("ann", "o2", 90, at=NOW + timedelta(hours=1), coupon=one.code, discount=10),
            {
                "type": "track",
                "event": "Coupon Applied",
                "userId": "ann",
                "messageId": "ca-1",
                "timestamp": (NOW + timedelta(hours=2)).isoformat() + "Z",
                "properties": {"order_id": "o3", "coupon_id": two.code.lower()},
            },
        ]
    )
    with rt.db.engine.begin() as conn:
        assert record_from_events(conn, ws) == 3
        assert record_from_events(conn, ws) == 0
    with rt.db.engine.connect() as conn:
        rows = conn.execute(
            sa.select(coupon_redemptions.c.order_id, coupon_redemptions.c.status).order_by(
                coupon_redemptions.c.order_id
            )
        ).all()
    # The second use of a single-use code happened in the store: kept, marked over the limit.
    assert [tuple(r) for r in rows] == [
        ("o1", "redeemed"),
        ("o2", "over_limit"),
        ("o3", "redeemed"),
    ]
    from siyu.loyalty.events import publish

    publish(rt.db, ws)
    redeemed = sorted(e["properties"]["order_id"] for e in events(rt, "Coupon Redeemed"))
    assert redeemed == ["o1", "o3"]
