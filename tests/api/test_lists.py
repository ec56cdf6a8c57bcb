"""Every list: the envelope, and a query count that does not grow with the rows."""

import pytest
from django.utils import timezone

from accounts.models import ApiKey
from downloads.models import Order
from tests import factories

pytestmark = pytest.mark.django_db


def _order_row():
    order = factories.OrderFactory(status=Order.Status.PAID)
    factories.OrderLineFactory(order=order)
    factories.OrderLineFactory(order=order, variant=factories.VariantFactory())
    order.downloads.add(factories.DownloadFactory(product=None))


def _customer_row():
    # No password: hashing one takes most of a second.
    user = factories.UserFactory(password=None)
    factories.OrderFactory(customer=user, email=user.email)


def _download_row():
    variant = factories.VariantFactory()
    factories.DownloadFactory(product=variant.product, variant=variant)


# resource, row builder, query string, queries: key lookup + count + page + prefetches
LISTS = [
    ("products", factories.ProductFactory, "", 3),
    ("variants", factories.VariantFactory, "", 3),
    ("media", factories.MediaFactory, "", 3),
    ("downloads", _download_row, "?expand[]=media&expand[]=product&expand[]=variant", 3),
    ("orders", _order_row, "", 5),
    ("grants", factories.GrantFactory, "", 3),
    ("events", factories.EventFactory, "", 3),
    ("customers", _customer_row, "", 3),
]


@pytest.fixture
def warm_api(api, write_key):
    # last_used_at was just written: the next minute of calls only read the key.
    ApiKey.objects.filter(pk=write_key[0].pk).update(last_used_at=timezone.now())
    return api


@pytest.mark.parametrize(("resource", "build", "query", "queries"), LISTS)
@pytest.mark.parametrize("rows", [1, 50])
def test_list_query_count_is_constant(
    warm_api, django_assert_num_queries, resource, build, query, queries, rows
):
    for _ in range(rows):
        build()
    with django_assert_num_queries(queries):
        response = warm_api.get(f"/api/v1/{resource}{query}&limit=100".replace("&", "?", not query))
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    assert body["pagination"]["count"] == rows
    assert len(body["data"]) == rows
    assert {row["object"] for row in body["data"]} <= {
        "product", "variant", "media", "download", "order", "grant", "event", "customer",
    }  # fmt: skip


@pytest.mark.parametrize(("resource", "build", "query", "queries"), LISTS)
def test_ids_filter_on_every_list(api, resource, build, query, queries):
    build()
    build()
    first = api.get(f"/api/v1/{resource}").json()["data"][0]["id"]
    body = api.get(f"/api/v1/{resource}?ids[]={first}").json()
    assert [row["id"] for row in body["data"]] == [first]


def test_pages_do_not_overlap_and_sort_breaks_ties_by_id(api):
    for _ in range(5):
        factories.ProductFactory(name="Same")
    seen = []
    for page in (1, 2, 3):
        body = api.get(f"/api/v1/products?sort=name:asc&limit=2&page={page}").json()
        assert body["pagination"] == {
            "count": 5, "limit": 2, "page": page, "url": "/api/v1/products",
        }  # fmt: skip
        seen += [row["id"] for row in body["data"]]
    assert len(seen) == len(set(seen)) == 5


def test_search_and_sort_on_products(api):
    factories.ProductFactory(name="Beta Guide")
    factories.ProductFactory(name="Alpha Guide")
    factories.ProductFactory(name="Other")
    body = api.get("/api/v1/products?search=guide&sort=name:desc").json()
    assert [row["name"] for row in body["data"]] == ["Beta Guide", "Alpha Guide"]
    body = api.get("/api/v1/products?search=guide&sortby=name&sortdir=asc").json()
    assert [row["name"] for row in body["data"]] == ["Alpha Guide", "Beta Guide"]
