"""Documented event names and the schema of their properties.

The Segment e-commerce v2 spec (https://segment.com/docs/connections/spec/ecommerce/v2/) names the
shopping events; siyu adds its own names for messaging, community, referral and consent events.
Each name maps to a Pydantic model of its properties, registered through
``registry.event_schemas``; unknown event names are accepted with free-form properties.
Extra properties are kept (``extra="allow"``): the schema constrains what siyu reads, not what a
brand may send.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from siyu.collect.spec import Identifier, _id_to_str
from siyu.money import require_currency

if TYPE_CHECKING:
    from siyu.registry import Registry

NonNegativeMoney = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=4)]
Text = Annotated[str, BeforeValidator(_id_to_str), Field(max_length=500)]


class Properties(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, coerce_numbers_to_str=True)


class CurrencyMixin(Properties):
    currency: str | None = None

    @field_validator("currency")
    @classmethod
    def _iso(cls, value: str | None) -> str | None:
        return None if value is None else require_currency(value)


class Product(Properties):
    product_id: Identifier = None
    sku: Identifier = None
    name: Text | None = None
    category: Text | None = None
    brand: Text | None = None
    variant: Text | None = None
    price: Annotated[Decimal, Field(max_digits=18, decimal_places=4)] | None = None
    quantity: Annotated[int, Field(ge=0, le=1_000_000)] = 1
    coupon: Text | None = None
    url: str | None = None
    image_url: str | None = None


class ProductEvent(Product, CurrencyMixin):
    """Product Viewed, Product Added, Product Removed, Product Clicked."""


class OrderCompleted(CurrencyMixin):
    order_id: Annotated[str, BeforeValidator(_id_to_str), Field(min_length=1, max_length=200)]
    checkout_id: Identifier = None
    affiliation: Text | None = None
    total: NonNegativeMoney | None = None
    subtotal: NonNegativeMoney | None = None
    revenue: NonNegativeMoney | None = None
    shipping: NonNegativeMoney | None = None
    tax: NonNegativeMoney | None = None
    discount: NonNegativeMoney | None = None
    coupon: Text | None = None
    products: list[Product] = Field(default_factory=list, max_length=1000)


class OrderRefunded(CurrencyMixin):
    order_id: Annotated[str, BeforeValidator(_id_to_str), Field(min_length=1, max_length=200)]
    total: NonNegativeMoney | None = None
    products: list[Product] = Field(default_factory=list, max_length=1000)


class CheckoutStarted(CurrencyMixin):
    order_id: Identifier = None
    value: NonNegativeMoney | None = None
    revenue: NonNegativeMoney | None = None
    products: list[Product] = Field(default_factory=list, max_length=1000)


class CouponEvent(Properties):
    order_id: Identifier = None
    cart_id: Identifier = None
    coupon_id: Identifier = None
    coupon_name: Text | None = None
    discount: NonNegativeMoney | None = None


class MessageEvent(Properties):
    channel: Text
    message_id: Identifier = None
    campaign_id: Identifier = None


class EmailEvent(Properties):
    campaign_id: Identifier = None
    message_id: Identifier = None


class CommunityEvent(Properties):
    community: Text
    channel: Text | None = None


class ReferralEvent(Properties):
    referral_code: Text
    channel: Text | None = None


class ConsentUpdated(Properties):
    purpose: Literal["marketing", "transactional", "analytics", "profiling"]
    channel: Literal["email", "sms", "whatsapp", "push", "phone", "line", "wechat", "all"]
    status: Literal["granted", "denied", "withdrawn"]
    evidence: dict[str, Any] | str | None = None


# Name -> (schema, one-line doc). The docs page docs/events.md is checked against this table.
SEGMENT_ECOMMERCE: dict[str, tuple[type[Properties], str]] = {
    "Products Searched": (Properties, "The shopper searched the catalogue (query)."),
    "Product List Viewed": (Properties, "A category or list page was shown (list_id, products)."),
    "Product Clicked": (ProductEvent, "A product in a list was clicked."),
    "Product Viewed": (ProductEvent, "A product detail page was shown."),
    "Product Added": (ProductEvent, "A product was added to the cart (quantity)."),
    "Product Removed": (ProductEvent, "A product was removed from the cart."),
    "Cart Viewed": (CheckoutStarted, "The cart was shown (products)."),
    "Checkout Started": (CheckoutStarted, "The checkout began (order_id, value, products)."),
    "Payment Info Entered": (Properties, "Payment details were submitted (checkout_id)."),
    "Order Completed": (OrderCompleted, "An order was placed: totals, currency and products."),
    "Order Updated": (OrderCompleted, "An existing order changed."),
    "Order Refunded": (OrderRefunded, "Money was returned (total refunded, products)."),
    "Order Cancelled": (OrderRefunded, "An order was cancelled (counts as refunded in full)."),
    "Coupon Entered": (CouponEvent, "A coupon code was typed."),
    "Coupon Applied": (CouponEvent, "A coupon was accepted (coupon_id, discount)."),
    "Coupon Denied": (CouponEvent, "A coupon was refused (reason)."),
    "Coupon Removed": (CouponEvent, "A coupon was removed."),
    "Product Reviewed": (Properties, "The customer reviewed a product (rating, review_body)."),
}

SIYU_EVENTS: dict[str, tuple[type[Properties], str]] = {
    "Message Received": (MessageEvent, "A customer wrote to the brand (WhatsApp, LINE, DM...)."),
    "Message Sent": (MessageEvent, "The brand sent a message to the customer."),
    "Message Delivered": (MessageEvent, "The channel confirmed delivery."),
    "Message Read": (MessageEvent, "The channel reported the message as read."),
    "Message Failed": (MessageEvent, "Delivery failed (error_code, error_title)."),
    "Email Opened": (EmailEvent, "An email was opened (campaign_id)."),
    "Email Clicked": (EmailEvent, "A link in an email was clicked (campaign_id, url)."),
    "Email Bounced": (EmailEvent, "An email bounced (bounce_type)."),
    "Unsubscribed": (Properties, "The customer unsubscribed (channel, list)."),
    "Community Joined": (CommunityEvent, "The customer joined a community or group."),
    "Community Left": (CommunityEvent, "The customer left a community."),
    "Community Message Posted": (CommunityEvent, "The customer posted in a community."),
    "Referral Link Shared": (ReferralEvent, "A member shared their invite link or code."),
    "Referral Link Clicked": (ReferralEvent, "Somebody opened an invite link."),
    "Consent Updated": (
        ConsentUpdated,
        "Consent for a purpose and channel was granted, denied or withdrawn (evidence).",
    ),
    # Loyalty (siyu.loyalty.events.LOYALTY_EVENTS has the same names and docs).
    "Points Earned": (Properties, "Points were credited (points, reason, expires_at)."),
    "Points Redeemed": (Properties, "Points were spent (points, reason, reference)."),
    "Points Expired": (Properties, "A lot of points expired (points, lot)."),
    "Points Reversed": (Properties, "Points clawed back after a refund (points, shortfall)."),
    "Member Tier Changed": (Properties, "The member tier changed (from_tier, to_tier, rule)."),
    "Membership Started": (Properties, "A paid membership began (plan_id, ends_at)."),
    "Membership Renewed": (Properties, "A paid membership was extended (plan_id, ends_at)."),
    "Membership Lapsed": (Properties, "A paid membership ended without renewal (plan_id)."),
    "Membership Cancelled": (Properties, "A paid membership was cancelled (plan_id)."),
    "Coupon Issued": (Properties, "A coupon code was issued (code, campaign_id, expires_at)."),
    "Coupon Redeemed": (Properties, "A coupon was used on an order (code, order_id, discount)."),
    # Fission (siyu.fission.events.FISSION_EVENTS has the same names and docs).
    "Referral Created": (Properties, "A friend came through an invite code (referral_id, code)."),
    "Referral Qualified": (Properties, "The first order qualified (order_id, hold_until)."),
    "Referral Flagged": (Properties, "A qualified referral is held for review (reason)."),
    "Referral Approved": (Properties, "A flagged referral was approved on review (reason)."),
    "Referral Rewarded": (Properties, "Both sides' rewards were granted (referrer/friend_reward)."),
    "Referral Rejected": (Properties, "A referral was rejected (reason)."),
    "Group Buy Opened": (Properties, "A leader opened a group (group_id, campaign_id)."),
    "Group Buy Joined": (Properties, "A friend took a seat in a group (group_id, seat)."),
    "Group Buy Completed": (Properties, "A group closed (confirmed_price, refund_amount owed)."),
    "Group Buy Expired": (Properties, "A group ran out of time, voided (refund_amount owed)."),
    "Assist Given": (Properties, "A helper assisted a friend (campaign_id, target_id, local_day)."),
    "Assist Reward Unlocked": (Properties, "A target reached an assist threshold (threshold)."),
}

#: Events the brand or siyu produces about a customer, not things she did: a model of her
#: activity (churn labels and features) must not count them. Loyalty and fission events are
#: sent as the customer's own, so without this list a points expiry or a sync's "Points
#: Earned" made every member look active on the day it ran.
SYSTEM_EVENTS: tuple[str, ...] = (
    "Message Sent",
    "Message Delivered",
    "Message Read",
    "Message Failed",
    "Email Sent",
    "Email Delivered",
    "Email Bounced",
    "Points Earned",
    "Points Expired",
    "Points Reversed",
    "Member Tier Changed",
    "Membership Lapsed",
    "Coupon Issued",
    "Referral Created",
    "Referral Qualified",
    "Referral Flagged",
    "Referral Approved",
    "Referral Rewarded",
    "Referral Rejected",
    "Group Buy Completed",
    "Group Buy Expired",
    "Assist Reward Unlocked",
)


def own_act_sql(alias: str) -> str:
    """Whether an event (table ``alias``) is the customer's own act, in SQL: not one of
    :data:`SYSTEM_EVENTS`. The pipeline's seen times and One-ID's identifier seen times both
    use it, so a win-back message moves neither."""
    names = ", ".join("'" + name.replace("'", "''") + "'" for name in SYSTEM_EVENTS)
    return f"({alias}.event IS NULL OR {alias}.event NOT IN ({names}))"


ORDER_COMPLETED = "Order Completed"
ORDER_REFUNDED = "Order Refunded"
ORDER_CANCELLED = "Order Cancelled"
CONSENT_UPDATED = "Consent Updated"


def register(registry: Registry) -> None:
    """Register the built-in event schemas."""
    for name, (schema, _doc) in {**SEGMENT_ECOMMERCE, **SIYU_EVENTS}.items():
        registry.event_schemas.register(name, schema)
