"""Money across borders: currencies, amounts and FX conversion to the workspace base currency."""

from siyu.money.currencies import (
    format_money,
    is_currency,
    iso_currencies,
    minor_digits,
    require_currency,
    to_money,
)

__all__ = [
    "format_money",
    "is_currency",
    "iso_currencies",
    "minor_digits",
    "require_currency",
    "to_money",
]
