"""SureCart's wrapped bodies on every resource (views/base.py `unwrap_body`), and body fields
an action does not take answered with their names (`unknown_fields`)."""

import pytest

from downloads.models import Order, Product
from downloads.services.webhooks import webhook_endpoint_create
from tests import factories

pytestmark = pytest.mark.django_db


def _creates():
    """(object name, path, a valid create body) of every resource created with JSON; the
    body is a function of a fresh store, so the bare and the wrapped call each get theirs."""
    return [
        ("product", lambda: "/api/v1/products", lambda: {"name": "Guide", "price": 900}),
        (
            "variant",
            lambda: "/api/v1/variants",
            lambda: {"product": str(factories.ProductFactory().pk), "name": "EPUB"},
        ),
        (
            "download",
            lambda: "/api/v1/downloads",
            lambda: {"media": str(factories.MediaFactory().pk)},
        ),
        (
            "order",
            lambda: "/api/v1/orders",
            lambda: {
                "email": "buyer@example.com",
                "lines": [{"product": str(factories.ProductFactory().pk)}],
                "send_email": False,
            },
        ),
        (
            "grant",
            lambda: "/api/v1/grants",
            lambda: {
                "order_id": str(factories.OrderFactory().pk),
                "download": str(factories.DownloadFactory().pk),
            },
        ),
        (
            "download_version",
            lambda: f"/api/v1/downloads/{factories.DownloadFactory().pk}/versions",
            lambda: {"media": str(factories.MediaFactory().pk), "changelog": "v2"},
        ),
        (
            "backfill",
            lambda: f"/api/v1/downloads/{factories.DownloadFactory().pk}/backfills",
            lambda: {"notify_buyers": False},
        ),
    ]


@pytest.mark.parametrize(
    ("name", "path", "body"), [pytest.param(*create, id=create[0]) for create in _creates()]
)
@pytest.mark.parametrize("wrapped", [False, True], ids=["bare", "wrapped"])
def test_every_create_takes_its_body_bare_or_in_surecarts_wrapper(api, name, path, body, wrapped):
    data = body()
    response = api.post(path(), {name: data} if wrapped else data, format="json")
    assert response.status_code in (201, 202), response.json()
    assert response.json()["object"] == name


@pytest.mark.parametrize("wrapped", [False, True], ids=["bare", "wrapped"])
def test_every_update_takes_its_body_bare_or_in_surecarts_wrapper(api, wrapped):
    def wrap(name, data):
        return {name: data} if wrapped else data

    product = factories.ProductFactory()
    variant = factories.VariantFactory()
    download = factories.DownloadFactory()
    grant = factories.GrantFactory()
    key = factories.licensed_order().license_keys.get()
    endpoint = webhook_endpoint_create(url="https://hooks.example.com/x", event_types=[])
    calls = [
        (api.patch, f"/api/v1/products/{product.pk}", "product", {"price": 777}, "price", 777),
        (api.patch, f"/api/v1/variants/{variant.pk}", "variant", {"name": "B"}, "name", "B"),
        (api.patch, f"/api/v1/downloads/{download.pk}", "download", {"title": "T"}, "title", "T"),
        (
            api.put,
            f"/api/v1/grants/{grant.pk}",
            "grant",
            {"download_limit": 9},
            "download_limit",
            9,
        ),
        (
            api.patch,
            f"/api/v1/grants/{grant.pk}",
            "grant",
            {"download_count": 1},
            "download_count",
            1,
        ),
        (
            api.patch,
            f"/api/v1/license_keys/{key.pk}",
            "license_key",
            {"activation_limit": 5},
            "activation_limit",
            5,
        ),
        (
            api.patch,
            f"/api/v1/webhook_endpoints/{endpoint.pk}",
            "webhook_endpoint",
            {"is_active": False},
            "is_active",
            False,
        ),
    ]
    for method, path, name, data, field, value in calls:
        response = method(path, wrap(name, data), format="json")
        assert response.status_code == 200, (path, response.json())
        assert response.json()[field] == value, path


@pytest.mark.parametrize(
    ("path", "wrapper"),
    [
        ("/api/v1/products", "download"),
        ("/api/v1/downloads", "product"),
        ("/api/v1/orders", "grant"),
        ("/api/v1/variants", "product"),
        ("/api/v1/grants", "download"),
    ],
)
def test_a_wrapper_naming_another_resource_is_a_400_that_says_which_it_takes(api, path, wrapper):
    response = api.post(path, {wrapper: {"name": "Guide"}}, format="json")
    assert response.status_code == 400, response.json()
    body = response.json()
    assert (body["http_status"], body["code"]) == ("bad_request", "request.wrong_wrapper")
    takes = path.rsplit("/", 1)[1].removesuffix("s")
    assert f'{{"{takes}": {{...}}}}' in body["message"]
    assert f'"{wrapper}"' in body["message"]
    assert not Product.objects.exists()


@pytest.mark.parametrize(
    "body",
    [{"product": "Guide"}, {"product": ["Guide"]}, {"product": {"name": "Guide"}, "price": 1}],
    ids=["a string", "a list", "beside other keys"],
)
def test_a_malformed_wrapper_is_a_400_not_a_missing_field(api, body):
    response = api.post("/api/v1/products", body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "request.wrapper_invalid"
    assert not Product.objects.exists()


def test_a_field_a_create_does_not_take_is_a_422_naming_it(api):
    product = factories.ProductFactory()
    response = api.post(
        "/api/v1/orders",
        {
            "email": "buyer@example.com",
            "lines": [{"product": str(product.pk), "qty": 2}],
            "send_emails": False,
        },
        format="json",
    )
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "order.invalid"
    assert {(error["attribute"], error["code"]) for error in body["validation_errors"]} == {
        ("lines[0].qty", "unknown_field"),
        ("send_emails", "unknown_field"),
    }
    assert not Order.objects.exists()


def test_a_misplaced_refund_body_refunds_nothing_and_names_the_field(api):
    order = factories.paid_order_with_files(lines=2)
    line = order.lines.first()
    response = api.post(
        f"/api/v1/orders/{order.pk}/refund", {"refund": {"line_ids": [str(line.pk)]}}, format="json"
    )
    assert response.status_code == 422
    assert response.json()["validation_errors"][0]["attribute"] == "refund"
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert not order.grants.filter(revoked_at__isnull=False).exists()


def test_an_object_read_and_sent_back_with_a_change_is_an_update(api):
    product = factories.ProductFactory(price=100)
    fetched = api.get(f"/api/v1/products/{product.pk}").json()
    response = api.patch(f"/api/v1/products/{product.pk}", {**fetched, "price": 250}, format="json")
    assert response.status_code == 200, response.json()
    product.refresh_from_db()
    assert product.price == 250
    wrapped = api.patch(
        f"/api/v1/products/{product.pk}", {"product": {**fetched, "price": 300}}, format="json"
    )
    assert wrapped.status_code == 200
