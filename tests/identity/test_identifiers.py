"""Identifier kinds: every normaliser, merge flags, blocked values, batches, registration."""

from __future__ import annotations

import pytest

from siyu.errors import ConfigError, InvalidInput, SiyuError
from siyu.identity import (
    BUILTIN_KINDS,
    IdentifierKind,
    InvalidIdentifier,
    NormaliseContext,
    NormaliseError,
    default_blocked_patterns,
    get_kind,
    is_blocked,
    normalise_many,
    register,
)
from siyu.identity import identifiers as ids
from siyu.registry import Registry

VALID = [
    # user_id: namespaced per source, case kept
    (ids.USER_ID, " 123 ", {"source": "Shopify"}, "shopify:123"),
    (ids.USER_ID, "shopify:123", {"source": "shopify"}, "shopify:123"),
    (ids.USER_ID, "woo:Abc-9", {}, "woo:Abc-9"),
    (ids.USER_ID, "AbC", {"source": "app"}, "app:AbC"),
    # email
    (ids.EMAIL, "  John.Doe+x@GMail.COM ", {}, "john.doe+x@gmail.com"),
    (ids.EMAIL, "mailto:Ana@Example.co.uk", {}, "ana@example.co.uk"),
    (ids.EMAIL, "user@Bücher.DE", {}, "user@xn--bcher-kva.de"),
    (ids.EMAIL, "ａｎａ＠ｓｈｏｐ．ｃｎ", {}, "ana@shop.cn"),  # full-width, from a Chinese IME
    (ids.EMAIL, "o'brien@shop.ie.", {}, "o'brien@shop.ie"),
    (ids.EMAIL, "用户@例子.中国", {}, "用户@xn--fsqu00a.xn--fiqs8s"),
    # amazon_buyer
    (ids.AMAZON_BUYER, "ABC123xyz@marketplace.amazon.com", {}, "abc123xyz@marketplace.amazon.com"),
    (ids.AMAZON_BUYER, "q1w2e3@Marketplace.Amazon.co.uk", {}, "q1w2e3@marketplace.amazon.co.uk"),
    (ids.AMAZON_BUYER, "z9@marketplace.amazon.de", {}, "z9@marketplace.amazon.de"),
    # numeric platform ids
    (ids.SHOPIFY_CUSTOMER_ID, "7208115499262", {}, "7208115499262"),
    (ids.SHOPIFY_CUSTOMER_ID, "gid://shopify/Customer/7208", {}, "7208"),
    (ids.INSTAGRAM, "1784140123456789", {}, "1784140123456789"),
    (ids.DISCORD_USER_ID, "80351110224678912", {}, "80351110224678912"),
    (ids.DISCORD_USER_ID, "1234567890123456789", {}, "1234567890123456789"),
    # text platform ids
    (ids.TIKTOK_USER_ID, "7494012345678901234", {}, "7494012345678901234"),
    (
        ids.TIKTOK_USER_ID,
        "-000OaE_Xsa0GrI3oSRJ2pWqQjlC0a8vGuE1",
        {},
        "-000OaE_Xsa0GrI3oSRJ2pWqQjlC0a8vGuE1",
    ),
    (ids.LINE_USER_ID, "U" + "4AF4980629" * 3 + "Ab", {}, "U" + "4af4980629" * 3 + "ab"),
    # weak ids: UUIDs fold case, other values are kept
    (
        ids.DEVICE_ID,
        "6D92078A-8246-4BA4-AE5B-76104861E7DC",
        {},
        "6d92078a-8246-4ba4-ae5b-76104861e7dc",
    ),
    (ids.ANONYMOUS_ID, "\u200bAJS-xyz ", {}, "AJS-xyz"),
    # whatsapp
    (ids.WHATSAPP, "6281234567890", {}, "+6281234567890"),
    (ids.WHATSAPP, "+6281234567890", {}, "+6281234567890"),
]


@pytest.mark.parametrize(("kind", "raw", "kwargs", "expected"), VALID)
def test_normalise_valid(
    kind: IdentifierKind, raw: str, kwargs: dict[str, str], expected: str
) -> None:
    assert kind.normalise(raw, **kwargs) == expected


