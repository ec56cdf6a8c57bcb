"""Every real answer of every resource is valid under a strict OpenAPI 3.0 validator against
the served schema (schema_check.py: as published, and with every object closed so no
undocumented key passes): each list and each object of it, with the values that exercise the
schema's nullable and expandable fields, and the error envelope of each error status."""

import uuid

import pytest
import yaml
from django.test import Client
from django.utils import timezone

from downloads.models import (
    DownloadEvent,
    Order,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from downloads.services.backfills import download_deliver_to_existing_orders
from downloads.services.licences import license_key_activate
from downloads.services.versions import download_replace_media
from tests import factories

from .schema_check import SchemaChecker


@pytest.fixture(scope="module")
def checker() -> SchemaChecker:
    response = Client().get("/api/schema/")
    assert response.status_code == 200
    return SchemaChecker(yaml.safe_load(response.content))


@pytest.fixture
def store(db) -> dict[str, str]:
    """One or more objects of every resource, with nulls and values in the optional fields:
    the ids the nested paths need."""
    customer = factories.UserFactory(password=None, name="Ada Buyer")
    order = factories.paid_order_with_files(lines=3, email=customer.email, customer=customer)
    line = order.lines.first()
    line.refunded_at = timezone.now()
    line.save(update_fields=["refunded_at"])
    factories.OrderFactory(email="pending@example.com")  # pending, no lines, no customer
    variant = factories.VariantFactory(price=None, external_id=None)  # the product's price
    stamped = factories.DownloadFactory(product=variant.product, variant=variant, stamp=True)
    factories.GrantFactory(order=order, line=None, download=stamped)
    factories.LinkDownloadFactory(product=None, archived=True, archived_at=timezone.now())
    grant = order.grants.first()
    factories.EventFactory(grant=grant)
    factories.EventFactory(grant=grant, outcome=DownloadEvent.Outcome.LIMIT_REACHED, ip=None)
    key = factories.licensed_order().license_keys.get()
    license_key_activate(key_text=key.key, instance_name="Laptop")
    endpoint = WebhookEndpoint.objects.create(url="https://hooks.example.com/store")
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint, event_type="order.paid", payload={"id": str(order.pk)}
    )
    WebhookAttempt.objects.create(delivery=delivery, status_code=None, error="timed out")
    download = grant.download
    download_replace_media(download=download, media=factories.MediaFactory(), changelog="v2")
    download_deliver_to_existing_orders(download=download)
    return {"download_id": str(download.pk), "license_key_id": str(key.pk)}


def list_templates(checker) -> list[str]:
    """The schema's paths that list a resource (their 200 is the list envelope)."""
    templates = []
    for template, item in checker.document["paths"].items():
        get = item.get("get")
        if get is None:
            continue
        schema = get["responses"]["200"]["content"]["application/json"]["schema"]
        name = schema.get("$ref", "").rsplit("/", 1)[-1]
        if name.startswith("Paginated"):
            templates.append(template)
    return templates


def test_every_list_and_every_object_of_every_resource_is_valid(api, store, checker):
    templates = list_templates(checker)
    assert len(templates) >= 16
    empty = []
    for template in templates:
        path = template.format(**store)
        queries = [{}]
        if template == "/api/v1/downloads":
            queries.append({"expand[]": ["media", "product", "variant"]})
        for query in queries:
            response = api.get(path, query)
            assert response.status_code == 200, (path, response.content)
            checker.check_response(response)
            data = response.json()["data"]
            if not data:
                empty.append(path)
            detail = f"{template}/{{id}}"
            if detail in checker.document["paths"]:
                for item in data:
                    answer = api.get(f"{path}/{item['id']}", query)
                    assert answer.status_code == 200, (detail, answer.content)
                    checker.check_response(answer)
    assert empty == []
    checked = {template for _method, template, _status in checker.checked}
    details = [t for t in checker.document["paths"] if t.endswith("/{id}")]
    assert {t for t in details if "get" in checker.document["paths"][t]} <= checked


def test_a_grant_of_a_stamped_file_and_one_without_are_both_valid(api, store, checker):
    response = api.get("/api/v1/grants", {"limit": 100})
    stamped = [grant["stamped"] for grant in response.json()["data"]]
    assert None in stamped and any(state is not None for state in stamped)
    checker.check_response(response)


def test_every_error_status_answers_the_documented_envelope(
    api, read_api, anonymous, store, checker
):
    product = factories.ProductFactory()
    pending = Order.objects.get(email="pending@example.com")
    factories.OrderLineFactory(order=pending, product=product, variant=None)
    answers = {
        401: anonymous.get("/api/v1/products"),
        403: read_api.post("/api/v1/products", {"name": "x"}, format="json"),
        404: api.get(f"/api/v1/orders/{uuid.uuid4()}"),
        400: api.get("/api/v1/grants", {"order_id": str(uuid.uuid4())}),
        422: api.post("/api/v1/products", {"name": ""}, format="json"),
        409: api.delete(f"/api/v1/products/{product.pk}"),
        415: api.post("/api/v1/products", "name=x", content_type="text/plain"),
    }
    for status, response in answers.items():
        assert response.status_code == status, (status, response.content)
        checker.check_response(response)
        body = response.json()
        assert set(body) == {"http_status", "code", "message", "validation_errors"}
    wrong_wrapper = api.post("/api/v1/products", {"download": {"name": "x"}}, format="json")
    assert wrong_wrapper.status_code == 400
    checker.check_response(wrong_wrapper)
    unknown_route = api.get("/api/v1/nothing-here")
    assert unknown_route.status_code == 404
    checker.check_error(unknown_route.json(), where="an unknown route")
    for action in ("pay", "refund"):
        paid = Order.objects.filter(status=Order.Status.PAID).first()
        conflict = api.post(f"/api/v1/orders/{paid.pk}/{action}", {}, format="json")
        checker.check_response(conflict)


def test_the_checker_refuses_an_undocumented_key_status_or_null(checker):
    error = {"http_status": "not_found", "code": "x", "message": "m", "validation_errors": []}
    checker.check_error(error)
    with pytest.raises(AssertionError, match=r"closed objects.*'extra' was unexpected"):
        checker.check_error({**error, "extra": 1})
    with pytest.raises(AssertionError, match="None for not nullable"):
        checker.check_error({**error, "code": None})
    with pytest.raises(AssertionError, match="does not document"):
        checker.check("GET", "/api/v1/products/", 201, {})
