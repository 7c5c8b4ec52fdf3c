"""The normalisers of the built-in identifier kinds.

A normaliser turns one raw value into the single canonical spelling that the identity graph
compares, or raises :class:`NormaliseError` with a reason a person can act on. Two raw spellings
of the same identifier must come out equal (that is what lets One-ID merge them), and normalising
a normalised value must return it unchanged (values are re-normalised when read back or replayed).

Normalisers receive a value that is already trimmed, free of zero-width characters and non-empty
(:meth:`siyu.identity.IdentifierKind.normalise` does that once for every kind), plus a
:class:`NormaliseContext` carrying the customer's market region, the source and the kind options.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, ValidationResult


class NormaliseError(Exception):
    """Raised by a normaliser: ``reason`` says what is wrong, ``hint`` what to do about it."""

    def __init__(self, reason: str, hint: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint


@dataclass(frozen=True)
class NormaliseContext:
    """What a normaliser may use besides the value itself."""

    region: str | None = None
    """ISO 3166 alpha-2 code of the customer's market (upper case), for national phone formats."""
    source: str | None = None
    """Where the value came from ('shopify', 'amazon', ...), already lower-cased."""
    options: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    """The kind's options (e.g. ``fold_gmail``), defaults merged with the workspace's choices."""


Normaliser = Callable[[str, NormaliseContext], str]

_UUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def opaque(max_length: int, *, fold_uuid: bool) -> Normaliser:
    """A normaliser for ids siyu cannot interpret: keep them exactly, but refuse junk.

    Case is kept because systems such as Segment treat ``userId`` as case-sensitive. UUIDs are
    the exception when ``fold_uuid``: RFC 4122 defines them case-insensitively, and iOS reports
    IDFAs in upper case where web SDKs send lower case, which would split one device in two.
    """

    def normalise(value: str, ctx: NormaliseContext) -> str:
        if _CONTROL.search(value):
            raise NormaliseError("contains control characters")
        if len(value) > max_length:
            raise NormaliseError(f"is longer than {max_length} characters")
        if fold_uuid and _UUID.match(value):
            return value.lower()
        return value

    normalise.fast = ("opaque", max_length, fold_uuid)  # type: ignore[attr-defined]
    return normalise


def digits(label: str, min_digits: int, max_digits: int) -> Normaliser:
    """A normaliser for numeric platform ids (Shopify, Instagram, Discord).

    Spreadsheets turn long ids into ``1.23457E+12`` or ``123.0``; such values are rejected with a
    hint rather than silently rounded, since a rounded id points at another customer.
    """

    def normalise(value: str, ctx: NormaliseContext) -> str:
        value = unicodedata.normalize("NFKC", value)
        if re.fullmatch(r"\d+\.0+|[\d.]+[eE]\+?\d+", value):
            raise NormaliseError(
                "looks like a spreadsheet number, not an id",
                hint="Export the column as text so that long ids keep every digit.",
            )
        if not value.isascii() or not value.isdigit():
            raise NormaliseError(f"a {label} has digits only")
        if value[0] == "0":
            raise NormaliseError(f"a {label} does not start with 0")
        if not min_digits <= len(value) <= max_digits:
            span = f"{min_digits}-{max_digits}" if min_digits != max_digits else str(min_digits)
            raise NormaliseError(f"a {label} has {span} digits, this has {len(value)}")
        return value

    normalise.fast = ("digits", min_digits, max_digits)  # type: ignore[attr-defined]
    return normalise


_SHOPIFY_GID = re.compile(r"^gid://shopify/Customer/(\d+)$", re.IGNORECASE)
_shopify_digits = digits("Shopify customer id", 1, 20)


def shopify_customer_id(value: str, ctx: NormaliseContext) -> str:
    """Numeric id; the Admin GraphQL form ``gid://shopify/Customer/123`` is accepted as ``123``."""
    match = _SHOPIFY_GID.match(value)
    return _shopify_digits(match.group(1) if match else value, ctx)


shopify_customer_id.fast = ("digits", 1, 20)  # type: ignore[attr-defined]


_TIKTOK = re.compile(r"^[A-Za-z0-9._=\-]{1,128}$")


def tiktok_user_id(value: str, ctx: NormaliseContext) -> str:
    """TikTok Shop buyer ids are numeric, Login Kit open_ids are URL-safe text such as
    ``-000OaE_Xsa0...``; both are case-sensitive, so the value is only checked, never folded."""
    if not _TIKTOK.match(value) or not re.search(r"[A-Za-z0-9]", value):
        raise NormaliseError("a TikTok id has letters, digits, '.', '_', '-' and '=' only (<=128)")
    return value


