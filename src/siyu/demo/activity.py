"""Everything people do besides paying: browsing, carts, e-mail, WhatsApp, communities.

All of it is drawn per block as columns. Web sessions carry the browser's anonymousId and, once
the person has logged in to the store, the Shopify customer id too: that pair is the link
identity resolution needs. Marketing e-mails and WhatsApp broadcasts only reach people inside
their consent window, as a well-behaved brand's would.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from siyu.demo.calendar import DAY_MS, Window
from siyu.demo.catalogue import Catalogue
from siyu.demo.consents import Consents
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
    IDENTIFY,
    MESSAGE_RECEIVED,
    MESSAGE_SENT,
    ORDER_COMPLETED,
    ORDER_REFUNDED,
    PAGE,
    PRODUCT_ADDED,
    PRODUCT_VIEWED,
    REFERRAL_SHARED,
    TABLET,
    EventBuilder,
    EventTable,
)
from siyu.demo.markets import AMAZON, EMAIL, INSTAGRAM, SHOPIFY, TIKTOK, WEB, WHATSAPP
from siyu.demo.orders import Orders
from siyu.demo.people import People

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

MINUTE = 60_000
REFERRAL_CHANNELS: tuple[str, ...] = ("whatsapp", "instagram", "facebook", "copy_link")


def _uniform_in(rng: np.random.Generator, lo: Ints, hi: Ints) -> Ints:
    out: Ints = lo + (rng.random(len(lo)) * np.maximum(hi - lo, 0)).astype(np.int64)
    return out


def _repeat(counts: Ints) -> Ints:
    return np.repeat(np.arange(len(counts)), counts).astype(np.int64)


def _favourite_products(rng: np.random.Generator, p: People, cat: Catalogue, person: Ints) -> Ints:
    u = rng.random(len(person))
    category = np.where(u < 0.7, p.fav[person, 0], p.fav[person, 1])
    return cat.pick(category.astype(np.int64), rng.random(len(person)))


def _orders(ev: EventBuilder, rng: np.random.Generator, p: People, o: Orders) -> None:
    """Order Completed from the store, Order Refunded, and the web funnel before each order."""
    ev.add(ORDER_COMPLETED, o.source, o.person, o.ts, ref=np.arange(len(o)))
    ev.add(ORDER_REFUNDED, o.source[o.refund_order], o.person[o.refund_order], o.refund_ts,
           ref=np.arange(len(o.refund_order)))  # fmt: skip
    web = np.flatnonzero((o.source == SHOPIFY) & p.member[o.person, WEB])
    person, ts = o.person[web], o.ts[web]
    device = (rng.random(len(web)) * p.devices[person]).astype(np.int64)
    lines = np.diff(o.line_start)[web]
    of = _repeat(lines)
    line = o.line_start[web][of] + np.arange(len(of)) - np.repeat(np.cumsum(lines) - lines, lines)
    viewed = ts[of] - (rng.uniform(8, 40, len(of)) * MINUTE).astype(np.int64)
    added = ts[of] - (rng.uniform(3, 8, len(of)) * MINUTE).astype(np.int64)
    for kind, when, qty in ((PRODUCT_VIEWED, viewed, -1), (PRODUCT_ADDED, added, o.line_qty[line])):
        ev.add(kind, WEB, person[of], when, device=device[of],
               user=when >= p.login_ms[person[of]], ref=o.line_product[line], ref2=qty)  # fmt: skip
    landing = ts - (rng.uniform(40, 45, len(web)) * MINUTE).astype(np.int64)
    ev.add(PAGE, WEB, person, landing, device=device, user=landing >= p.login_ms[person],
           ref=p.fav[person, 0])  # fmt: skip
    checkout = ts - (rng.uniform(1, 3, len(web)) * MINUTE).astype(np.int64)
    # Checking out identifies the browser (the store knows the customer from here on).
    ev.add(CHECKOUT_STARTED, WEB, person, checkout, device=device, ref=web)
    coupon = o.coupon[web] >= 0
    at = ts[coupon] - 30_000
    ev.add(COUPON_APPLIED, WEB, person[coupon], at, device=device[coupon],
           user=at >= p.login_ms[person[coupon]], ref=web[coupon])  # fmt: skip


def _browsing(
    ev: EventBuilder, rng: np.random.Generator, p: People, cat: Catalogue, orders: Ints
) -> None:
    """Browse sessions (a page, then product views) and abandoned carts on the web store."""
    who = np.flatnonzero(p.member[:, WEB])
    active_days = (p.t_end[who] - p.t0[who]) / DAY_MS
    sessions = np.minimum(rng.poisson(p.engagement[who] * (1 + active_days / 25)), 40)
    sessions = np.maximum(sessions, p.devices[who])  # every browser is seen at least once
    s = _repeat(sessions)
    person = who[s]
    ts = _uniform_in(rng, p.t0[person], p.t_end[person])
    rank = np.arange(len(s)) - np.repeat(np.cumsum(sessions) - sessions, sessions)
    device = np.where(
        rank < p.devices[person],
        rank,
        (rng.random(len(s)) * p.devices[person]).astype(np.int64),
    )
    home = rng.random(len(s)) < 0.4
    ev.add(PAGE, WEB, person, ts, device=device, user=ts >= p.login_ms[person],
           ref=np.where(home, -1, p.fav[person, 0]))  # fmt: skip
    views = 1 + np.minimum(rng.poisson(0.8, len(s)), 5)
    v = _repeat(views)
    when = ts[v] + (rng.uniform(0.5, 4, len(v)) * MINUTE).astype(np.int64) * (
        1 + np.arange(len(v)) - np.repeat(np.cumsum(views) - views, views)
    )
    ev.add(PRODUCT_VIEWED, WEB, person[v], when, device=device[v],
           user=when >= p.login_ms[person[v]],
           ref=_favourite_products(rng, p, cat, person[v]))  # fmt: skip
    carts = np.minimum(rng.poisson(0.25 + 0.2 * orders[who]), 5)
    c = _repeat(carts)
    person = who[c]
    ts = _uniform_in(rng, p.t0[person], p.t_end[person])
    device = (rng.random(len(c)) * p.devices[person]).astype(np.int64)
    product = _favourite_products(rng, p, cat, person)
    user = ts >= p.login_ms[person]
    ev.add(PRODUCT_VIEWED, WEB, person, ts, device=device, user=user, ref=product)
    added = ts + 2 * MINUTE
    ev.add(PRODUCT_ADDED, WEB, person, added, device=device, user=user, ref=product, ref2=1)
    go = rng.random(len(c)) < 0.4
    ev.add(CART_CHECKOUT, WEB, person[go], added[go] + 3 * MINUTE, device=device[go],
           user=user[go], ref=product[go], ref2=1)  # fmt: skip


def _store_tablet(ev: EventBuilder, rng: np.random.Generator, p: People, cat: Catalogue) -> None:
    """Shoppers at the pop-up store log in on the shared tablet and browse."""
    who = np.flatnonzero(p.tablet)
    visits = rng.integers(1, 3, len(who))
    person = who[_repeat(visits)]
    ts = _uniform_in(rng, p.t0[person], p.t_end[person])
    ev.add(IDENTIFY, WEB, person, ts, device=TABLET)
    for step in (1, 2):
        ev.add(PRODUCT_VIEWED, WEB, person, ts + step * MINUTE, device=TABLET,
               ref=_favourite_products(rng, p, cat, person))  # fmt: skip
    ev.add(PRODUCT_ADDED, WEB, person, ts + 3 * MINUTE, device=TABLET,
           ref=_favourite_products(rng, p, cat, person), ref2=1)  # fmt: skip


def _email(ev: EventBuilder, rng: np.random.Generator, p: People, c: Consents) -> None:
    """Campaign opens and clicks at the ESP, inside the marketing consent window."""
    who = np.flatnonzero(p.member[:, EMAIL] & (c.email_from < c.email_until))
    lo, hi = c.email_from[who], np.minimum(c.email_until[who], p.t_end[who])
    months = np.maximum(hi - lo, 0) / (30 * DAY_MS)
    opens = np.minimum(rng.poisson(months * 2.5 * p.engagement[who]), 80)
    o = _repeat(opens)
    person = who[o]
    ts = _uniform_in(rng, lo[o], hi[o])
    day = ts // DAY_MS
    ev.add(EMAIL_OPENED, EMAIL, person, ts, ref=day)
    click = rng.random(len(o)) < 0.2
    at = ts[click] + (rng.uniform(0.2, 120, int(click.sum())) * MINUTE).astype(np.int64)
    ev.add(EMAIL_CLICKED, EMAIL, person[click], at, ref=day[click])
    # The ESP's click tracking identifies the browser that opened the link (one of theirs).
    clicked = person[click]
    web = p.member[clicked, WEB]
    who, landed = clicked[web], at[web] + 2_000
    device = (rng.random(len(who)) * p.devices[who]).astype(np.int64)
    ev.add(IDENTIFY, WEB, who, landed, device=device, user=False)


def _whatsapp(
    ev: EventBuilder, rng: np.random.Generator, p: People, c: Consents, orders: Ints
) -> None:
    """Customer service chats (inbound then replies) and consented broadcasts."""
    who = np.flatnonzero(p.member[:, WHATSAPP])
    chats = np.minimum(rng.poisson(0.8 + 0.6 * orders[who]), 10)
    ch = _repeat(chats)
    start = _uniform_in(rng, p.t0[who[ch]], p.t_end[who[ch]])
    size = 2 + np.minimum(rng.poisson(1.0, len(ch)), 4)
    m = _repeat(size)
    step = np.arange(len(m)) - np.repeat(np.cumsum(size) - size, size)
    ts = start[m] + step * (rng.uniform(0.3, 10, len(m)) * MINUTE).astype(np.int64)
    person = who[ch][m]
    text = rng.integers(4, 320, len(m))
    inbound = step % 2 == 0
    ev.add(MESSAGE_RECEIVED, WHATSAPP, person[inbound], ts[inbound], ref2=text[inbound])
    ev.add(MESSAGE_SENT, WHATSAPP, person[~inbound], ts[~inbound], ref2=text[~inbound])
    who = np.flatnonzero(c.whatsapp_from < c.whatsapp_until)
    lo, hi = c.whatsapp_from[who], np.minimum(c.whatsapp_until[who], p.t_end[who])
    casts = np.minimum(rng.poisson(np.maximum(hi - lo, 0) / (30 * DAY_MS) * 0.8), 30)
    b = _repeat(casts)
    ev.add(MESSAGE_SENT, WHATSAPP, who[b], _uniform_in(rng, lo[b], hi[b]),
           ref=1, ref2=rng.integers(80, 600, len(b)))  # fmt: skip


def _community(ev: EventBuilder, rng: np.random.Generator, p: People, orders: Ints) -> None:
    """Joining the brand's community groups, posting there, and sharing referral links."""
    social = p.member[:, WHATSAPP] | p.member[:, INSTAGRAM]
    keen = rng.random(len(p)) < np.where(p.region >= 3, 0.4, 0.3)
    who = np.flatnonzero(social & keen)
    use_wa = p.member[who, WHATSAPP] & (~p.member[who, INSTAGRAM] | (rng.random(len(who)) < 0.5))
    source = np.where(use_wa, WHATSAPP, INSTAGRAM).astype(np.int64)
    joined = _uniform_in(rng, p.t0[who], p.t_end[who])
    room = p.fav[who, 0]
    ev.add(COMMUNITY_JOINED, source, who, joined, ref=room)
    posts = np.minimum(rng.poisson(4.0 * p.engagement[who]), 30)
    k = _repeat(posts)
    ev.add(COMMUNITY_POSTED, source[k], who[k], _uniform_in(rng, joined[k], p.t_end[who[k]]),
           ref=room[k])  # fmt: skip
    sharer = np.flatnonzero((orders > 0) & (rng.random(len(p)) < 0.15))
    on_web = (
        p.member[sharer, SHOPIFY] & p.member[sharer, WEB] & (p.login_ms[sharer] < p.t_end[sharer])
    )
    keep = on_web | p.member[sharer, WHATSAPP]
    sharer, on_web = sharer[keep], on_web[keep]
    shares = 1 + np.minimum(rng.poisson(0.8, len(sharer)), 4)
    s = _repeat(shares)
    lo = np.where(on_web, np.maximum(p.t0[sharer], p.login_ms[sharer]), p.t0[sharer])
    ts = _uniform_in(rng, lo[s], p.t_end[sharer[s]])
    channel = rng.integers(0, len(REFERRAL_CHANNELS), len(s))
    web = on_web[s]
    ev.add(REFERRAL_SHARED, WEB, sharer[s][web], ts[web], device=0, ref=channel[web])
    ev.add(REFERRAL_SHARED, WHATSAPP, sharer[s][~web], ts[~web], ref=channel[~web])


