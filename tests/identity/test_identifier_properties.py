"""Property: normalising a normalised identifier returns it unchanged, for every built-in kind.

Stored values are re-normalised when records are replayed or re-imported; a normaliser that is not
idempotent would give one customer two spellings of the same identifier, and One-ID would split
them. Hypothesis runs derandomised so that a failure reproduces on every machine.
"""

from __future__ import annotations

import phonenumbers
from hypothesis import given, settings
from hypothesis import strategies as st

from siyu.identity import IdentifierKind, InvalidIdentifier
from siyu.identity import identifiers as ids

PROPERTY = settings(max_examples=150, deadline=None, derandomize=True)
REGIONS = ["US", "GB", "DE", "FR", "ID", "TH", "PH", "MY", "BR", "MX", "SA", "CN", "JP", "AE"]
SEPARATORS = st.sampled_from(["", " ", "-", ".", "  "])


def _check(
    kind: IdentifierKind, raw: str, *, region: str | None = None, source: str | None = None
) -> str | None:
    """Assert idempotence for a valid ``raw``; generated values that are invalid are skipped."""
    try:
        once = kind.normalise(raw, region=region, source=source)
    except InvalidIdentifier:
        return None
    assert kind.normalise(once, region=region, source=source) == once
    return once


@st.composite
def phone_numbers(draw: st.DrawFn) -> tuple[str, str]:
    """(region, a spelling of a number in that region): national, +international or 00-prefixed,
    with the last digits varied and arbitrary separators."""
    region = draw(st.sampled_from(REGIONS))
    kind = draw(
        st.sampled_from(
            [phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE]
        )
    )
    example = phonenumbers.example_number_for_type(region, kind)
    assert example is not None
    national = str(example.national_number)
    tail = draw(st.text("0123456789", min_size=3, max_size=3))
    digits = national[:-3] + tail
    style = draw(st.sampled_from(["national", "plus", "00"]))
    if style == "national":
        prefix = "0" if region not in {"US", "MX"} else ""
        if region in {"US"}:
            prefix = draw(st.sampled_from(["", "1"]))
        body = prefix + digits
    else:
        body = ("+" if style == "plus" else "00") + str(example.country_code) + digits
    separator = draw(SEPARATORS)
    cut = draw(st.integers(min_value=1, max_value=max(1, len(body) - 2)))
    return region, body[:cut] + separator + body[cut:]


@PROPERTY
@given(phone_numbers())
def test_phone_is_idempotent(case: tuple[str, str]) -> None:
    region, raw = case
    once = _check(ids.PHONE, raw, region=region)
    if once is not None:
        assert once.startswith("+")
        assert ids.PHONE.normalise(once) == once  # E.164 stands alone: no region needed
        assert ids.WHATSAPP.normalise(once.removeprefix("+")) == once


ATOM = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+'ñé", min_size=1, max_size=8
)
LABEL = st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9\-]{0,8}[a-zA-Z0-9])?", fullmatch=True)
DOMAINS = st.one_of(
    st.builds(lambda a, b: f"{a}.{b}", LABEL, st.sampled_from(["com", "co.uk", "de", "COM", "id"])),
    st.sampled_from(["Bücher.de", "例子.中国", "gmail.com", "GoogleMail.com", "münchen.DE"]),
)


@st.composite
def emails(draw: st.DrawFn) -> str:
    local = ".".join(draw(st.lists(ATOM, min_size=1, max_size=3)))
    padding = draw(st.sampled_from(["", " ", "\t", " \u200b"]))
    return f"{padding}{local}@{draw(DOMAINS)}{padding}"


@PROPERTY
@given(emails(), st.booleans())
def test_email_is_idempotent(raw: str, fold: bool) -> None:
    kind = ids.EMAIL.with_options(fold_gmail=fold)
    once = _check(kind, raw)
    if once is not None:
        assert once == once.lower()
        assert once.isascii() or "@" in once


@PROPERTY
@given(
    st.from_regex(r"[a-zA-Z0-9]{1,20}", fullmatch=True),
    st.sampled_from(["com", "co.uk", "de", "co.jp", "com.mx", "ae"]),
)
def test_amazon_buyer_is_idempotent(local: str, tld: str) -> None:
    assert _check(ids.AMAZON_BUYER, f"{local}@Marketplace.Amazon.{tld}") is not None


@PROPERTY
@given(st.text(min_size=1, max_size=40), st.sampled_from([None, "shopify", "Woo", "app.web"]))
def test_user_id_is_idempotent(raw: str, source: str | None) -> None:
    once = _check(ids.USER_ID, raw, source=source)
    if once is not None:
        assert ids.USER_ID.normalise(once) == once  # 'source:id' needs no source argument


@PROPERTY
@given(
    st.one_of(
        st.uuids().map(str),
        st.uuids().map(lambda u: str(u).upper()),
        st.text(min_size=1, max_size=60),
    )
)
def test_weak_ids_are_idempotent(raw: str) -> None:
    _check(ids.ANONYMOUS_ID, raw)
    _check(ids.DEVICE_ID, raw)


@PROPERTY
@given(
    st.integers(min_value=1, max_value=10**19),
    st.integers(min_value=10**16, max_value=10**20 - 1),
    st.sampled_from(["", "gid://shopify/Customer/"]),
)
def test_numeric_ids_are_idempotent(number: int, snowflake: int, gid: str) -> None:
    assert _check(ids.SHOPIFY_CUSTOMER_ID, f" {gid}{number} ") == str(number)
    assert _check(ids.INSTAGRAM, str(number)) == str(number)
    assert _check(ids.DISCORD_USER_ID, str(snowflake)) == str(snowflake)


@PROPERTY
@given(
    st.from_regex(r"[-_]?[A-Za-z0-9._=\-]{1,60}", fullmatch=True),
    st.from_regex(r"[Uu][0-9a-fA-F]{32}", fullmatch=True),
)
def test_text_platform_ids_are_idempotent(tiktok: str, line: str) -> None:
    _check(ids.TIKTOK_USER_ID, tiktok)
    assert _check(ids.LINE_USER_ID, line) is not None


@PROPERTY
@given(phone_numbers())
def test_whatsapp_is_idempotent(case: tuple[str, str]) -> None:
    region, raw = case
    try:
        e164 = ids.PHONE.normalise(raw, region=region)
    except InvalidIdentifier:
        return
    assert _check(ids.WHATSAPP, e164.removeprefix("+")) == e164
