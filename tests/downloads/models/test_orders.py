"""Order models: who owns an order, and how the receipt says it was paid."""

import pytest
from django.contrib.auth.models import AnonymousUser

from downloads.models import Order
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "who",
    ["linked customer", "same email", "email in other case", "other customer", "anonymous"],
)
def test_who_owns_an_order_is_the_same_on_a_loaded_order_and_in_a_filter(who):
    order = factories.OrderFactory(email="buyer@example.com")
    if who == "linked customer":
        user = factories.UserFactory(email="renamed@example.com")
        Order.objects.filter(pk=order.pk).update(customer=user)
        order.refresh_from_db()
    elif who == "same email":
        user = factories.UserFactory(email="buyer@example.com")
    elif who == "email in other case":
        user = factories.UserFactory(email="other@example.com")
        user.email = "Buyer@Example.com"  # as a backend might hand it over, unnormalised
    elif who == "other customer":
        user = factories.UserFactory(email="other@example.com")
    else:
        user = AnonymousUser()
    in_filter = Order.objects.filter(Order.owned_by_q(user), pk=order.pk).exists()
    assert order.is_owned_by(user) is in_filter
    assert in_filter is (who in ("linked customer", "same email", "email in other case"))


@pytest.mark.parametrize(
    ("channel", "method", "shown"),
    [
        ("stripe", "card", "Stripe Checkout (card)"),
        ("shopify", "", "Shopify"),
        ("api", "bank transfer", "bank transfer"),
        ("admin", "", ""),
    ],
)
def test_the_receipt_says_how_an_order_was_paid(channel, method, shown):
    assert Order(channel=channel, payment_method=method).paid_via == shown
