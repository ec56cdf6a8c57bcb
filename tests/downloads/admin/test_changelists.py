"""Every changelist takes the same number of queries for 1 row as for 50, and long lists
paginate."""

import pytest
from django.urls import reverse

from accounts.services import api_key_create
from downloads.models import ChannelEvent
from tests import factories
from tests.downloads.admin.conftest import licence_order, paid_order, product_with_file

pytestmark = pytest.mark.django_db


def make_products(n):
    for _ in range(n):
        factories.VariantFactory(product=product_with_file())


def make_variants(n):
    factories.VariantFactory.create_batch(n)


def make_media(n):
    for _ in range(n):
        factories.DownloadFactory()


def make_downloads(n):
    factories.DownloadFactory.create_batch(n, variant=None)


def make_orders(n):
    product = product_with_file()
    for index in range(n):
        paid_order(product, email=f"buyer{index}@example.com")


def make_grants(n):
    factories.GrantFactory.create_batch(n)


def make_events(n):
    factories.EventFactory.create_batch(n)


def make_channel_events(n):
    product = product_with_file()
    for index in range(n):
        order = paid_order(product, email=f"buyer{index}@example.com")
        ChannelEvent.objects.create(
            channel="shopify", event_id=f"evt-{index}", type="orders/paid", payload={}, order=order
        )


def make_license_keys(n):
    """n keys: a few on orders of their own (each with its buyer), the rest on one order, over
    two products (so the product filter is shown)."""
    products = factories.ProductFactory.create_batch(2, license_keys=True)
    for index in range(min(n, 5)):
        licence_order(products[index % 2], email=f"buyer{index}@example.com")
    if n > 5:
        licence_order(products[0], quantity=n - 5)


def make_api_keys(n):
    staff = factories.StaffFactory()
    for index in range(n):
        api_key_create(name=f"key {index}", created_by=staff)


def make_users(n):
    factories.UserFactory.create_batch(n)


# (changelist, rows factory, queries): session, user, the counts and the page, plus the
# vendor filter's values (products), the date hierarchy's range and days (orders, events), the
# product filter's values (licence keys).
CHANGELISTS = [
    ("downloads_product", make_products, 6),
    ("downloads_variant", make_variants, 5),
    ("downloads_media", make_media, 5),
    ("downloads_download", make_downloads, 5),
    ("downloads_order", make_orders, 7),
    ("downloads_downloadgrant", make_grants, 5),
    ("downloads_downloadevent", make_events, 7),
    ("downloads_channelevent", make_channel_events, 5),
    ("downloads_licensekey", make_license_keys, 6),
    ("accounts_apikey", make_api_keys, 5),
    ("accounts_user", make_users, 5),
]


@pytest.mark.parametrize("rows", [1, 50])
@pytest.mark.parametrize(
    "name, make, queries", CHANGELISTS, ids=[name for name, _, _ in CHANGELISTS]
)
def test_changelist_queries_do_not_grow_with_rows(
    admin_client, django_assert_num_queries, name, make, queries, rows
):
    make(rows)
    url = reverse(f"admin:{name}_changelist")
    with django_assert_num_queries(queries):
        response = admin_client.get(url)
    assert response.status_code == 200
    listed = len(response.context["cl"].result_list)
    # the user list also holds the admin who is looking
    assert listed == rows + (name == "accounts_user")


def test_long_lists_paginate(admin_client):
    factories.GrantFactory.create_batch(51)
    url = reverse("admin:downloads_downloadgrant_changelist")
    first = admin_client.get(url)
    assert len(first.context["cl"].result_list) == 50
    second = admin_client.get(url, {"p": 2})
    assert len(second.context["cl"].result_list) == 1
