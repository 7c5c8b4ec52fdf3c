"""The kinds of source a workspace can add (a module of its own: the CLI lists them in its help
without importing the database layer)."""

from __future__ import annotations

SOURCE_KINDS = (
    "shopify",
    "amazon",
    "woocommerce",
    "tiktok_shop",
    "web",
    "mobile",
    "whatsapp",
    "instagram",
    "email",
    "sms",
    "line",
    "discord",
    "import",
    "other",
)