def _account_links(ev: EventBuilder, rng: np.random.Generator, p: People) -> None:
    """Logged-in store customers register an Amazon purchase or connect their Instagram, and
    the order system maps marketplace orders to store customers.

    Each becomes a Segment ``alias`` (previousId = the other account, userId = the Shopify
    customer id): the evidence that ties a masked marketplace buyer to the store.
    """
    logged_in = p.member[:, SHOPIFY] & p.member[:, WEB] & (p.login_ms < p.t_end)
    for source, share in ((AMAZON, 0.6), (INSTAGRAM, 0.7)):
        who = np.flatnonzero(logged_in & p.member[:, source] & (rng.random(len(p)) < share))
        ts = _uniform_in(rng, np.maximum(p.t0[who], p.login_ms[who]), p.t_end[who])
        ev.add(ALIAS, WEB, who, ts, device=0, ref=source)
    # The order system maps a marketplace order to the store customer with the same shipping
    # name and postcode (the relay address alone says nothing) and records the mapping; one in
    # twenty ships elsewhere (a gift, the office) and stays unmapped.
    store = p.member[:, SHOPIFY]
    for source in (AMAZON, TIKTOK):
        who = np.flatnonzero(store & p.member[:, source] & (rng.random(len(p)) < 0.95))
        ts = _uniform_in(rng, p.t0[who], p.t_end[who])
        ev.add(ALIAS, SHOPIFY, who, ts, ref=source)
    # Instagram followers without a store account ask the DM automation for a product link;
    # the link carries a reference, and the landing page identifies the browser as them.
    who = np.flatnonzero(
        ~store & p.member[:, INSTAGRAM] & p.member[:, WEB] & (rng.random(len(p)) < 0.6)
    )
    ts = _uniform_in(rng, p.t0[who], p.t_end[who])
    ev.add(ALIAS, WEB, who, ts, device=0, user=False, ref=INSTAGRAM)
    # Marketplace buyers without a store account register the product's warranty from the
    # parcel insert (eight in ten): on the web store, else by replying to a newsletter, by
    # WhatsApp or in an Instagram DM, giving the order number that the order system maps back
    # to their marketplace account.
    for source in (AMAZON, TIKTOK):
        who = np.flatnonzero(~store & p.member[:, source] & (rng.random(len(p)) < 0.8))
        ts = _uniform_in(rng, p.t0[who], p.t_end[who])
        for channel in (WEB, EMAIL, WHATSAPP, INSTAGRAM):
            on = p.member[who, channel]
            device = 0 if channel == WEB else -1
            ev.add(ALIAS, channel, who[on], ts[on], device=device, user=channel != WEB, ref=source)
            who, ts = who[~on], ts[~on]