INVALID = [
    (ids.USER_ID, "123", {}, "no source was given"),
    (ids.USER_ID, "shopify:", {"source": "shopify"}, "empty after its source prefix"),
    (ids.USER_ID, "1", {"source": "Shop ify"}, "not a valid source name"),
    (ids.USER_ID, "a\x00b", {"source": "app"}, "control characters"),
    (ids.EMAIL, "ana.example.com", {}, "exactly one '@'"),
    (ids.EMAIL, "a@b@c.com", {}, "exactly one '@'"),
    (ids.EMAIL, "a..b@x.com", {}, "misplaced dots"),
    (ids.EMAIL, ".a@x.com", {}, "misplaced dots"),
    (ids.EMAIL, "ana smith@x.com", {}, "spaces"),
    (ids.EMAIL, "ana\u2028smith@x.com", {}, "spaces"),
    (ids.EMAIL, "ana@localhost", {}, "no dot"),
    (ids.EMAIL, "ana@-x.com", {}, "not a valid host name"),
    (ids.EMAIL, "ana@[10.0.0.1]", {}, "IP-address"),
    (ids.EMAIL, "ana@x.123", {}, "ends in a number"),
    (ids.EMAIL, "@x.com", {}, "both sides"),
    (ids.EMAIL, "a" * 65 + "@x.com", {}, "longer than 64"),
    (ids.AMAZON_BUYER, "bob@gmail.com", {}, "kind 'email'"),
    (ids.AMAZON_BUYER, "x@marketplace.amazon.example", {}, "known Amazon marketplace"),
    (ids.SHOPIFY_CUSTOMER_ID, "1.23457E+12", {}, "spreadsheet"),
    (ids.SHOPIFY_CUSTOMER_ID, "7208.0", {}, "spreadsheet"),
    (ids.SHOPIFY_CUSTOMER_ID, "abc", {}, "digits only"),
    (ids.SHOPIFY_CUSTOMER_ID, "0123", {}, "does not start with 0"),
    (ids.INSTAGRAM, "ig_123", {}, "digits only"),
    (ids.DISCORD_USER_ID, "1234", {}, "17-20 digits, this has 4"),
    (ids.DISCORD_USER_ID, "123456789012345678901", {}, "17-20 digits"),
    (ids.TIKTOK_USER_ID, "has space", {}, "TikTok id"),
    (ids.TIKTOK_USER_ID, "---", {}, "TikTok id"),
    (ids.LINE_USER_ID, "U123", {}, "32 hexadecimal"),
    (ids.LINE_USER_ID, "X" + "a" * 32, {}, "32 hexadecimal"),
    (ids.ANONYMOUS_ID, "x" * 256, {}, "longer than 255"),
    (ids.ANONYMOUS_ID, "x" * 2000, {}, "longer than 1024"),
    (ids.DEVICE_ID, "   ", {}, "is empty"),
    (ids.WHATSAPP, "62 812 3456 7890", {}, "digits only"),
    (ids.WHATSAPP, "123", {}, "7 to 15 digits"),
    (ids.WHATSAPP, "9991234567", {}, "unknown country code"),
]


@pytest.mark.parametrize(("kind", "raw", "kwargs", "reason"), INVALID)
def test_normalise_invalid(
    kind: IdentifierKind, raw: str, kwargs: dict[str, str], reason: str
) -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        kind.normalise(raw, **kwargs)
    assert reason in caught.value.reason
    assert caught.value.kind == kind.name


PHONES = [
    ("US", "(202) 555-0143", "+12025550143"),
    ("US", "1-202-555-0143", "+12025550143"),
    ("US", "011 44 7400 123456", "+447400123456"),
    (None, "+1 202-555-0143 ext. 12", "+12025550143"),
    ("GB", "07400 123456", "+447400123456"),
    (None, "+44 (0)7400 123456", "+447400123456"),
    (None, "0044 7400 123456", "+447400123456"),
    ("uk", "07400-123-456", "+447400123456"),  # 'UK' is read as GB
    ("DE", "0151 23456789", "+4915123456789"),
    ("DE", "030 1234567", "+49301234567"),
    ("FR", "06 12 34 56 78", "+33612345678"),
    ("FR", "+33 6 12 34 56 78", "+33612345678"),
    ("ID", "0812-3456-7890", "+6281234567890"),
    ("ID", "+62 812 3456 7890", "+6281234567890"),
    ("TH", "081 234 5678", "+66812345678"),
    ("TH", "+66 81 234 5678", "+66812345678"),
    ("PH", "0917 123 4567", "+639171234567"),
    ("PH", "+63 (917) 123-4567", "+639171234567"),
    ("MY", "012-345 6789", "+60123456789"),
    ("MY", "+60 12-345 6789", "+60123456789"),
    ("BR", "11 91234-5678", "+5511912345678"),
    ("BR", "(11) 91234-5678", "+5511912345678"),
    (None, "+55 11 91234 5678", "+5511912345678"),
    ("BR", "(11) 8765-4321", "+5511987654321"),  # pre-2016 eight-digit mobile
    ("MX", "55 1234 5678", "+525512345678"),
    (None, "+52 1 55 1234 5678", "+525512345678"),  # the retired mobile '1'
    ("SA", "050 123 4567", "+966501234567"),
    ("SA", "00966 50 123 4567", "+966501234567"),
    ("US", "００９６６５０１２３４５６７", "+966501234567"),  # full-width digits
]


