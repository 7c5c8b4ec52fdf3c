"""The built-in importers: each vendor's documented export columns mapped onto canonical
fields. Where a vendor renamed a column over the years, every known name is listed."""

from __future__ import annotations

from siyu.collect.importers.customers import CustomerSpec
from siyu.collect.importers.orders import DEFAULT_STATUSES, OrderSpec

SHOPIFY_ORDERS = OrderSpec(
    name="shopify-orders",
    vendor="shopify",
    description="Shopify Admin > Orders > Export (CSV). One row per line item; only the first "
    "row of an order carries its totals, status, customer and marketing consent.",
    delimiter=",",
    columns={
        "order_id": ("Id", "Name"),
        "created_at": ("Created at",),
        "cancelled_at": ("Cancelled at",),
        "status": ("Financial Status",),
        "email": ("Email",),
        "phone": ("Phone", "Billing Phone"),
        "first_name": ("Billing Name",),
        "country": ("Billing Country", "Shipping Country"),
        "currency": ("Currency",),
        "total": ("Total",),
        "subtotal": ("Subtotal",),
        "shipping": ("Shipping",),
        "tax": ("Taxes",),
        "discount": ("Discount Amount",),
        "coupon": ("Discount Code",),
        "refunded": ("Refunded Amount",),
        "accepts_email": ("Accepts Email Marketing", "Accepts Marketing"),
        "accepts_sms": ("Accepts SMS Marketing",),
        "line_name": ("Lineitem name",),
        "line_sku": ("Lineitem sku",),
        "line_price": ("Lineitem price",),
        "line_quantity": ("Lineitem quantity",),
    },
)

SHOPIFY_CUSTOMERS = CustomerSpec(
    name="shopify-customers",
    vendor="shopify",
    description="Shopify Admin > Customers > Export (CSV). One row per customer.",
    delimiter=",",
    columns={
        "user_id": ("Customer ID",),
        "email": ("Email",),
        "phone": ("Phone", "Default Address Phone"),
        "first_name": ("First Name",),
        "last_name": ("Last Name",),
        "country": ("Default Address Country Code", "Country Code"),
        "city": ("Default Address City", "City"),
        "tags": ("Tags",),
        "accepts_email": ("Accepts Email Marketing", "Accepts Marketing"),
        "accepts_sms": ("Accepts SMS Marketing",),
        "total_spent": ("Total Spent",),
        "orders_count": ("Total Orders",),
    },
)

AMAZON_ORDERS = OrderSpec(
    name="amazon-orders",
    vendor="amazon",
    description="Amazon Seller Central All Orders report (tab-separated flat file). One row "
    "per item; amounts are per item and summed per order; buyer e-mails are relay addresses.",
    delimiter="\t",
    columns={
        "order_id": ("amazon-order-id",),
        "created_at": ("purchase-date",),
        "status": ("order-status",),
        "email": ("buyer-email",),
        "phone": ("buyer-phone-number",),
        "first_name": ("buyer-name",),
        "country": ("ship-country",),
        "currency": ("currency",),
        "line_name": ("product-name",),
        "line_sku": ("sku",),
        "line_product_id": ("asin",),
        "line_price": ("item-price",),
        "line_quantity": ("quantity", "quantity-purchased"),
        "coupon": ("promotion-ids",),
    },
    totals="sum",
    total_parts={
        "item-price": 1,
        "item-tax": 1,
        "shipping-price": 1,
        "shipping-tax": 1,
        "gift-wrap-price": 1,
        "gift-wrap-tax": 1,
        "item-promotion-discount": -1,
        "ship-promotion-discount": -1,
    },
    line_price_is_total=True,
)

WOOCOMMERCE_ORDERS = OrderSpec(
    name="woocommerce-orders",
    vendor="woocommerce",
    description="WooCommerce order export (Customer/Order CSV Export, one row per line item; "
    "order columns repeated on each row). Dates are in the shop's time zone (--timezone).",
    delimiter=",",
    columns={
        "order_id": ("Order ID", "order_id", "Order Number"),
        "created_at": ("Order Date", "date", "order_date"),
        "status": ("Order Status", "status"),
        "email": ("Billing Email", "billing_email", "Customer Email"),
        "phone": ("Billing Phone", "billing_phone"),
        "user_id": ("Customer User ID", "customer_id"),
        "first_name": ("Billing First Name", "billing_first_name"),
        "last_name": ("Billing Last Name", "billing_last_name"),
        "country": ("Billing Country", "billing_country"),
        "currency": ("Order Currency", "Currency", "currency"),
        "total": ("Order Total", "order_total"),
        "subtotal": ("Order Subtotal", "order_subtotal"),
        "shipping": ("Order Shipping", "shipping_total"),
        "tax": ("Order Total Tax", "Tax Total", "tax_total"),
        "discount": ("Cart Discount", "discount_total"),
        "refunded": ("Order Refunds", "refunded_total"),
        "coupon": ("Coupon Code", "coupon_items"),
        "line_name": ("Item Name", "item_name"),
        "line_sku": ("Item SKU", "SKU", "sku"),
        "line_product_id": ("Product ID", "product_id"),
        "line_price": ("Item Cost", "item_price"),
        "line_quantity": ("Item Quantity", "Quantity", "quantity"),
    },
    statuses={
        **DEFAULT_STATUSES,
        "pending": (*DEFAULT_STATUSES["pending"], "on-hold", "wc-on-hold", "draft"),
    },
)

TIKTOK_SHOP_ORDERS = OrderSpec(
    name="tiktok-shop-orders",
    vendor="tiktok_shop",
    description="TikTok Shop Seller Center > Orders > Export (CSV). One row per SKU; order "
    "amounts repeated on each row; the second line may describe the columns (skipped).",
    delimiter=",",
    columns={
        "order_id": ("Order ID",),
        "created_at": ("Created Time",),
        "cancelled_at": ("Cancelled Time",),
        "status": ("Order Status",),
        "email": ("Buyer Email",),
        "phone": ("Phone #",),
        "user_id": ("Buyer Username",),
        "first_name": ("Recipient",),
        "country": ("Country",),
        "currency": ("Currency",),
        "total": ("Order Amount",),
        "shipping": ("Shipping Fee After Discount",),
        "tax": ("Taxes",),
        "refunded": ("Order Refund Amount",),
        "line_name": ("Product Name",),
        "line_sku": ("Seller SKU",),
        "line_product_id": ("SKU ID",),
        "line_variant": ("Variation",),
        "line_price": ("SKU Unit Original Price",),
        "line_quantity": ("Quantity",),
    },
    skip_order_ids=frozenset({"Platform unique order ID.", "Platform unique order ID"}),
)

BUILTIN = (SHOPIFY_ORDERS, SHOPIFY_CUSTOMERS, AMAZON_ORDERS, WOOCOMMERCE_ORDERS,
           TIKTOK_SHOP_ORDERS)  # fmt: skip
