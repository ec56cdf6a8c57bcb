"""The API's routes (downloads/api/urls.py): every one answers with or without the trailing
slash, the same view either way, and anything else under /api/ is the JSON 404 envelope
(`route.not_found`) with DEBUG on and off."""

import uuid

import pytest
import yaml
from django.test import Client

from downloads.models import Order, Product, WebhookDelivery, WebhookEndpoint
from downloads.services.backfills import download_deliver_to_existing_orders
from downloads.services.licences import license_key_activate
from downloads.services.versions import download_replace_media
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def ids(db) -> dict[str, str]:
    """An object for every path parameter of the schema."""
    order = factories.paid_order_with_files(lines=1)
    grant = order.grants.first()
    event = factories.EventFactory(grant=grant)
    key = factories.licensed_order().license_keys.get()
    instance = license_key_activate(key_text=key.key, instance_name="Laptop").instance
    customer = factories.UserFactory(password=None)
    version = download_replace_media(download=grant.download, media=factories.MediaFactory())
    backfill = download_deliver_to_existing_orders(download=grant.download)
    endpoint = WebhookEndpoint.objects.create(url="https://hooks.example.com/store")
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint, event_type="order.paid", payload={}
    )
    return {
        "customers": str(customer.pk),
        "versions": str(version.pk),
        "backfills": str(backfill.pk),
        "webhook_endpoints": str(endpoint.pk),
        "webhook_deliveries": str(delivery.pk),
        "products": str(grant.download.product_id),
        "variants": str(factories.VariantFactory().pk),
        "media": str(grant.download.media_id),
        "downloads": str(grant.download_id),
        "orders": str(order.pk),
        "grants": str(grant.pk),
        "events": str(event.pk),
        "license_keys": str(key.pk),
        "license_instances": str(instance.pk),
        "instances": str(instance.pk),
    }


def _without_url(body):
    # The list envelope's `pagination.url` is the path as requested.
    if isinstance(body, dict) and "pagination" in body:
        body = {**body, "pagination": {**body["pagination"], "url": None}}
    return body


def test_every_get_route_of_the_schema_answers_the_same_with_a_trailing_slash(api, ids):
    document = yaml.safe_load(Client().get("/api/schema/").content)
    compared = 0
    for template, item in document["paths"].items():
        if "get" not in item:
            continue
        path = template.replace("{download_id}", ids["downloads"]).replace(
            "{license_key_id}", ids["license_keys"]
        )
        if "{id}" in path:
            resource = path.split("/")[-2]
            path = path.replace("{id}", ids[resource])
        plain, slashed = api.get(path), api.get(f"{path}/")
        assert plain.status_code == 200, (path, plain.content)
        assert slashed.status_code == plain.status_code, path
        assert _without_url(slashed.json()) == _without_url(plain.json()), path
        compared += 1
    assert compared >= 30


def test_writes_and_actions_work_with_a_trailing_slash(api, ids):
    created = api.post("/api/v1/products/", {"name": "Guide", "price": 900}, format="json")
    assert created.status_code == 201, created.content
    product = created.json()["id"]
    changed = api.patch(f"/api/v1/products/{product}/", {"price": 950}, format="json")
    assert (changed.status_code, changed.json()["price"]) == (200, 950)
    order = Order.objects.create(number=9100, email="b@example.com")
    assert api.post(f"/api/v1/orders/{order.pk}/pay/").json()["status"] == "paid"
    reset = api.post(f"/api/v1/grants/{ids['grants']}/reset/")
    assert (reset.status_code, reset.json()["download_count"]) == (200, 0)
    deleted = api.delete(f"/api/v1/products/{product}/")
    assert deleted.json() == {"id": product, "object": "product", "deleted": True}
    assert not Product.objects.filter(pk=product).exists()


def test_the_public_licence_api_schema_and_docs_take_either_form(client, ids):
    key = factories.licensed_order().license_keys.get()
    for path in ("/api/v1/licenses/validate", "/api/v1/licenses/validate/"):
        response = client.post(path, {"license_key": key.key}, HTTP_ACCEPT="application/json")
        assert response.status_code == 200, (path, response.content)
        assert response.json()["valid"] is True
    for path in ("/api/schema", "/api/schema/", "/api/docs", "/api/docs/"):
        assert client.get(path).status_code == 200, path


@pytest.mark.parametrize("debug", [True, False], ids=["DEBUG on", "DEBUG off"])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/nothing-here"),
        ("get", "/api/nothing"),
        ("get", "/api/v3/products"),
        ("get", "/api/v2/unknown"),
        ("get", "/api/v1/products/{id}/unknown_action"),
        ("post", "/api/v1/orders/{id}/unknown_action"),
        ("delete", "/api/v1/"),
    ],
)
def test_an_unknown_route_under_api_is_the_json_404_envelope(api, settings, debug, method, path):
    settings.DEBUG = debug
    response = getattr(api, method)(path.replace("{id}", str(uuid.uuid4())))
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body == {
        "http_status": "not_found",
        "code": "route.not_found",
        "message": body["message"],
        "validation_errors": [],
    }
    assert path.split("{")[0] in body["message"]


@pytest.mark.parametrize("debug", [True, False], ids=["DEBUG on", "DEBUG off"])
def test_an_unknown_id_is_the_resources_404_and_pages_outside_api_stay_html(api, settings, debug):
    settings.DEBUG = debug
    response = api.get(f"/api/v1/products/{uuid.uuid4()}/")
    assert (response.status_code, response.json()["code"]) == (404, "product.not_found")
    page = Client().get("/no-such-page/")
    assert page.status_code == 404
    assert page["Content-Type"].startswith("text/html")