@pytest.mark.parametrize(("region", "raw", "expected"), PHONES)
def test_phone_international_formats(region: str | None, raw: str, expected: str) -> None:
    assert ids.PHONE.normalise(raw, region=region) == expected


BAD_PHONES = [
    ("US", "+1 555", "too short"),
    ("GB", "07700 900123", "no such number range"),  # possible length, unassigned (drama range)
    ("ID", "0812", "too short"),
    (None, "+999 1234567", "unknown country code"),
    (None, "0812 3456 7890", "no country code and no region"),
    ("US", "call +1 202 555 0143", "digits, spaces"),
    ("GB", "+44 7400 123456 789 12345", "too long"),
    ("XX", "0812-3456-7890", "unknown region 'XX'"),
    ("IDN", "0812-3456-7890", "not an ISO 3166 alpha-2 code"),
]


@pytest.mark.parametrize(("region", "raw", "reason"), BAD_PHONES)
def test_phone_rejects_invalid_numbers(region: str | None, raw: str, reason: str) -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        ids.PHONE.normalise(raw, region=region)
    assert reason in caught.value.reason


@pytest.mark.parametrize(
    ("wa_id", "region", "national"),
    [
        ("12025550143", "US", "(202) 555-0143"),
        ("447400123456", "GB", "07400 123456"),
        ("6281234567890", "ID", "0812-3456-7890"),
        ("66812345678", "TH", "081 234 5678"),
        ("966501234567", "SA", "050 123 4567"),
        ("5511912345678", "BR", "(11) 91234-5678"),
        ("551187654321", "BR", "(11) 98765-4321"),  # old account: wa_id lacks the ninth digit
        ("5215512345678", "MX", "55 1234 5678"),  # WhatsApp keeps Mexico's old '1'
    ],
)
def test_whatsapp_wa_id_equals_phone_identity(wa_id: str, region: str, national: str) -> None:
    assert ids.WHATSAPP.normalise(wa_id) == ids.PHONE.normalise(national, region=region)
    assert ids.WHATSAPP.same_values_as == "phone"


def test_gmail_folding_only_when_configured() -> None:
    raw = "John.Doe+promo@GoogleMail.com"
    assert ids.EMAIL.normalise(raw) == "john.doe+promo@googlemail.com"
    folding = ids.EMAIL.with_options(fold_gmail=True)
    assert folding.normalise(raw) == "johndoe@gmail.com"
    assert folding.normalise("j.o.h.n.doe@gmail.com") == "johndoe@gmail.com"
    # other providers keep dots and tags: they may be different mailboxes there
    assert folding.normalise("john.doe+x@outlook.com") == "john.doe+x@outlook.com"
    assert ids.EMAIL.options["fold_gmail"] is False  # the built-in is unchanged
    with pytest.raises(InvalidIdentifier, match="'\\+' tags"):
        folding.normalise("+tag@gmail.com")


def test_kind_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="no option 'fold_outlook'"):
        ids.EMAIL.with_options(fold_outlook=True)
    with pytest.raises(ConfigError, match="must be bool"):
        ids.EMAIL.with_options(fold_gmail="yes")
    with pytest.raises(TypeError):
        ids.EMAIL.options["fold_gmail"] = True  # type: ignore[index]


