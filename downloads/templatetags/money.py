"""`{{ amount|money:currency }}`: an amount in minor units, formatted by downloads.money."""

from django import template

from .. import money as money_rules

register = template.Library()


@register.filter
def money(amount, currency=None):
    """`4900|money:"USD"` → "$49.00"; the store's currency when none is given."""
    return money_rules.format_money(amount, currency or money_rules.store_currency())