tiktok_user_id.fast = ("pattern", _TIKTOK.pattern, "[A-Za-z0-9]")  # type: ignore[attr-defined]


_LINE = re.compile(r"^[Uu]([0-9a-fA-F]{32})$")


def line_user_id(value: str, ctx: NormaliseContext) -> str:
    """LINE Messaging API user ids: 'U' followed by 32 hex digits (LINE sends lower-case hex)."""
    match = _LINE.match(value)
    if not match:
        raise NormaliseError("a LINE user id is 'U' followed by 32 hexadecimal digits")
    return "U" + match.group(1).lower()


# --- email --------------------------------------------------------------------------------------

_ATEXT = r"[a-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]"
_LOCAL = re.compile(rf"^{_ATEXT}+(?:\.{_ATEXT}+)*$")
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?$")
_GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})


def _is_word(char: str) -> bool:
    """Non-ASCII letters, marks and digits are allowed (RFC 6531 addresses such as 用户@例子.中国);
    other non-ASCII characters (separators, symbols) are not."""
    return unicodedata.category(char)[0] in "LMN"


def _email_domain(domain: str) -> str:
    if domain.startswith("["):
        raise NormaliseError("IP-address domains are not accepted")
    if not domain.isascii():
        try:
            # The stdlib codec is IDNA 2003 (maps 'ß' to 'ss'); good enough for matching.
            domain = domain.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise NormaliseError(
                "the domain is not a valid internationalised domain name"
            ) from None
    labels = domain.split(".")
    if len(labels) < 2:
        raise NormaliseError("the domain has no dot (e.g. 'example.com')")
    if len(domain) > 253 or not all(_LABEL.match(label) for label in labels):
        raise NormaliseError("the domain is not a valid host name")
    if labels[-1].isdigit():
        raise NormaliseError("the domain ends in a number")
    return domain


def email(value: str, ctx: NormaliseContext) -> str:
    """Trim, lower-case, IDNA-encode the domain and check the syntax (RFC 5321 dot-atom).

    Lower-casing the local part is technically lossy but matches what every large mailbox
    provider does, and customers type their address differently on each store. With the kind
    option ``fold_gmail`` Gmail addresses also lose dots and ``+tags`` in the local part (Gmail
    ignores both); it is off by default because it joins addresses that other providers treat as
    different people, and a workspace should choose it knowingly.
    """
    value = unicodedata.normalize("NFKC", value).strip().lower()
    if value.startswith("mailto:"):
        value = value[len("mailto:") :].strip()
    if value.count("@") != 1:
        raise NormaliseError("an email address has exactly one '@'")
    local, domain = value.split("@")
    if not local or not domain:
        raise NormaliseError("an email address has text on both sides of '@'")
    if len(local) > 64:
        raise NormaliseError("the part before '@' is longer than 64 characters")
    if not _LOCAL.match(local) or not all(c.isascii() or _is_word(c) for c in local):
        raise NormaliseError("the part before '@' has spaces, quotes or misplaced dots")
    domain = _email_domain(domain.rstrip("."))
    if ctx.options.get("fold_gmail") and domain in _GMAIL_DOMAINS:
        local = local.split("+", 1)[0].replace(".", "")
        domain = "gmail.com"
        if not local:
            raise NormaliseError("nothing is left of the Gmail address once '+' tags are removed")
    address = f"{local}@{domain}"
    if len(address) > 254:
        raise NormaliseError("an email address has at most 254 characters")
    return address


_AMAZON_RELAY = re.compile(
    r"^marketplace\.amazon\.(?:com|ca|com\.mx|com\.br|co\.uk|de|fr|it|es|nl|se|pl|com\.be|ie"
    r"|com\.tr|ae|sa|eg|in|co\.jp|sg|com\.au)$"
)


def amazon_buyer(value: str, ctx: NormaliseContext) -> str:
    """An Amazon buyer's anonymised relay address (``...@marketplace.amazon.<tld>``).

    Relay addresses reach the buyer only through Amazon's messaging rules, so they are kept apart
    from real email addresses; a real address given here is rejected rather than mixed in.
    """
    address = email(value, NormaliseContext(region=ctx.region, source=ctx.source))
    domain = address.rsplit("@", 1)[1]
    if domain.startswith("marketplace.amazon.") and not _AMAZON_RELAY.match(domain):
        raise NormaliseError(f"'{domain}' is not a known Amazon marketplace relay domain")
    if not _AMAZON_RELAY.match(domain):
        raise NormaliseError(
            "a customer's own address, not an Amazon relay (…@marketplace.amazon.<tld>); "
            "register it as kind 'email'",
            hint="Send own addresses as kind 'email' and relay addresses as 'amazon_buyer'.",
        )
    return address