def test_error_names_kind_and_reason() -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        ids.PHONE.normalise("+1 555", region="US")
    error = caught.value
    assert str(error) == "phone '+1 555' is not a valid number for region US: too short"
    assert isinstance(error, InvalidInput)
    assert error.status == 400
    assert error.envelope()["error"]["details"] == {
        "kind": "phone",
        "reason": "too short",
        "region": "US",
    }
    with pytest.raises(InvalidIdentifier) as no_region:
        ids.PHONE.normalise("0812 3456 7890")
    assert "+<country code>" in no_region.value.hint
    with pytest.raises(InvalidIdentifier, match="email 'bob' is not a valid address"):
        ids.EMAIL.normalise("bob", region="US")  # region is irrelevant to email, not shown
    with pytest.raises(InvalidIdentifier, match="must be text, not int"):
        ids.SHOPIFY_CUSTOMER_ID.normalise(123)  # type: ignore[arg-type]


def test_merge_flags_of_builtins() -> None:
    assert ids.EMAIL.is_person_level
    assert ids.PHONE.is_person_level
    assert not ids.ANONYMOUS_ID.is_person_level
    assert not ids.DEVICE_ID.is_person_level
    assert ids.USER_ID.namespace_by_source
    assert not any(k.namespace_by_source for k in BUILTIN_KINDS if k is not ids.USER_ID)
    assert ids.USER_ID.max_per_customer == 1
    assert ids.EMAIL.max_per_customer == 5
    assert ids.PHONE.max_per_customer == 3
    assert ids.ANONYMOUS_ID.max_per_customer is None
    priorities = [k.merge_priority for k in BUILTIN_KINDS]
    assert len(set(priorities)) == len(priorities), "ties would make merges order-dependent"
    assert ids.USER_ID.merge_priority < ids.EMAIL.merge_priority < ids.PHONE.merge_priority
    assert ids.PHONE.merge_priority < ids.ANONYMOUS_ID.merge_priority
    assert {k.name for k in BUILTIN_KINDS if k.uses_region} == {"phone"}


@pytest.mark.parametrize(
    ("kind", "value", "pattern"),
    [
        (ids.USER_ID, "shopify:0", r"^0+$"),
        (ids.USER_ID, "app:NULL", r"^null$"),
        (ids.ANONYMOUS_ID, "undefined", r"^undefined$"),
        (ids.ANONYMOUS_ID, "anonymous", r"^anonymous$"),
        (ids.DEVICE_ID, "00000000-0000-0000-0000-000000000000", r"^0{8}-0{4}-0{4}-0{4}-0{12}$"),
        (ids.EMAIL, "test@shop.com", r"^test@"),
        (ids.EMAIL, "ana@example.org", r"@example\.(com|org|net)$"),
        (
            ids.EMAIL,
            "noreply@shop.com",
            r"^(null|none|undefined|noreply|no-reply|donotreply|do-not-reply)@",
        ),
        (ids.PHONE, "+10000000000", r"^\+?1?0{7,}$"),
        (ids.PHONE, "+11111111111", r"^\+?(\d)\1{6,}$"),
        (ids.WHATSAPP, "9999999", r"^\+?(\d)\1{6,}$"),
    ],
)
def test_blocked_values_report_their_pattern(
    kind: IdentifierKind, value: str, pattern: str
) -> None:
    assert is_blocked(kind, value) == pattern


def test_blocked_values_are_configurable() -> None:
    assert is_blocked(ids.EMAIL, "ana@shop.com") is None
    assert is_blocked(ids.PHONE, "+66888888888") is None  # a prized 'lucky' number, not a fake
    mine = (*default_blocked_patterns(ids.EMAIL), r"@ourbrand\.com$")
    assert is_blocked(ids.EMAIL, "ops@ourbrand.com", mine) == r"@ourbrand\.com$"
    assert is_blocked(ids.EMAIL, "test@shop.com", mine) == r"^test@"
    assert is_blocked(ids.EMAIL, "test@shop.com", []) is None  # an empty list turns blocking off
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        is_blocked(ids.EMAIL, "a@b.com", ["(unclosed"])


