"""The column-wise fast path settles a value only when the per-value normaliser agrees exactly."""

from __future__ import annotations

import random

import phonenumbers
import pyarrow as pa
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from siyu.identity.blocking import normalise_many
from siyu.identity.extract import Memo, normalise_column
from siyu.identity.fastpath import fast_namespaced, fast_values
from siyu.identity.kind import IdentifierKind, InvalidIdentifier, get_kind


def _slow(kind: IdentifierKind, value: str, region: str | None, source: str | None) -> str | None:
    try:
        return kind.normalise(value, region=region, source=source)
    except InvalidIdentifier:
        return None


def _agree(
    kind: IdentifierKind,
    values: list[str],
    regions: list[str | None] | None = None,
    source: str | None = None,
) -> int:
    """Assert every settled value equals the normaliser's result; return how many were settled."""
    if source is not None:
        settled, out = fast_namespaced(kind, pa.array(values), source)
    else:
        arrow_regions = None if regions is None else pa.array(regions, pa.string())
        settled, out = fast_values(kind, pa.array(values), arrow_regions)
    fast = out.to_pylist()
    for i, value in enumerate(values):
        if settled[i]:
            region = None if regions is None else regions[i]
            assert fast[i] == _slow(kind, value, region, source), (value, region)
    return int(settled.sum())


def _phone_spellings(rng: random.Random) -> tuple[list[str], list[str | None]]:
    values: list[str] = []
    regions: list[str | None] = []
    codes = sorted(phonenumbers.SUPPORTED_REGIONS)
    kinds = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE, PhoneNumberType.TOLL_FREE)
    formats = (PhoneNumberFormat.NATIONAL, PhoneNumberFormat.E164, PhoneNumberFormat.INTERNATIONAL)
    for code in codes:
        for kind in kinds:
            example = phonenumbers.example_number_for_type(code, kind)
            if example is None:
                continue
            for fmt in formats:
                base = phonenumbers.format_number(example, fmt)
                for k in range(4):
                    chars = list(base)
                    if k:  # one digit changed: often invalid, sometimes another valid number
                        at = rng.choice([i for i, c in enumerate(chars) if c.isdigit()])
                        chars[at] = str(rng.randrange(10))
                    text = "".join(chars)
                    if k == 2:
                        text = text.replace(" ", "-")
                    if k == 3:
                        text = "".join(c for c in text if c.isdigit() or c == "+")
                    values.append(text)
                    regions.append(code if k != 1 else rng.choice([*codes, "UK", "XX", None]))
    return values, regions


def test_phones_of_every_region_agree_with_phonenumbers() -> None:
    values, regions = _phone_spellings(random.Random(7))
    settled = _agree(get_kind("phone"), values, regions)
    assert settled > len(values) // 4  # the fast path does settle most well-formed numbers


def test_whatsapp_ids_agree() -> None:
    values, _ = _phone_spellings(random.Random(8))
    wa_ids = sorted({v.lstrip("+") for v in values if v.startswith("+") and " " not in v})
    assert _agree(get_kind("whatsapp"), wa_ids) > len(wa_ids) // 4


def test_emails_of_every_shape_agree() -> None:
    shapes = [
        "Ann.Lee@Shop.co", "a@b.cd", "x@1.2", "a..b@x.com", ".a@x.com", "a.@x.com", "a@x-.com",
        "a@-x.com", "a@x.com.", "A+tag@GMail.com", "a b@x.com", "ü@x.com", "mailto:a@x.com",
        "a@x.123", "a@x.1a", "a@x.c-", "a@localhost", "a_b%c@sub.x-y.org", "a@b@c.com",
        " a@x.com", "a@x..com", "a" * 65 + "@x.com", "a" * 64 + "@x.com",
        "a@" + ("b" * 60 + ".") * 4 + "com", "!#$@x.com", "a@x.co_m", "test@example.com",
        "noreply@shop.co", "null@x.com", "x@marketplace.amazon.com",
    ]  # fmt: skip
    assert _agree(get_kind("email"), shapes) >= 6
    folding = get_kind("email").with_options(fold_gmail=True)
    assert _agree(folding, ["A.b+x@gmail.com", "a.b@googlemail.com", "a.b@mail.com"]) == 1