def _chat_button(ev: EventBuilder, rng: np.random.Generator, p: People) -> None:
    """The web store's WhatsApp button: the chat starts with a reference to the browser, and
    the WhatsApp integration identifies that browser with the number (``phone_shown[WEB]``)."""
    who = np.flatnonzero(p.phone_shown[:, WEB])
    ts = _uniform_in(rng, p.t0[who], p.t_end[who])
    device = (rng.random(len(who)) * p.devices[who]).astype(np.int64)
    ev.add(IDENTIFY, WEB, who, ts, device=device, user=False)


def _identifies(ev: EventBuilder, rng: np.random.Generator, p: People, table: EventTable) -> None:
    """One identify per (person, non-web source), just before the first thing seen there."""
    n = len(p)
    first = np.full(n * 7, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, table.person * 7 + table.source, table.ts)
    person, source = np.nonzero(p.member)
    keep = source != WEB
    person, source = person[keep].astype(np.int64), source[keep].astype(np.int64)
    seen = first[person * 7 + source]
    fallback = _uniform_in(rng, p.t0[person], p.t_end[person])
    ev.add(IDENTIFY, source, person, np.where(seen < np.iinfo(np.int64).max, seen - 1000, fallback))
    news = np.flatnonzero(p.email_shown[:, WEB])
    web_first = first[news * 7 + WEB]
    ev.add(IDENTIFY, WEB, news, web_first + MINUTE, device=0, user=False)


def make_events(
    rng: np.random.Generator, window: Window, p: People, o: Orders, c: Consents, cat: Catalogue
) -> EventTable:
    """Every event of a block, in construction order (sorted later)."""
    orders = np.bincount(o.person, minlength=len(p)).astype(np.int64)
    ev = EventBuilder()
    _orders(ev, rng, p, o)
    _browsing(ev, rng, p, cat, orders)
    _store_tablet(ev, rng, p, cat)
    _email(ev, rng, p, c)
    _whatsapp(ev, rng, p, c, orders)
    _community(ev, rng, p, orders)
    _account_links(ev, rng, p)
    _chat_button(ev, rng, p)
    ev.add(CONSENT_UPDATED, c.source, c.person, c.ts, ref=np.arange(len(c.person)))
    table = ev.build()
    ident = EventBuilder()
    _identifies(ident, rng, p, table)
    ev.parts.extend(ident.parts)
    table = ev.build()
    table.ts = np.minimum(table.ts, window.end_ms - 1)
    return table
