"""Turning a block's event columns into Segment-spec messages (plain JSON-ready dicts).

This is the only row-by-row step of the generator, so it does as little as possible per row:
everything that repeats (product dicts, identifiers, contexts' parts, timestamps) is prepared
once per block, and each kind of event has its own small writer in a dispatch table.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from siyu.demo.activity import REFERRAL_CHANNELS
from siyu.demo.catalogue import BRANDS, CATEGORIES, Catalogue
from siyu.demo.consents import CHANNELS, EVIDENCE, PURPOSES, STATUSES, Consents
from siyu.demo.events import (
    ALIAS,
    CART_CHECKOUT,
    CHECKOUT_STARTED,
    COMMUNITY_JOINED,
    COMMUNITY_POSTED,
    CONSENT_UPDATED,
    COUPON_APPLIED,
    EMAIL_CLICKED,
    EMAIL_OPENED,
    EVENT_NAMES,
    IDENTIFY,
    MESSAGE_RECEIVED,
    MESSAGE_SENT,
    MESSAGE_TYPES,
    ORDER_COMPLETED,
    ORDER_REFUNDED,
    PAGE,
    PRODUCT_ADDED,
    PRODUCT_VIEWED,
    REFERRAL_SHARED,
    TABLET,
    EventTable,
)
from siyu.demo.markets import (
    AMAZON,
    EMAIL,
    INSTAGRAM,
    MARKETS,
    SHOPIFY,
    SOURCE_NAMES,
    TIKTOK,
    WEB,
    money_digits,
)
from siyu.demo.orders import COUPONS, Orders
from siyu.demo.people import People
from siyu.gcpause import collector_paused

Ints = npt.NDArray[np.int64]
Record = dict[str, Any]

STORE_URL = "https://shop.siyu.example"
COMMUNITIES: tuple[str, ...] = ("Parents Circle", "Glow Club", "Tech Lab", "Home Makers",
                                "Active Crew", "Trail Club")  # fmt: skip
_AFFILIATION = {SHOPIFY: "Shopify", AMAZON: "Amazon", TIKTOK: "TikTok Shop"}
_EPOCH = dt.date(1970, 1, 1)


def amount(minor: int, digits: int) -> int | float:
    """Minor units to the JSON number the demo writes (whole rupiah, cents elsewhere)."""
    return minor if digits == 0 else round(minor / 100, 2)


def timestamps(ms: Ints) -> list[str]:
    """ISO-8601 UTC strings with millisecond precision and a 'Z', vectorised."""
    text = np.datetime_as_string(ms.astype("datetime64[ms]"), unit="ms")
    return [t + "Z" for t in text.tolist()]


class Writer:
    """Builds the messages of one block; ``write(rows)`` returns them in the given order."""

    def __init__(
        self,
        seed: int,
        p: People,
        o: Orders,
        c: Consents,
        events: EventTable,
        seq: Ints,
        cat: Catalogue,
    ) -> None:
        self.seed, self.p, self.o, self.c, self.e, self.cat = seed, p, o, c, events, cat
        self.seq = seq
        self.person = events.person.tolist()
        self.source = events.source.tolist()
        self.kind = events.kind.tolist()
        self.device = events.device.tolist()
        self.user = events.user.tolist()
        self.ref = events.ref.tolist()
        self.ref2 = events.ref2.tolist()
        self.pid = p.pid.tolist()
        self.line_start = o.line_start.tolist()
        self.line_product = o.line_product.tolist()
        self.line_qty = o.line_qty.tolist()
        self.market = p.market.tolist()
        self.digits = [money_digits(m.currency) for m in MARKETS]
        self.user_ids = [
            (p.shopify_id[i], p.amazon_id[i], p.tiktok_id[i], p.wa_id(i), p.instagram_id[i],
             p.email_on(i, EMAIL), p.shopify_id[i])
            for i in range(len(p))
        ]  # fmt: skip
        self._products: dict[int, Record] = {}
        self._viewed: dict[int, Record] = {}
        self._campaigns: dict[int, str] = {}
        self.writers: dict[int, Callable[[int, Record], None]] = {
            IDENTIFY: self._identify,
            PAGE: self._page,
            PRODUCT_VIEWED: self._product,
            PRODUCT_ADDED: self._product,
            CHECKOUT_STARTED: self._checkout,
            CART_CHECKOUT: self._cart_checkout,
            COUPON_APPLIED: self._coupon,
            ORDER_COMPLETED: self._order,
            ORDER_REFUNDED: self._refund,
            EMAIL_OPENED: self._email,
            EMAIL_CLICKED: self._email,
            MESSAGE_RECEIVED: self._message,
            MESSAGE_SENT: self._message,
            COMMUNITY_JOINED: self._community,
            COMMUNITY_POSTED: self._community,
            REFERRAL_SHARED: self._referral,
            CONSENT_UPDATED: self._consent,
            ALIAS: self._alias,
        }

    # -- shared pieces -------------------------------------------------------------------------

    def product(self, market: int, j: int) -> Record:
        """The product as a line or event property (shared: callers copy before adding)."""
        key = market * 1000 + j
        base = self._products.get(key)
        if base is None:
            cat = self.cat
            price = int(cat.local_price[market, j])
            base = {
                "product_id": cat.product_id[j],
                "sku": cat.sku[j],
                "name": cat.name[j],
                "category": CATEGORIES[int(cat.category[j])],
                "brand": BRANDS[int(cat.category[j])],
                "price": amount(price, self.digits[market]),
            }
            self._products[key] = base
        return base

    def write(self, rows: Ints) -> list[Record]:
        """Messages for the given event rows, in that order."""
        with collector_paused():
            return self._write(rows)

    def _write(self, rows: Ints) -> list[Record]:
        ts = timestamps(self.e.ts[rows])
        seed, p = self.seed, self.p
        out: list[Record] = []
        for n, r in enumerate(rows.tolist()):
            i, s, kind = self.person[r], self.source[r], self.kind[r]
            m = MARKETS[self.market[i]]
            msg: Record = {
                "type": MESSAGE_TYPES[kind],
                "messageId": f"demo-{seed}-{self.pid[i]}-{int(self.seq[r])}",
                "timestamp": ts[n],
            }
            if s == WEB:
                if self.user[r]:
                    msg["userId"] = self.user_ids[i][WEB]
                d = self.device[r]
                msg["anonymousId"] = p.tablet_id if d == TABLET else p.anonymous_ids[i][d]
                msg["context"] = {"locale": m.language, "timezone": m.timezone, "ip": p.ip[i]}
            else:
                msg["userId"] = self.user_ids[i][s]
                context: Record = {"locale": m.language, "timezone": m.timezone}
                if s == SHOPIFY:
                    context["ip"] = p.ip[i]
                msg["context"] = context
            if EVENT_NAMES[kind]:
                msg["event"] = EVENT_NAMES[kind]
            self.writers[kind](r, msg)
            out.append(msg)
        return out

    # -- one writer per kind -------------------------------------------------------------------

    def _identify(self, r: int, msg: Record) -> None:
        p, i, s = self.p, self.person[r], self.source[r]
        m = MARKETS[self.market[i]]
        traits: Record = {}
        email = p.identify_email(i, s, self.user[r])
        if email is not None:
            traits["email"] = email
        phone = p.identify_phone(i, s)
        if phone is not None:
            traits["phone"] = phone
        if s in (SHOPIFY, AMAZON, EMAIL):
            traits["first_name"] = p.first_name[i]
            traits["last_name"] = p.last_name[i]
        elif s != WEB:
            traits["first_name"] = p.first_name[i]
        traits["country"] = m.code
        if s != INSTAGRAM:
            traits["language"] = m.language
        if s in (SHOPIFY, EMAIL, WEB):
            traits["timezone"] = m.timezone
        if s in (SHOPIFY, EMAIL) and p.birthday[i] is not None:
            traits["birthday"] = p.birthday[i]
        if s in (SHOPIFY, AMAZON):
            traits["address"] = {"city": p.city[i], "postal_code": p.postal_code[i],
                                 "country": m.code}  # fmt: skip
        if s in (SHOPIFY, AMAZON, TIKTOK):
            traits["currency"] = m.currency
        msg["traits"] = traits

    def _page(self, r: int, msg: Record) -> None:
        i, ref = self.person[r], self.ref[r]
        lang = MARKETS[self.market[i]].language.lower()
        if ref < 0:
            msg["name"] = "Home"
            path, category = f"/{lang}/", "Home"
        else:
            msg["name"] = CATEGORIES[ref].title() if ref != 2 else "3C"
            path, category = f"/{lang}/collections/{CATEGORIES[ref].lower()}", "Collection"
        msg["properties"] = {"url": STORE_URL + path, "path": path, "category": category}

    def _product(self, r: int, msg: Record) -> None:
        i = self.person[r]
        market = self.market[i]
        key = market * 1000 + self.ref[r]
        viewed = self._viewed.get(key)
        if viewed is None:
            viewed = self._viewed[key] = {
                **self.product(market, self.ref[r]),
                "currency": MARKETS[market].currency,
            }
        props = dict(viewed)
        if self.ref2[r] > 0:
            props["quantity"] = self.ref2[r]
        msg["properties"] = props

    def _lines(self, order: int, market: int) -> list[Record]:
        lo, hi = self.line_start[order], self.line_start[order + 1]
        product = self.product
        return [
            {**product(market, j), "quantity": q}
            for j, q in zip(self.line_product[lo:hi], self.line_qty[lo:hi], strict=True)
        ]

    def _checkout(self, r: int, msg: Record) -> None:
        o, order, market = self.o, self.ref[r], self.market[self.person[r]]
        d = self.digits[market]
        msg["properties"] = {
            "order_id": o.order_id[order],
            "value": amount(int(o.subtotal[order]), d),
            "revenue": amount(int(o.subtotal[order] - o.discount[order]), d),
            "currency": MARKETS[market].currency,
            "products": self._lines(order, market),
        }

    def _cart_checkout(self, r: int, msg: Record) -> None:
        i = self.person[r]
        market = self.market[i]
        line = {**self.product(market, self.ref[r]), "quantity": self.ref2[r]}
        value = amount(int(self.cat.local_price[market, self.ref[r]]) * self.ref2[r],
                       self.digits[market])  # fmt: skip
        msg["properties"] = {
            "order_id": f"CHK-{self.pid[i]}-{int(self.seq[r])}",
            "value": value,
            "revenue": value,
            "currency": MARKETS[market].currency,
            "products": [line],
        }

    def _coupon(self, r: int, msg: Record) -> None:
        o, order = self.o, self.ref[r]
        code = COUPONS[int(o.coupon[order])][0]
        msg["properties"] = {
            "order_id": o.order_id[order],
            "coupon_id": f"cpn-{code.lower()}",
            "coupon_name": code,
            "discount": amount(int(o.discount[order]), self.digits[self.market[self.person[r]]]),
        }

    def _order(self, r: int, msg: Record) -> None:
        o, order, market = self.o, self.ref[r], self.market[self.person[r]]
        d = self.digits[market]
        props: Record = {
            "order_id": o.order_id[order],
            "affiliation": _AFFILIATION[self.source[r]],
            "total": amount(int(o.total[order]), d),
            "revenue": amount(int(o.subtotal[order] - o.discount[order]), d),
            "shipping": amount(int(o.shipping[order]), d),
            "tax": amount(int(o.tax[order]), d),
            "discount": amount(int(o.discount[order]), d),
            "currency": MARKETS[market].currency,
            "products": self._lines(order, market),
        }
        if o.coupon[order] >= 0:
            props["coupon"] = COUPONS[int(o.coupon[order])][0]
        msg["properties"] = props

    def _refund(self, r: int, msg: Record) -> None:
        o, k, market = self.o, self.ref[r], self.market[self.person[r]]
        order = int(o.refund_order[k])
        msg["properties"] = {
            "order_id": o.order_id[order],
            "total": amount(int(o.refund_amount[k]), self.digits[market]),
            "currency": MARKETS[market].currency,
        }

    def _email(self, r: int, msg: Record) -> None:
        day = self.ref[r]
        campaign = self._campaigns.get(day)
        if campaign is None:
            year, week, _ = (_EPOCH + dt.timedelta(days=day)).isocalendar()
            campaign = self._campaigns[day] = f"cmp-{year}w{week:02d}"
        msg["properties"] = {"campaign_id": campaign}

    def _message(self, r: int, msg: Record) -> None:
        props: Record = {
            "channel": "whatsapp",
            "message_id": f"wamid.{self.pid[self.person[r]]:x}.{int(self.seq[r]):04x}",
            "text_length": self.ref2[r],
        }
        if self.ref[r] == 1:
            props["broadcast"] = True
        msg["properties"] = props

    def _community(self, r: int, msg: Record) -> None:
        market = MARKETS[self.market[self.person[r]]]
        msg["properties"] = {
            "community": f"Siyu {COMMUNITIES[self.ref[r]]} {market.code}",
            "channel": SOURCE_NAMES[self.source[r]],
        }

    def _referral(self, r: int, msg: Record) -> None:
        msg["properties"] = {
            "referral_code": self.p.referral_code[self.person[r]],
            "channel": REFERRAL_CHANNELS[self.ref[r]],
        }

    def _consent(self, r: int, msg: Record) -> None:
        c, k = self.c, self.ref[r]
        form, text = EVIDENCE[int(c.evidence[k])]
        msg["properties"] = {
            "purpose": PURPOSES[int(c.purpose[k])],
            "channel": CHANNELS[int(c.channel[k])],
            "status": STATUSES[int(c.status[k])],
            "evidence": {"form": form, "text": text},
        }

    def _alias(self, r: int, msg: Record) -> None:
        i = self.person[r]
        p = self.p
        ref = self.ref[r]
        other = (
            p.amazon_id[i]
            if ref == AMAZON
            else p.tiktok_id[i]
            if ref == TIKTOK
            else p.instagram_id[i]
        )
        if self.source[r] == WEB and not self.user[r]:
            # A visitor without a store account: an alias needs a userId, so the page identifies
            # the browser as the other account instead; the warranty registration form (a
            # marketplace account) also asks e-mail and phone (see ``generator._truth_rows``).
            msg["type"] = "identify"
            msg["userId"] = other
            traits: Record = {"country": MARKETS[self.market[i]].code}
            if ref != INSTAGRAM:
                traits["email"] = p.email_on(i, WEB)
                traits["phone"] = "+" + p.phone_digits[i]
            msg["traits"] = traits
            return
        msg["previousId"] = other
