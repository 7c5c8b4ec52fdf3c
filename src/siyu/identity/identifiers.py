"""The built-in identifier kinds, and :func:`register`, which adds them to a registry.

Each kind says how its values are spelled canonically and how much a shared value counts when
One-ID decides that two records are one person. The built-ins register through exactly the call a
plugin kind uses: ``registry.identifier_kinds.register(kind.name, kind)``.
"""

from __future__ import annotations

from siyu.identity import normalisers as n
from siyu.identity.blocking import (
    UNIVERSAL_BLOCKED_PATTERNS,
    default_blocked_patterns,
    is_blocked,
    normalise_many,
)
from siyu.identity.kind import IdentifierKind, InvalidIdentifier, get_kind
from siyu.identity.normalisers import NormaliseContext, NormaliseError, Normaliser
from siyu.registry import Registry

__all__ = [
    "BUILTIN_KINDS",
    "UNIVERSAL_BLOCKED_PATTERNS",
    "IdentifierKind",
    "InvalidIdentifier",
    "NormaliseContext",
    "NormaliseError",
    "Normaliser",
    "default_blocked_patterns",
    "get_kind",
    "is_blocked",
    "normalise_many",
    "register",
]

_EMAIL_BLOCKED = (
    r"^test@",
    r"@example\.(com|org|net)$",
    r"\.(test|example|invalid|localhost)$",
    r"^(null|none|undefined|noreply|no-reply|donotreply|do-not-reply)@",
)
_PHONE_BLOCKED = (r"^\+?1?0{7,}$", r"^\+?(\d)\1{6,}$")
_DEVICE_BLOCKED = (r"^0{8}-0{4}-0{4}-0{4}-0{12}$",)  # IDFA/GAID with ad tracking limited

USER_ID = IdentifierKind(
    name="user_id",
    description="The id a store or app gives a signed-in customer (Segment userId). Only unique "
    "within its source, so stored as 'source:id'.",
    normaliser=n.opaque(255, fold_uuid=False),
    is_person_level=True,
    merge_priority=10,
    max_per_customer=1,
    namespace_by_source=True,
)
SHOPIFY_CUSTOMER_ID = IdentifierKind(
    name="shopify_customer_id",
    description="Shopify's numeric customer id; a brand with regional stores has one per store.",
    normaliser=n.shopify_customer_id,
    is_person_level=True,
    merge_priority=15,
    max_per_customer=5,
)
EMAIL = IdentifierKind(
    name="email",
    description="An email address: trimmed, lower-cased, IDNA domain. Option fold_gmail also "
    "drops dots and +tags of Gmail addresses.",
    normaliser=n.email,
    is_person_level=True,
    merge_priority=20,
    max_per_customer=5,
    noun="address",
    blocked_patterns=_EMAIL_BLOCKED,
    options={"fold_gmail": False},
)
PHONE = IdentifierKind(
    name="phone",
    description="A phone number in E.164; national formats are read in the customer's market.",
    normaliser=n.phone,
    is_person_level=True,
    merge_priority=30,
    max_per_customer=3,
    uses_region=True,
    noun="number",
    blocked_patterns=_PHONE_BLOCKED,
)
WHATSAPP = IdentifierKind(
    name="whatsapp",
    description="A WhatsApp wa_id, stored as E.164 so that it equals the phone identity.",
    normaliser=n.whatsapp,
    is_person_level=True,
    merge_priority=31,
    max_per_customer=3,
    noun="number",
    same_values_as="phone",
    blocked_patterns=_PHONE_BLOCKED,
)
AMAZON_BUYER = IdentifierKind(
    name="amazon_buyer",
    description="An Amazon buyer's anonymised relay address (...@marketplace.amazon.<tld>); one "
    "per marketplace.",
    normaliser=n.amazon_buyer,
    is_person_level=True,
    merge_priority=40,
    max_per_customer=5,
    noun="relay address",
)
LINE_USER_ID = IdentifierKind(
    name="line_user_id",
    description="A LINE Messaging API user id ('U' + 32 hex), scoped to the brand's provider.",
    normaliser=n.line_user_id,
    is_person_level=True,
    merge_priority=50,
    max_per_customer=2,
)
TIKTOK_USER_ID = IdentifierKind(
    name="tiktok_user_id",
    description="A TikTok Shop buyer id or TikTok open_id (case-sensitive).",
    normaliser=n.tiktok_user_id,
    is_person_level=True,
    merge_priority=51,
    max_per_customer=2,
)
INSTAGRAM = IdentifierKind(
    name="instagram",
    description="An Instagram-scoped user id (IGSID, numeric), scoped to the brand's account.",
    normaliser=n.digits("IGSID", 1, 20),
    is_person_level=True,
    merge_priority=52,
    max_per_customer=3,
)
DISCORD_USER_ID = IdentifierKind(
    name="discord_user_id",
    description="A Discord user id (a snowflake of 17-20 digits).",
    normaliser=n.digits("Discord user id", 17, 20),
    is_person_level=True,
    merge_priority=53,
    max_per_customer=2,
)
DEVICE_ID = IdentifierKind(
    name="device_id",
    description="A mobile device or advertising id (IDFV, IDFA, GAID); shared and replaced, so "
    "weak evidence.",
    normaliser=n.opaque(128, fold_uuid=True),
    is_person_level=False,
    merge_priority=80,
    max_per_customer=None,
    blocked_patterns=_DEVICE_BLOCKED,
)
ANONYMOUS_ID = IdentifierKind(
    name="anonymous_id",
    description="A browser or app install id before sign-in (Segment anonymousId); weak evidence.",
    normaliser=n.opaque(255, fold_uuid=True),
    is_person_level=False,
    merge_priority=90,
    max_per_customer=None,
    blocked_patterns=_DEVICE_BLOCKED,
)

BUILTIN_KINDS: tuple[IdentifierKind, ...] = (
    USER_ID,
    SHOPIFY_CUSTOMER_ID,
    EMAIL,
    PHONE,
    WHATSAPP,
    AMAZON_BUYER,
    LINE_USER_ID,
    TIKTOK_USER_ID,
    INSTAGRAM,
    DISCORD_USER_ID,
    DEVICE_ID,
    ANONYMOUS_ID,
)


def register(registry: Registry) -> None:
    """Register the built-in kinds, through the same call a plugin kind uses."""
    for kind in BUILTIN_KINDS:
        registry.identifier_kinds.register(kind.name, kind)