def test_normalise_many_aligns_values_and_reasons() -> None:
    values = ["0812-3456-7890", "+1 555", "0812 3456 7890", "07400 123456"]
    out, reasons = normalise_many(ids.PHONE, values, region=["ID", "US", "ID", "GB"])
    assert out == ["+6281234567890", None, "+6281234567890", "+447400123456"]
    assert reasons == [
        None,
        "phone '+1 555' is not a valid number for region US: too short",
        None,
        None,
    ]
    out, reasons = normalise_many(ids.EMAIL, ["Test@Shop.com", "ana@shop.com"])
    assert out == [None, "ana@shop.com"]
    assert reasons == ["email 'test@shop.com' is blocked by pattern '^test@'", None]
    unchecked, _ = normalise_many(ids.EMAIL, ["Test@Shop.com"], check_blocked=False)
    assert unchecked == ["test@shop.com"]
    with pytest.raises(InvalidInput, match="2 values but 1 regions"):
        normalise_many(ids.PHONE, ["1", "2"], region=["US"])


def _fresh() -> Registry:
    registry = Registry()
    register(registry)
    return registry


def test_builtins_register_through_the_registry() -> None:
    registry = _fresh()
    assert registry.identifier_kinds.names() == sorted(k.name for k in BUILTIN_KINDS)
    assert get_kind("email", registry) is ids.EMAIL
    register(registry)  # registering the same built-ins again is harmless
    out, _ = normalise_many("user_id", ["42"], source="woo", registry=registry)
    assert out == ["woo:42"]


def _membership(value: str, ctx: NormaliseContext) -> str:
    if not value.upper().startswith("M-"):
        raise NormaliseError("a membership card number starts with 'M-'")
    return value.upper()


def test_plugin_kind_registers_through_the_same_point() -> None:
    registry = _fresh()
    card = IdentifierKind(
        name="membership_card",
        description="An offline store membership card.",
        normaliser=_membership,
        is_person_level=True,
        merge_priority=25,
        max_per_customer=1,
    )
    registry.identifier_kinds.register(card.name, card)
    assert get_kind("membership_card", registry).normalise(" m-001 ") == "M-001"
    assert is_blocked("membership_card", "M-001", registry=registry) is None
    with pytest.raises(InvalidIdentifier, match=r"membership_card 'x' .*starts with 'M-'"):
        card.normalise("x")
    clash = IdentifierKind(
        name="email",
        description="Another email.",
        normaliser=_membership,
        is_person_level=True,
        merge_priority=1,
        max_per_customer=1,
    )
    with pytest.raises(SiyuError, match="identifier kind 'email' is already registered"):
        registry.identifier_kinds.register(clash.name, clash)
    registry.identifier_kinds.register(clash.name, clash, replace=True)
    assert get_kind("email", registry) is clash
    with pytest.raises(SiyuError, match="Unknown identifier kind 'fax'"):
        get_kind("fax", registry)


def _kind(name: str, max_per_customer: int | None = 1, patterns: tuple[str, ...] = ()) -> None:
    IdentifierKind(
        name=name,
        description="",
        normaliser=_membership,
        is_person_level=True,
        merge_priority=1,
        max_per_customer=max_per_customer,
        blocked_patterns=patterns,
    )


def test_kind_definitions_are_validated() -> None:
    with pytest.raises(ConfigError, match="snake_case"):
        _kind("Fax Number")
    with pytest.raises(ConfigError, match="max_per_customer"):
        _kind("fax", max_per_customer=0)
    with pytest.raises(ConfigError, match="regular expression"):
        _kind("fax", patterns=("[",))


def test_blocked_many_screens_as_is_blocked_does() -> None:
    """The column-wise screen (RE2) flags exactly what ``is_blocked`` finds, value by value."""
    from siyu.identity.blocking import blocked_many, is_blocked

    cases = {
        "email": ["test@x.com", "ann@example.com", "a@b.test", "NOREPLY@x.co", "ann@shop.co",
                  "ann@shop.co\n", "ü@example.com", "null@x.io", "a@b.invalid"],
        "phone": ["+10000000000", "+4477777777", "+447777777", "+447700900123", "+11111111",
                  "+٠٠٠٠٠٠٠٠"],
        "user_id": ["shopify:0", "shopify:null", "amazon:A1", "web:NONE", "x:undefined\n"],
        "anonymous_id": ["00000000-0000-0000-0000-000000000000", "guest", "Guest", "abc", "n/a"],
    }  # fmt: skip
    for kind, values in cases.items():
        assert blocked_many(kind, values) == [is_blocked(kind, v) for v in values], kind
