import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from downloads.models import REFUSAL_LABELS, REFUSAL_ORDER, Download, DownloadGrant, Order
from downloads.selectors import GRANT_STATES, grant_state_q
from tests import factories

pytestmark = pytest.mark.django_db


def violates(**fields):
    with pytest.raises(IntegrityError), transaction.atomic():
        Download.objects.create(**fields)


def test_download_with_both_media_and_url_is_rejected_by_the_database():
    violates(media=factories.MediaFactory(), url="https://example.com/a", name="A")


def test_download_with_neither_media_nor_url_is_rejected_by_the_database():
    violates(product=factories.ProductFactory())


def test_download_with_url_needs_a_name():
    violates(url="https://example.com/a")
    violates(url="https://example.com/a", name="")


def test_grant_count_cannot_go_negative():
    grant = factories.GrantFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        DownloadGrant.objects.filter(pk=grant.pk).update(download_count=-1)


def test_one_grant_per_order_line_and_download():
    grant = factories.GrantFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        DownloadGrant.objects.create(order=grant.order, line=grant.line, download=grant.download)


def test_one_order_level_grant_per_download():
    grant = factories.GrantFactory(line=None)
    with pytest.raises(IntegrityError), transaction.atomic():
        DownloadGrant.objects.create(order=grant.order, line=None, download=grant.download)


def test_tokens_are_long_random_and_distinct():
    a, b = factories.GrantFactory.create_batch(2)
    assert len(a.order.access_token) == 32 and a.order.access_token != b.order.access_token
    assert len(a.token) >= 43 and a.token != b.token


def test_media_keys_cannot_collide_and_keep_the_original_filename():
    first = factories.MediaFactory(filename="My Book.pdf")
    second = factories.MediaFactory(filename="My Book.pdf")
    assert first.file.name != second.file.name
    assert first.filename == "My Book.pdf"


# --- Each rule once: every form of a rule agrees with the others, on both databases -------


@pytest.mark.parametrize("state", factories.GRANT_STATES)
def test_a_grants_refusal_on_the_row_is_the_first_refusal_filter_that_matches_it(state):
    now = timezone.now()
    grant = factories.grant_in_state(state, now)
    rows = DownloadGrant.objects.filter(pk=grant.pk)
    matching = [r for r in REFUSAL_ORDER if rows.filter(DownloadGrant.refusal_q(r, now)).exists()]
    assert grant.refusal(now) == (matching[0] if matching else None)
    assert rows.filter(DownloadGrant.available_q(now)).exists() is (grant.refusal(now) is None)


@pytest.mark.parametrize("state", factories.GRANT_STATES)
def test_the_back_offices_state_filters_are_the_refusal_filters(state):
    now = timezone.now()
    grant = factories.grant_in_state(state, now)
    rows = DownloadGrant.objects.filter(pk=grant.pk)
    in_states = {name for name in GRANT_STATES if rows.filter(grant_state_q(name, now=now))}
    assert in_states == {
        REFUSAL_LABELS[r].filter
        for r in REFUSAL_ORDER
        if rows.filter(DownloadGrant.refusal_q(r, now))
    }


def test_every_refusal_has_its_labels():
    assert set(REFUSAL_LABELS) == set(REFUSAL_ORDER)


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
