"""ISO 4217 currency codes and money parsing.

The list of active codes comes from Babel's CLDR data, so no hand-kept table goes stale.
Amounts are ``Decimal``: floats never carry money inside siyu.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from functools import cache

from babel.numbers import format_currency, get_currency_precision, list_currencies

from siyu.errors import InvalidInput

MONEY_QUANTUM = Decimal("0.0001")  # NUMERIC(18, 4) in the schema
MAX_MONEY = Decimal("99999999999999")  # fits NUMERIC(18, 4)


@cache
def iso_currencies() -> frozenset[str]:
    """Every ISO 4217 code CLDR knows (including historic ones still seen in exports)."""
    return frozenset(list_currencies())


def is_currency(code: str) -> bool:
    return code in iso_currencies()


def require_currency(code: object, field: str = "currency") -> str:
    """Return the upper-cased ISO 4217 code or raise InvalidInput naming the field."""
    if not isinstance(code, str):
        raise InvalidInput(
            f"{field} must be a three-letter ISO 4217 code, got {code!r}.", field=field
        )
    upper = code.strip().upper()
    if upper not in iso_currencies():
        raise InvalidInput(
            f"{field} {code!r} is not an ISO 4217 currency code.",
            hint="Use a three-letter code such as USD, EUR, GBP, IDR, THB or SAR.",
            field=field,
        )
    return upper


def to_money(value: object, field: str = "amount") -> Decimal:
    """Parse an amount (number or numeric string) to a Decimal with 4 decimal places."""
    if isinstance(value, bool) or value is None:
        raise InvalidInput(f"{field} must be a number, got {value!r}.", field=field)
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise InvalidInput(f"{field} must be a number, got {value!r}.", field=field) from None
    if not amount.is_finite() or abs(amount) > MAX_MONEY:
        raise InvalidInput(f"{field} {value!r} is not a finite amount in range.", field=field)
    return amount.quantize(MONEY_QUANTUM)


def minor_digits(currency: str) -> int:
    """Decimal places customary for the currency (JPY 0, USD 2, KWD 3)."""
    return int(get_currency_precision(currency))


def format_money(amount: Decimal | float, currency: str, locale: str = "en_US") -> str:
    """Show an amount the way a reader in ``locale`` expects (Babel/CLDR)."""
    return str(format_currency(amount, currency, locale=locale.replace("-", "_")))
