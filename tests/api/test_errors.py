"""One error envelope for everything, and no 500 for anything a client can send."""

import pytest
from django.test import Client

from tests import factories

pytestmark = pytest.mark.django_db

ENVELOPE_KEYS = {"http_status", "code", "message", "validation_errors"}


def test_malformed_json_is_400(api):
    response = api.generic("POST", "/api/v1/products", '{"name": ', content_type="application/json")
    assert response.status_code == 400
    assert set(response.json()) == ENVELOPE_KEYS
    assert response.json()["code"] == "request.malformed"


def test_json_body_over_the_memory_limit_is_413(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    response = api.post("/api/v1/products", {"name": "x" * 200}, format="json")
    assert response.status_code == 413


def test_unknown_api_path_is_a_json_404(api):
    response = api.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert set(response.json()) == ENVELOPE_KEYS


def test_django_500_under_api_is_json():
    from django.test import RequestFactory

    from downloads.api.exceptions import handler500

    response = handler500(RequestFactory().get("/api/v1/products"))
    assert response.status_code == 500 and response["Content-Type"] == "application/json"


def test_method_not_allowed_is_405_with_allow(api):
    response = api.put("/api/v1/products", {}, format="json")
    assert response.status_code == 405
    assert "GET" in response["Allow"]
    assert response.json()["http_status"] == "method_not_allowed"


def test_unsupported_content_type_is_415(api):
    response = api.generic("POST", "/api/v1/products", "name=x", content_type="text/plain")
    assert response.status_code == 415


@pytest.mark.parametrize(
    "query",
    [
        "sku=%00",
        "search=a%00b",
        "ids[]=not-a-uuid",
        "ids[]=%00",
        "external_id=99999999999999999999",
        "external_id=abc",
        "archived=maybe",
        "page=0",
        "page=abc",
        "page=" + "9" * 5000,
        "limit=-1",
        "sort=nope:asc",
        "sort=name:sideways",
        "sortby=name&sortdir=up",
        "tag=" + "x" * 300,
        "a%00b=1",
    ],
)
def test_bad_query_parameters_are_400_never_500(api, query):
    factories.ProductFactory()
    response = api.get(f"/api/v1/products?{query}")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "parameter.invalid"


@pytest.mark.parametrize(
    "query",
    ["after=-1", "before=99999999999999", "grant_ids[]=zz", "order_ids[]=1", "outcome=bogus"],
)
def test_bad_event_filters_are_400(api, query):
    assert api.get(f"/api/v1/events?{query}").status_code == 400


def test_huge_page_number_answers_an_empty_page(api):
    factories.ProductFactory()
    body = api.get("/api/v1/products?page=99999999999999999999").json()
    assert body["data"] == [] and body["pagination"]["count"] == 1


def test_limit_is_capped_at_100_and_perpage_is_an_alias(api):
    assert api.get("/api/v1/products?limit=1000").json()["pagination"]["limit"] == 100
    assert api.get("/api/v1/products?perpage=7").json()["pagination"]["limit"] == 7


@pytest.mark.parametrize("path", ["products", "orders", "grants", "downloads", "media", "events"])
@pytest.mark.parametrize("pk", ["abc", "%00", "1" * 100, "00000000-0000-0000-0000-000000000000"])
def test_malformed_or_unknown_ids_in_paths_are_404(api, path, pk):
    response = api.get(f"/api/v1/{path}/{pk}")
    assert response.status_code == 404
    assert set(response.json()) == ENVELOPE_KEYS


def test_malformed_ids_in_bodies_are_422(api):
    response = api.post("/api/v1/grants", {"order_id": "x\x00", "download": 12}, format="json")
    assert response.status_code == 422
    assert {error["attribute"] for error in response.json()["validation_errors"]} == {
        "order_id",
        "download",
    }


def test_nested_errors_name_their_attribute_path(api):
    response = api.post(
        "/api/v1/orders",
        {"email": "not-an-email", "lines": [{"sku": "A"}, {"sku": "B", "quantity": "many"}]},
        format="json",
    )
    assert response.status_code == 422
    attributes = {error["attribute"] for error in response.json()["validation_errors"]}
    assert attributes == {"email", "lines[1].quantity"}


def test_non_object_bodies_are_422(api):
    response = api.post("/api/v1/products", [1, 2], format="json")
    assert response.status_code == 422
    assert response.json()["validation_errors"][0]["attribute"] is None


def test_other_paths_keep_djangos_pages():
    response = Client().get("/no-such-page/")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")
