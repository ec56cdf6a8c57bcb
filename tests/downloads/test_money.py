"""Money (downloads.money): currencies, exponents, conversion and formatting."""

from decimal import Decimal

import pytest

from downloads import money
from downloads.errors import ServiceError


@pytest.mark.parametrize(
    ("currency", "digits"), [("USD", 2), ("EUR", 2), ("JPY", 0), ("KRW", 0), ("BHD", 3)]
)
def test_the_exponent_is_the_currencys_real_one(currency, digits):
    assert money.exponent(currency) == digits


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("49.00", "USD", 4900),
        ("49", "USD", 4900),
        ("0.10", "EUR", 10),
        ("4900", "JPY", 4900),
        ("1.234", "BHD", 1234),
        (Decimal("12.5"), "USD", 1250),
    ],
)
def test_decimal_amounts_convert_to_minor_units(amount, currency, minor):
    assert money.to_minor(amount, currency) == minor


@pytest.mark.parametrize(
    ("amount", "currency"),
    [
        ("0.5", "JPY"),
        ("1.001", "USD"),
        ("-1.00", "USD"),
        ("abc", "USD"),
        ("NaN", "USD"),
        ("Infinity", "USD"),
        ("1e30", "USD"),
        (None, "USD"),
    ],
)
def test_amounts_that_are_not_exact_in_the_currency_are_refused(amount, currency):
    with pytest.raises(ServiceError) as exc:
        money.to_minor(amount, currency, entity="order", attribute="tax")
    assert (exc.value.code, exc.value.attribute) == ("order.invalid", "tax")


def test_from_minor_keeps_the_currencys_places():
    assert money.from_minor(4900, "USD") == Decimal("49.00")
    assert str(money.from_minor(4900, "JPY")) == "4900"
    assert str(money.from_minor(5, "BHD")) == "0.005"


@pytest.mark.parametrize(
    ("amount", "currency", "locale", "shown"),
    [
        (4900, "USD", "en_US", "$49.00"),
        (4900, "JPY", "en_US", "¥4,900"),
        (123456, "EUR", "de_DE", "1.234,56\xa0€"),
        (0, "USD", "en_US", "$0.00"),
    ],
)
def test_amounts_are_formatted_by_babel_for_the_locale(amount, currency, locale, shown):
    assert money.format_money(amount, currency, locale=locale) == shown


def test_formatting_follows_the_store_locale_and_none_is_blank(settings):
    settings.DOWNLOADS_LOCALE = "fr_FR"
    assert money.format_money(4900, "EUR") == "49,00\xa0€"
    assert money.format_money(None, "EUR") == ""


def test_currency_codes_are_checked_and_upper_cased():
    assert money.check_currency("jpy") == "JPY"
    for bad in ("", "US", "DOLLARS", None, 42, "ZZZ"):
        with pytest.raises(ServiceError) as exc:
            money.check_currency(bad)
        assert exc.value.code == "order.invalid"
