"""Money: amounts are integers in the minor units of an ISO 4217 currency.

Rules owned here: a currency is a code Babel knows; its exponent is the currency's real
one (USD 2, JPY 0, BHD 3), from Babel's CLDR data, never assumed to be 2; a decimal amount
from a channel ("49.00") converts to minor units only when it is exact in that currency;
an amount is a whole number of minor units from 0 to MAX_AMOUNT (`check_amount`);
amounts are formatted for people by Babel (`format_currency`), never by hand.
"""

from decimal import Decimal, InvalidOperation

from babel.numbers import format_currency, get_currency_precision, list_currencies
from django.conf import settings

from .errors import ServiceError

# The largest amount stored (PostgreSQL's bigint), so no sum of sane amounts overflows.
MAX_AMOUNT = 2**53


def store_currency() -> str:
    """The store's currency (DOWNLOADS_CURRENCY)."""
    return settings.DOWNLOADS_CURRENCY


def check_currency(code, *, entity: str = "order", attribute: str = "currency") -> str:
    """The upper-cased ISO 4217 code, or a ServiceError `<entity>.invalid`."""
    if isinstance(code, str) and code.upper() in _CURRENCIES:
        return code.upper()
    raise ServiceError(
        f"{code!r} is not an ISO 4217 currency code.",
        code=f"{entity}.invalid",
        reason="invalid_choice",
        attribute=attribute,
    )


def check_amount(value, *, entity: str, attribute: str) -> int:
    """`value` when it is an amount (an int, 0..MAX_AMOUNT), else `<entity>.invalid`."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_AMOUNT:
        return value
    raise ServiceError(
        f"{attribute} must be a whole number of minor units from 0 to {MAX_AMOUNT}.",
        code=f"{entity}.invalid",
        reason="min_value" if isinstance(value, int) and value < 0 else "invalid",
        attribute=attribute,
    )


def exponent(currency: str) -> int:
    """Digits after the decimal point in `currency` (2 for USD, 0 for JPY)."""
    return get_currency_precision(currency)


def to_minor(amount, currency: str, *, entity: str = "order", attribute: str = "amount") -> int:
    """A decimal amount ("49.00", 49, Decimal) as an integer in minor units of `currency`.

    Refused (`<entity>.invalid`) when it is negative, not a number, or finer than the
    currency allows (0.5 JPY), so nothing is rounded silently.
    """
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite():
        raise ServiceError(
            f"{amount!r} is not an amount.",
            code=f"{entity}.invalid",
            reason="invalid",
            attribute=attribute,
        )
    minor = value.scaleb(exponent(currency))
    if minor != minor.to_integral_value() or not 0 <= minor <= MAX_AMOUNT:
        raise ServiceError(
            f"{amount} is not an amount in {currency}.",
            code=f"{entity}.invalid",
            reason="invalid",
            attribute=attribute,
        )
    return int(minor)


def from_minor(amount: int, currency: str) -> Decimal:
    """Minor units as a Decimal in major units (4900 USD → Decimal("49.00"))."""
    places = exponent(currency)
    return Decimal(amount).scaleb(-places).quantize(Decimal(1).scaleb(-places))


def format_money(amount: int | None, currency: str, *, locale: str | None = None) -> str:
    """`amount` minor units for people ("$49.00", "¥4,900", "49,00 €"); "" for None."""
    if amount is None:
        return ""
    return format_currency(
        from_minor(amount, currency),
        currency,
        locale=locale or settings.DOWNLOADS_LOCALE,
        currency_digits=True,
    )


_CURRENCIES = frozenset(list_currencies())
