"""Who the demo brand's customers are: market, sources, identifiers, lifetime, adversaries.

People are drawn a block at a time from the block's own random stream, so a person is the same
whatever the chunk size of the run. Identifiers come from ``siyu.demo.ids`` (unique by
construction); what each source shows of a person (e-mail, phone, in which format) is decided
here once, so that the events and the truth table cannot disagree.

Adversarial people are placed in every block: two families sharing a phone, one in-store tablet
used by several shoppers who log in, one recycled phone number, and ~1% typo'd e-mails.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from siyu.demo import ids
from siyu.demo.calendar import DAY_MS, Window, cumulative, local_time_ms, seasonality
from siyu.demo.catalogue import CATEGORIES
from siyu.demo.locales import CITIES, FIRST_NAMES, LAST_NAMES
from siyu.demo.markets import (
    AMAZON,
    EMAIL,
    INSTAGRAM,
    MARKET_WEIGHTS,
    MARKETS,
    PROFILES,
    REGIONS,
    SHOPIFY,
    TIKTOK,
    WEB,
    WHATSAPP,
)

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

BLOCK = 500  # people per random stream; chunk boundaries never change who a person is

# Probability of being on shopify, amazon, tiktok_shop, whatsapp, instagram, by REGIONS row.
_MEMBERSHIP = np.array(
    [
        [0.55, 0.30, 0.12, 0.05, 0.20],  # US
        [0.50, 0.25, 0.10, 0.15, 0.20],  # UK
        [0.50, 0.25, 0.05, 0.15, 0.20],  # EU
        [0.35, 0.03, 0.40, 0.50, 0.25],  # SEA
        [0.45, 0.18, 0.10, 0.55, 0.30],  # LATAM
        [0.45, 0.20, 0.06, 0.55, 0.25],  # MENA
    ]
)
_REGION_OF = np.array([REGIONS.index(m.region) for m in MARKETS], dtype=np.int64)
_OFFSET_OF = np.array([p.utc_offset for p in PROFILES], dtype=np.int64)
_US_SALES_TAX = np.array([0.0, 0.04, 0.0625, 0.07, 0.0725, 0.08, 0.0875, 0.095])
PHONE_E164, PHONE_DIGITS, PHONE_LOCAL = range(3)
_POSTAL_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"

FAMILIES_PER_BLOCK = 2
TABLET_SHOPPERS = 8


@dataclass
class People:
    """One block of people as parallel columns (row = person, ``pid`` = global index)."""

    pid: Ints
    market: Ints
    region: Ints
    utc_offset: Ints
    member: Bools  # people x sources
    buyer: Bools
    t0: Ints  # first activity, UTC ms
    t_end: Ints  # last activity, UTC ms (buyers: dropout)
    lam: Floats  # repeat purchase rate per day
    spend: Floats  # order value multiplier around the market's level
    fav: Ints  # people x 2 favourite categories
    engagement: Floats
    devices: Ints  # own web browsers (anonymousIds)
    login_ms: Ints  # from then on web events carry the shopify customer id
    tax_rate: Floats
    email_shown: Bools  # people x sources
    phone_shown: Bools  # people x sources
    phone_format: Ints  # people x sources, PHONE_* code
    family: Ints  # family group within the block, or -1
    tablet: Bools  # shops on the store tablet
    recycled: Bools  # phone number reused by another person
    typo_source: Ints  # source whose e-mail is typo'd, or -1
    first_name: list[str] = field(default_factory=list)
    last_name: list[str] = field(default_factory=list)
    email: list[str] = field(default_factory=list)
    typo_email: list[str] = field(default_factory=list)
    phone_digits: list[str] = field(default_factory=list)  # country code + national number
    phone_local: list[str] = field(default_factory=list)
    shopify_id: list[str] = field(default_factory=list)
    amazon_id: list[str] = field(default_factory=list)
    amazon_relay: list[str] = field(default_factory=list)
    tiktok_id: list[str] = field(default_factory=list)
    instagram_id: list[str] = field(default_factory=list)
    anonymous_ids: list[tuple[str, ...]] = field(default_factory=list)
    ip: list[str] = field(default_factory=list)
    city: list[str] = field(default_factory=list)
    postal_code: list[str] = field(default_factory=list)
    birthday: list[str | None] = field(default_factory=list)
    referral_code: list[str] = field(default_factory=list)
    tablet_id: str = ""

    def __len__(self) -> int:
        return len(self.pid)

    def phone(self, i: int, source: int) -> str:
        """The phone number as ``source`` shows it for person ``i``."""
        fmt = self.phone_format[i, source]
        if fmt == PHONE_DIGITS:
            return self.phone_digits[i]
        if fmt == PHONE_LOCAL:
            return self.phone_local[i]
        return "+" + self.phone_digits[i]

    def email_on(self, i: int, source: int) -> str:
        """The e-mail as ``source`` shows it (a typo'd copy on the typo source)."""
        return self.typo_email[i] if self.typo_source[i] == source else self.email[i]

    def wa_id(self, i: int) -> str:
        return self.phone_digits[i]

    def identify_email(self, i: int, source: int, logged_in: bool) -> str | None:
        """The e-mail an identify from ``source`` carries (Amazon only knows its relay)."""
        if source == AMAZON:
            return self.amazon_relay[i]
        if self.email_shown[i, source] or (source == WEB and logged_in):
            return self.email_on(i, source)
        return None

    def identify_phone(self, i: int, source: int) -> str | None:
        return self.phone(i, source) if self.phone_shown[i, source] else None


def _membership(rng: np.random.Generator, region: Ints) -> Bools:
    n = len(region)
    member = np.zeros((n, 7), dtype=np.bool_)
    draws = rng.random((n, 7))
    base = _MEMBERSHIP[region]
    member[:, [SHOPIFY, AMAZON, TIKTOK, WHATSAPP, INSTAGRAM]] = draws[:, :5] < base
    shop = member[:, SHOPIFY]
    member[:, EMAIL] = draws[:, 5] < np.where(shop, 0.7, 0.1)
    member[:, WEB] = draws[:, 6] < np.where(shop, 0.85, 0.12)
    member[~member.any(axis=1), WEB] = True  # nobody is nowhere: an anonymous visitor
    # At most four sources a person: keep the four with the highest random priority.
    priority = np.where(member, rng.random((n, 7)), -1.0)
    fourth = -np.sort(-priority, axis=1)[:, 3:4]
    member &= priority >= fourth
    return member


def _timeline(
    rng: np.random.Generator, window: Window, market: Ints, buyer: Bools
) -> tuple[Ints, Ints, Floats]:
    """First activity (seasonal, growing brand), dropout, and repeat purchase rate."""
    n = len(market)
    weights, _ = seasonality(window.start, window.days)
    ramp = np.linspace(0.5, 1.5, window.days)
    cdf = cumulative(weights * ramp)[:, 1:]
    cdf = cdf / cdf[:, -1:] + np.arange(len(MARKETS))[:, None]
    day = np.searchsorted(cdf.ravel(), market + rng.random(n), side="right") % window.days
    t0 = local_time_ms(window, day.astype(np.int64), _OFFSET_OF[market], rng)
    lam = rng.gamma(0.6, 1 / 40, n)
    mu = rng.gamma(0.9, 1 / 220, n)
    life_days = np.where(buyer, rng.exponential(1.0 / mu), rng.exponential(150.0, n))
    t_end = np.minimum(t0 + (life_days * DAY_MS).astype(np.int64), window.end_ms - 1)
    return t0, np.maximum(t_end, t0), lam


def _adversaries(rng: np.random.Generator, p: People, order: Ints) -> tuple[Ints, Ints]:
    """Mark families, tablet shoppers and the recycled pair; return (recycled A, B)."""
    pos = 0
    for group in range(FAMILIES_PER_BLOCK):
        size = int(rng.integers(2, 4))
        members = order[pos : pos + size]
        pos += size
        p.family[members] = group
        p.market[members] = p.market[members[0]]
        p.member[members, SHOPIFY] = True
        p.phone_shown[members, SHOPIFY] = True
        p.buyer[members] = True
    shoppers = order[pos : pos + TABLET_SHOPPERS]
    pos += TABLET_SHOPPERS
    p.tablet[shoppers] = True
    p.member[shoppers, SHOPIFY] = True
    p.member[shoppers, WEB] = True
    p.buyer[shoppers] = True
    pair = order[pos : pos + 2]
    p.recycled[pair] = True
    p.market[pair[1]] = p.market[pair[0]]
    p.member[pair, WHATSAPP] = True
    return pair[:1], pair[1:]


def _recycle_timeline(
    rng: np.random.Generator, window: Window, p: People, a: Ints, b: Ints
) -> None:
    """A uses the number early in the history; B gets it months after A is gone."""
    span = window.days * DAY_MS
    duration_b = p.t_end[b] - p.t0[b]
    p.t0[a] = window.start_ms + (rng.random(len(a)) * 0.3 * span).astype(np.int64)
    p.t_end[a] = p.t0[a] + (rng.uniform(60, 150, len(a)) * DAY_MS).astype(np.int64)
    p.t0[b] = p.t_end[a] + (rng.uniform(90, 150, len(b)) * DAY_MS).astype(np.int64)
    p.t_end[b] = np.minimum(window.end_ms - 1, p.t0[b] + duration_b)


def make_people(rng: np.random.Generator, block: int, seed: int, window: Window) -> People:
    """Draw the ``BLOCK`` people of one block (global indices block*BLOCK ...)."""
    n = BLOCK
    pid = np.arange(block * n, (block + 1) * n, dtype=np.int64)
    market = rng.choice(len(MARKETS), size=n, p=np.asarray(MARKET_WEIGHTS) / sum(MARKET_WEIGHTS))
    market = market.astype(np.int64)
    member = _membership(rng, _REGION_OF[market])
    shop_buys = rng.random(n) < 0.85
    buyer = member[:, AMAZON] | member[:, TIKTOK] | (member[:, SHOPIFY] & shop_buys)
    fav1 = rng.integers(0, len(CATEGORIES), n)
    fav2 = (fav1 + rng.integers(1, len(CATEGORIES), n)) % len(CATEGORIES)
    u = rng.random((n, 8))
    phone_shown = np.zeros((n, 7), dtype=np.bool_)
    # Checkout asks for a phone (shipping updates): buyers almost always give one.
    phone_shown[:, SHOPIFY] = u[:, 0] < np.where(buyer, 0.92, 0.5)
    phone_shown[:, WHATSAPP] = True
    # Seller-fulfilled TikTok Shop orders (cash on delivery) carry the recipient's phone.
    phone_shown[:, TIKTOK] = u[:, 1] < 0.8
    phone_shown[:, AMAZON] = u[:, 2] < 0.4
    phone_format = np.zeros((n, 7), dtype=np.int64)
    phone_format[:, SHOPIFY] = np.where(u[:, 3] < 0.3, PHONE_LOCAL, PHONE_E164)
    phone_format[:, WHATSAPP] = np.searchsorted([0.6, 0.8], u[:, 4], side="right")
    phone_format[:, AMAZON] = np.where(u[:, 5] < 0.5, PHONE_LOCAL, PHONE_E164)
    email_draw = rng.random((n, 3))
    p = People(
        pid=pid,
        market=market,
        region=_REGION_OF[market],
        utc_offset=_OFFSET_OF[market],
        member=member,
        buyer=buyer,
        t0=np.zeros(n, dtype=np.int64),
        t_end=np.zeros(n, dtype=np.int64),
        lam=np.zeros(n),
        spend=rng.gamma(3.0, 1 / 3.0, n),
        fav=np.stack([fav1, fav2], axis=1).astype(np.int64),
        engagement=rng.beta(2.0, 3.0, n) * 2.0,
        devices=np.zeros(n, dtype=np.int64),
        login_ms=np.zeros(n, dtype=np.int64),
        tax_rate=np.zeros(n),
        email_shown=np.zeros((n, 7), dtype=np.bool_),
        phone_shown=phone_shown,
        phone_format=phone_format,
        family=np.full(n, -1, dtype=np.int64),
        tablet=np.zeros(n, dtype=np.bool_),
        recycled=np.zeros(n, dtype=np.bool_),
        typo_source=np.full(n, -1, dtype=np.int64),
    )
    a, b = _adversaries(rng, p, rng.permutation(n).astype(np.int64))
    p.region = _REGION_OF[p.market]
    p.utc_offset = _OFFSET_OF[p.market]
    p.t0, p.t_end, p.lam = _timeline(rng, window, p.market, p.buyer)
    _recycle_timeline(rng, window, p, a, b)
    m = p.member
    p.email_shown[:, SHOPIFY] = m[:, SHOPIFY]
    p.email_shown[:, EMAIL] = m[:, EMAIL]
    # Click-to-WhatsApp from a campaign or order e-mail: the referral carries the address.
    known = m[:, EMAIL] | m[:, SHOPIFY]
    p.email_shown[:, WHATSAPP] = m[:, WHATSAPP] & (email_draw[:, 0] < np.where(known, 0.9, 0.4))
    # The DM automation asks for an e-mail to send the discount code to.
    p.email_shown[:, INSTAGRAM] = m[:, INSTAGRAM] & (email_draw[:, 1] < np.where(known, 0.85, 0.6))
    # Newsletter sign-up, and the ESP's click tracking identifying the browser on each click.
    p.email_shown[:, WEB] = m[:, WEB] & m[:, EMAIL]
    # The web store's chat button opens WhatsApp with a reference to the browser.
    p.phone_shown[:, WEB] = m[:, WEB] & m[:, WHATSAPP] & (email_draw[:, 2] < 0.8)
    # Instagram DMs handed over to WhatsApp ("continue on WhatsApp" with a reference): the
    # integration identifies the Instagram account with the number.
    p.phone_shown[:, INSTAGRAM] = m[:, INSTAGRAM] & m[:, WHATSAPP] & (email_draw[:, 2] > 0.2)
    p.devices = np.where(m[:, WEB], 1 + (rng.random(n) < 0.2), 0).astype(np.int64)
    # Most account holders sign in on their first visit (or check out, which identifies the
    # browser too); the rest browse anonymously for a while first.
    late = rng.random(n) < 0.25
    login_delay = (np.where(late, rng.uniform(0, 20, n), 0.0) * DAY_MS).astype(np.int64)
    p.login_ms = np.where(m[:, SHOPIFY] & m[:, WEB], p.t0 + login_delay, np.iinfo(np.int64).max)
    us = p.market == 0
    p.tax_rate = np.where(us, _US_SALES_TAX[rng.integers(0, len(_US_SALES_TAX), n)], 0.0)
    _typos(rng, p)
    _strings(rng, p, seed, window)
    return p


def _typos(rng: np.random.Generator, p: People) -> None:
    """~1% of people with an e-mail on two sources get it typo'd on the second one."""
    second = p.email_shown[:, [EMAIL, WHATSAPP, INSTAGRAM, WEB]]
    eligible = p.email_shown[:, SHOPIFY] & second.any(axis=1) & (p.family < 0) & ~p.recycled
    chosen = eligible & (rng.random(len(p)) < 0.02)
    pick = np.argmax(second * rng.random(second.shape), axis=1)
    p.typo_source = np.where(chosen, np.array([EMAIL, WHATSAPP, INSTAGRAM, WEB])[pick], -1)


def _typo(email: str, choice: int) -> str:
    local, domain = email.split("@")
    swaps = {"gmail.com": "gmial.com", "hotmail.com": "hotmial.com", "yahoo.com": "yaho.com"}
    if choice % 2 == 0 and domain in swaps:
        return f"{local}@{swaps[domain]}"
    letters = [i for i, ch in enumerate(local) if ch.isalpha()]
    drop = letters[choice % len(letters)] if len(letters) > 1 else -1
    if drop < 0:
        return f"{local}@{domain.replace('.', '', 1)}"
    return f"{local[:drop]}{local[drop + 1 :]}@{domain}"


def _strings(rng: np.random.Generator, p: People, seed: int, window: Window) -> None:
    """Names, addresses and identifiers; the only per-person Python loop of a block."""
    n = len(p)
    first = rng.integers(0, 1 << 30, n)
    last = rng.integers(0, 1 << 30, n)
    style = rng.integers(0, 4, n)
    mail = rng.random(n)
    prefix = rng.integers(0, 1 << 30, n)
    city = rng.integers(0, 1 << 30, n)
    postal = rng.integers(0, 10, (n, 10))
    letters = rng.integers(0, len(_POSTAL_LETTERS), (n, 4))
    octets = rng.integers(1, 255, (n, 4))
    has_birthday = rng.random(n) < 0.6
    age_days = rng.integers(18 * 365, 62 * 365, n)
    uuid_bits = rng.integers(0, 1 << 62, (n, 4), dtype=np.int64)
    tablet_bits = rng.integers(0, 1 << 62, 2, dtype=np.int64)
    typo_choice = rng.integers(0, 1 << 30, n)
    head_last: dict[int, str] = {}
    for i in range(n):
        m = int(p.market[i])
        prof = PROFILES[m]
        pid = int(p.pid[i])
        fn = FIRST_NAMES[m][first[i] % len(FIRST_NAMES[m])]
        ln = LAST_NAMES[m][last[i] % len(LAST_NAMES[m])]
        if p.family[i] >= 0:
            ln = head_last.setdefault(int(p.family[i]), ln)
        p.first_name.append(fn)
        p.last_name.append(ln)
        f, la = ids.ascii_slug(fn), ids.ascii_slug(ln)
        local = (f"{f}.{la}", f"{f}{la}", f"{f}_", f"{f[0]}{la}")[int(style[i])]
        cum, domain = 0.0, prof.email_domains[-1][0]
        total = sum(w for _, w in prof.email_domains)
        for name, w in prof.email_domains:
            cum += w / total
            if mail[i] < cum:
                domain = name
                break
        email = f"{local}{ids.email_token(pid, seed)}@{domain}"
        p.email.append(email)
        p.typo_email.append(_typo(email, int(typo_choice[i])) if p.typo_source[i] >= 0 else "")
        low, space, width = prof.subscriber
        nsn = prof.mobile_prefixes[prefix[i] % len(prof.mobile_prefixes)]
        nsn += f"{low + ids.perm('phone', pid, space, seed):0{width}d}"
        p.phone_digits.append(prof.calling_code + nsn)
        p.phone_local.append(ids.fill_pattern(prof.local_format, nsn))
        p.shopify_id.append(ids.shopify_customer_id(pid, seed))
        p.amazon_id.append(ids.amazon_buyer_id(pid, seed))
        p.amazon_relay.append(ids.amazon_relay(pid, seed, prof.amazon_tld))
        p.tiktok_id.append(ids.tiktok_user_id(pid, seed))
        p.instagram_id.append(ids.instagram_id(pid, seed))
        p.referral_code.append(ids.referral_code(fn, pid, seed))
        devices = int(p.devices[i])
        p.anonymous_ids.append(
            tuple(
                ids.uuid_from(int(uuid_bits[i, 2 * d]), int(uuid_bits[i, 2 * d + 1]))
                for d in range(devices)
            )
        )
        p.ip.append(f"{prof.ip_octets[octets[i, 0] % len(prof.ip_octets)]}.{octets[i, 1]}."
                    f"{octets[i, 2]}.{octets[i, 3]}")  # fmt: skip
        town, pattern = CITIES[m][city[i] % len(CITIES[m])]
        digits, alpha = iter(postal[i]), iter(letters[i])
        code = "".join(
            str(next(digits)) if ch == "#" else _POSTAL_LETTERS[next(alpha)] if ch == "@" else ch
            for ch in pattern
        )
        p.city.append(town)
        p.postal_code.append(code)
        born = window.as_of - dt.timedelta(days=int(age_days[i]))
        p.birthday.append(born.isoformat() if has_birthday[i] else None)
    for group in range(FAMILIES_PER_BLOCK):
        members = np.flatnonzero(p.family == group)
        for i in members[1:]:
            p.phone_digits[i] = p.phone_digits[members[0]]
            p.phone_local[i] = p.phone_local[members[0]]
    a, b = np.flatnonzero(p.recycled)
    p.phone_digits[b] = p.phone_digits[a]
    p.phone_local[b] = p.phone_local[a]
    p.tablet_id = ids.uuid_from(int(tablet_bits[0]), int(tablet_bits[1]))
