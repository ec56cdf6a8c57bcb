"""Every list: the envelope and its pages (pagination.py), ids, search and sort (filters.py),
and a query count that does not grow with the rows."""

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import ApiKey
from downloads.api import pagination
from downloads.models import Order
from downloads.services.licences import license_key_activate
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


def _variant_row():
    # No price of its own: its effective_price reads the product (joined, not a query a row).
    factories.VariantFactory(price=None)


def _download_row():
    variant = factories.VariantFactory(price=None)
    factories.DownloadFactory(product=variant.product, variant=variant)


def _license_key_row():
    factories.licensed_order()


def _license_instance_row():
    key = factories.licensed_order().license_keys.get()
    license_key_activate(key_text=key.key, instance_name="Laptop")


# resource, row builder, query string, queries: key lookup + count + the page's keys + its
# rows + prefetches
LISTS = [
    ("products", factories.ProductFactory, "", 4),
    ("variants", _variant_row, "", 4),
    ("media", factories.MediaFactory, "", 4),
    ("downloads", _download_row, "?expand[]=media&expand[]=product&expand[]=variant", 4),
    ("orders", _order_row, "", 7),  # … + lines, their licence keys, attached downloads
    ("grants", factories.GrantFactory, "", 4),
    ("events", factories.EventFactory, "", 4),
    ("customers", _customer_row, "", 4),
    ("license_keys", _license_key_row, "", 4),  # the rows join their orders
    ("license_instances", _license_instance_row, "", 4),
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
        "license_key", "license_instance",
    }  # fmt: skip


@pytest.mark.parametrize(("resource", "build", "query", "queries"), LISTS)
def test_ids_filter_on_every_list(api, resource, build, query, queries):
    build()
    build()
    first = api.get(f"/api/v1/{resource}").json()["data"][0]["id"]
    body = api.get(f"/api/v1/{resource}?ids[]={first}").json()
    assert [row["id"] for row in body["data"]] == [first]


def test_huge_page_number_answers_an_empty_page(api):
    factories.ProductFactory()
    body = api.get("/api/v1/products?page=99999999999999999999").json()
    assert body["data"] == [] and body["pagination"]["count"] == 1


def test_limit_is_capped_at_100_and_perpage_is_an_alias(api):
    assert api.get("/api/v1/products?limit=1000").json()["pagination"]["limit"] == 100
    assert api.get("/api/v1/products?perpage=7").json()["pagination"]["limit"] == 7


def test_pages_do_not_overlap_and_sort_breaks_ties_by_id(api):
    for _ in range(5):
        factories.ProductFactory(name="Same")
    seen = []
    for page in (1, 2, 3):
        body = api.get(f"/api/v1/products?sort=name:asc&limit=2&page={page}").json()
        assert body["pagination"] == {
            "count": 5, "count_is_estimate": False, "limit": 2, "page": page,
            "url": "/api/v1/products",
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


@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_pages_past_the_count_cap_keep_the_sort_order_and_a_plausible_count(
    api, monkeypatch, direction
):
    monkeypatch.setattr(pagination, "COUNT_CAP", 5)
    for n in (3, 7, 0, 5, 1, 6, 2, 4):  # created out of name order, with random ids
        factories.ProductFactory(name=f"Product {n}")
    expected = [f"Product {n}" for n in range(8)][:: 1 if direction == "asc" else -1]
    seen = []
    for page in (1, 2):
        body = api.get(f"/api/v1/products?sort=name:{direction}&limit=3&page={page}").json()
        seen += [row["name"] for row in body["data"]]
        count, estimated = body["pagination"]["count"], body["pagination"]["count_is_estimate"]
        if connection.vendor == "postgresql":
            # The planner's guess for a table it has never analysed, but never below what is
            # known: more than the cap, and at least the rows paged so far.
            assert estimated is True
            assert count >= max(6, page * 3)
        else:
            assert (count, estimated) == (8, False)
    last = api.get(f"/api/v1/products?sort=name:{direction}&limit=3&page=3").json()
    assert [row["name"] for row in last["data"]] == expected[6:]
    assert (last["pagination"]["count"], last["pagination"]["count_is_estimate"]) == (8, False)
    assert seen == expected[:6]
    past = api.get(f"/api/v1/products?sort=name:{direction}&limit=3&page=4").json()
    assert past["data"] == []
    assert (past["pagination"]["count"], past["pagination"]["count_is_estimate"]) == (8, False)


@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_key_first_pages_return_grants_in_the_sort_order(api, direction):
    for count in (2, 0, 3, 1):
        factories.GrantFactory(download_count=count)
    body = api.get(f"/api/v1/grants?sort=download_count:{direction}&limit=3&page=1").json()
    counts = [row["download_count"] for row in body["data"]]
    assert counts == ([0, 1, 2] if direction == "asc" else [3, 2, 1])
    body = api.get(f"/api/v1/grants?sort=download_count:{direction}&limit=3&page=2").json()
    assert [row["download_count"] for row in body["data"]] == [3 if direction == "asc" else 0]
