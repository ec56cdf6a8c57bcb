"""Query parameters (views/base.py `check_query_parameters`, filters.SortBackend): a name an
action does not read is a 400 naming it, never silently ignored; list filters are plural
(`order_ids[]`), and the sort direction is read in any case though published in one."""

import uuid

import pytest

from tests import factories

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("path", "query", "unknown"),
    [
        ("/api/v1/grants", {"order_id": "ORDER"}, "order_id"),
        ("/api/v1/grants", {"product_id": "ORDER"}, "product_id"),
        ("/api/v1/downloads", {"product_id": "ORDER"}, "product_id"),
        ("/api/v1/events", {"grant_id": "ORDER"}, "grant_id"),
        ("/api/v1/products", {"id": "ORDER"}, "id"),
        ("/api/v1/products", {"expand[]": "media"}, "expand[]"),  # only downloads expand
        ("/api/v1/orders", {"sku": "GUIDE"}, "sku"),
    ],
)
def test_a_singular_or_unknown_list_parameter_is_a_400_naming_it(api, path, query, unknown):
    order = factories.paid_order_with_files(lines=1)
    query = {name: str(order.pk) if value == "ORDER" else value for name, value in query.items()}
    response = api.get(path, query)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "parameter.invalid"
    assert body["validation_errors"] == [
        {"attribute": unknown, "code": "unknown_parameter", "message": "Unknown query parameter."}
    ]


def test_the_plural_filter_reads_brackets_repeats_and_commas(api):
    mine = factories.paid_order_with_files(lines=2, attached=0)
    factories.paid_order_with_files(lines=1)
    for query in (
        f"order_ids[]={mine.pk}",
        f"order_ids={mine.pk}",
        f"order_ids={mine.pk},{uuid.uuid4()}",
    ):
        data = api.get(f"/api/v1/grants?{query}").json()["data"]
        assert {grant["order_id"] for grant in data} == {str(mine.pk)}, query
        assert len(data) == 2


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/api/v1/products/{product}", "page=2"),
        ("/api/v1/products/{product}", "expand[]=media"),
        ("/api/v1/orders/{order}", "order_id=1"),
    ],
)
def test_a_detail_refuses_parameters_it_does_not_read(api, path, query):
    order = factories.paid_order_with_files(lines=1)
    path = path.format(product=order.lines.get().product_id, order=order.pk)
    response = api.get(f"{path}?{query}")
    assert response.status_code == 400
    assert response.json()["validation_errors"][0]["attribute"] == query.split("=")[0]


def test_a_download_detail_reads_expand(api):
    download = factories.DownloadFactory()
    response = api.get(f"/api/v1/downloads/{download.pk}", {"expand[]": "media"})
    assert response.status_code == 200
    assert response.json()["media"]["id"] == str(download.media_id)


def test_the_sort_direction_is_read_in_any_case(api):
    for name in ("b", "c", "a"):
        factories.ProductFactory(name=name)

    def names(query):
        response = api.get(f"/api/v1/products?{query}")
        assert response.status_code == 200, response.json()
        return [product["name"] for product in response.json()["data"]]

    assert names("sortby=name&sortdir=DESC") == names("sortby=name&sortdir=desc") == ["c", "b", "a"]
    assert names("sortby=name&sortdir=Asc") == ["a", "b", "c"]
    assert names("sort=name:DESC") == ["c", "b", "a"]
    refused = api.get("/api/v1/products?sortby=name&sortdir=down")
    assert (refused.status_code, refused.json()["validation_errors"][0]["attribute"]) == (
        400,
        "sortdir",
    )