def test_plain_ids_agree() -> None:
    anonymous = [
        "0A1B2C3D-0000-4000-8000-00000000000F", "tab-in-store", "a b", "x" * 129, "null",
        "00000000-0000-0000-0000-000000000000", "\u200bzero", "ok_1.2=3",
    ]  # fmt: skip
    assert _agree(get_kind("anonymous_id"), anonymous) >= 3
    numeric = ["6100000001", "0123", "1.2E+12", "12345678901234567890123", "123 456", "7"]
    assert _agree(get_kind("shopify_customer_id"), numeric) == 2
    assert _agree(get_kind("instagram"), numeric) == 2
    users = ["A1B2C3", "amazon:A1B2C3", "a b", "x" * 256, "0", "ok-1"]
    assert _agree(get_kind("user_id"), users, source="Amazon") == 3
    assert _agree(get_kind("user_id"), users, source="bad source") == 0


def test_phones_with_the_country_code_but_no_plus_agree() -> None:
    """'6281234567890' in Indonesia: phonenumbers reads the leading 62 as the country code
    only when the whole number does not fit the region's pattern and the rest does."""
    values, regions = _phone_spellings(random.Random(9))
    bare = [(v[1:], r) for v, r in zip(values, regions, strict=True) if v.startswith("+")]
    rng = random.Random(10)
    other = sorted(phonenumbers.SUPPORTED_REGIONS)
    bare += [(v, rng.choice(other)) for v, _ in bare[::5]]  # another market's code
    settled = _agree(get_kind("phone"), [v for v, _ in bare], [r for _, r in bare])
    assert settled > len(bare) // 8


def test_tiktok_ids_agree() -> None:
    ids = ["7259250112124679724", "-000OaE_Xsa0", "a=b.c", "___", "a b", "x" * 129, "x" * 128,
           "ü1", "id\n", "", "-"]  # fmt: skip
    assert _agree(get_kind("tiktok_user_id"), ids) == 4


def _per_value(
    kind: IdentifierKind, values: list[str], extra: list[str | None]
) -> tuple[list[str | None], list[str | None]]:
    """The one-by-one results (normalise_many, blocked patterns included)."""
    out: list[str | None] = []
    why: list[str | None] = []
    for value, e in zip(values, extra, strict=True):
        if kind.namespace_by_source:
            got, reasons = normalise_many(kind, [value], source=e)
        else:
            got, reasons = normalise_many(kind, [value], region=e if kind.uses_region else None)
        out.append(got[0])
        why.append(reasons[0])
    return out, why


def test_the_column_normaliser_equals_the_one_by_one_normaliser() -> None:
    """What a graph build uses (fast path, column-wise blocking, the rest one by one) gives
    every value the per-value normaliser's form or reason: plain and odd spellings, blocked
    placeholders, repeated-digit phones (a back-reference pattern), sources and no source."""
    rng = random.Random(11)
    phones, regions = _phone_spellings(rng)
    picked = rng.sample(range(len(phones)), 400)
    cases: list[tuple[str, list[str], list[str | None]]] = [
        (
            "phone",
            [phones[i] for i in picked] + ["+11111111111", "0000000000", "+6281111111111"],
            [regions[i] for i in picked] + [None, "ID", None],
        ),
        (
            "email",
            ["Ann@Shop.co", "test@example.com", "null@x.com", "a b@x.com", "ü@x.com", "b@x.test"],
            [None] * 6,
        ),
        (
            "user_id",
            ["A1", "0", "null", "a b", "ok-1", "A1", "0", "anonymous"],
            ["shopify", "shopify", "web", "web", None, None, None, "Bad Source"],
        ),
        (
            "anonymous_id",
            ["tab", "null", "00000000-0000-0000-0000-000000000000", "a b"],
            [None] * 4,
        ),
    ]
    for name, values, extra in cases:
        kind = get_kind(name)
        memo: Memo = {}
        for run in range(2):  # the second run reads the slow values from the memo
            norm, why = normalise_column(
                memo, name, kind, pa.array(values, pa.string()), pa.array(extra, pa.string())
            )
            expected, reasons = _per_value(kind, values, extra)
            assert norm.to_pylist() == expected, (name, run)
            assert [why.get(i) for i in range(len(values))] == reasons, (name, run)