# --- phone --------------------------------------------------------------------------------------

_EXTENSION = re.compile(r"\s*(?:ext\.?|extension|x|#)\s*\d{1,7}$", re.IGNORECASE)
_PHONE_CHARS = re.compile(r"^\+?[\d\s()\-./]+$")
_POSSIBLE_REASONS = {
    ValidationResult.TOO_SHORT: "too short",
    ValidationResult.TOO_LONG: "too long",
    ValidationResult.INVALID_LENGTH: "wrong number of digits for the country",
    ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "a local number without its area code",
}
_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
    NumberParseException.NOT_A_NUMBER: "not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}
_INTERNATIONAL_HINT = "Write it as +<country code><number>, or give the customer's market region."


def _fix_legacy_mobile(number: phonenumbers.PhoneNumber) -> None:
    """Rewrite two retired mobile formats that customers and WhatsApp still send.

    Mexico dropped the '1' after +52 for mobiles in 2019; Brazil added a ninth digit to mobiles
    by 2016, but older WhatsApp accounts still report the eight-digit wa_id.
    """
    national = str(number.national_number)
    if number.country_code == 52 and len(national) == 11 and national[0] == "1":
        number.national_number = int(national[1:])
    elif number.country_code == 55 and len(national) == 10 and national[2] in "6789":
        number.national_number = int(national[:2] + "9" + national[2:])


def _e164(text: str, region: str | None) -> str:
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        raise NormaliseError(_PARSE_REASONS.get(exc.error_type, "not a phone number")) from None
    _fix_legacy_mobile(number)
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible != ValidationResult.IS_POSSIBLE:
        raise NormaliseError(_POSSIBLE_REASONS.get(possible, "not a possible number"))
    if not phonenumbers.is_valid_number(number):
        raise NormaliseError("the length is possible but no such number range is assigned")
    return str(phonenumbers.format_number(number, PhoneNumberFormat.E164))


def phone(value: str, ctx: NormaliseContext) -> str:
    """E.164 (``+6281234567890``) via libphonenumber's metadata.

    National formats (Indonesian ``0812-...``, UK ``07...``, Brazilian ``(11) 9....-....``) need
    the customer's market as ``region``; the '00' international prefix is read as '+' whatever
    the region, since no national number starts with 00. Numbers that have a possible length but
    no assigned range are rejected: a made-up number would merge strangers. An extension is
    dropped (it is not part of the person's number).
    """
    text = _EXTENSION.sub("", unicodedata.normalize("NFKC", value))
    if not _PHONE_CHARS.match(text):
        raise NormaliseError(
            "a phone number has digits, spaces, '+', '-', '.', '/' and brackets only"
        )
    text = re.sub(r"^00", "+", text)
    if ctx.region is not None and ctx.region not in phonenumbers.SUPPORTED_REGIONS:
        raise NormaliseError(
            f"unknown region '{ctx.region}'", hint="Use an ISO 3166 code such as US."
        )
    if not text.startswith("+") and ctx.region is None:
        raise NormaliseError(
            "no country code and no region to read it in", hint=_INTERNATIONAL_HINT
        )
    return _e164(text, ctx.region)


def whatsapp(value: str, ctx: NormaliseContext) -> str:
    """A WhatsApp ``wa_id`` (digits, international, no '+') as E.164, equal to the phone identity.

    The Cloud API sends ``wa_id`` as bare digits; prefixing '+' and validating makes it the same
    value the ``phone`` kind produces, so a WhatsApp contact joins the customer who gave that
    number at checkout. A leading '+' is accepted so that normalised values normalise to themselves.
    """
    digits_only = unicodedata.normalize("NFKC", value).removeprefix("+")
    if not digits_only.isascii() or not digits_only.isdigit():
        raise NormaliseError(
            "a wa_id has digits only: the international number without '+' or spaces"
        )
    if not 7 <= len(digits_only) <= 15:
        raise NormaliseError("a wa_id has 7 to 15 digits")
    return _e164("+" + digits_only, None)
