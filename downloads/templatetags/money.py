"""`{{ amount|money:currency }}`: an amount in minor units, formatted by downloads.money."""

from functools import lru_cache

from django import template
from django.conf import settings

from .. import money as money_rules

register = template.Library()


@register.filter
def money(amount, currency=None):
    """`4900|money:"USD"` → "$49.00"; the store's currency when none is given."""
    currency = currency or money_rules.store_currency()
    if type(amount) is int:  # an amount as stored: its words never change, keep them
        return _formatted(amount, currency, settings.DOWNLOADS_LOCALE)
    return money_rules.format_money(amount, currency)


# Babel takes about 10 µs an amount, and a page shows the same few amounts again and again
# (the order page: every line's price and total, the receipt). The words depend only on
# these three values (and on Babel's data, fixed for the process).
@lru_cache(maxsize=4096)
def _formatted(amount: int, currency: str, locale: str) -> str:
    return money_rules.format_money(amount, currency, locale=locale)
