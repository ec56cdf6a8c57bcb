"""The OpenAPI document, its docs page, and schemathesis over every operation of it."""

import time

import pytest
import schemathesis
import yaml
from django.test import Client
from hypothesis import HealthCheck, Phase, given, settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.models import ApiKey
from downloads.models import Order
from downloads.money import MAX_AMOUNT
from downloads_project.wsgi import application
from tests import factories


@pytest.fixture(scope="module")
def openapi() -> dict:
    # Generated once for the module (about 2 s); serving it touches no database.
    response = Client().get("/api/schema/")
    assert response.status_code == 200
    return yaml.safe_load(response.content)


def test_schema_is_a_valid_openapi_3_document_of_every_resource(openapi):
    validate(openapi)
    assert openapi["openapi"].startswith("3.")
    paths = set(openapi["paths"])
    for resource in (
        "products",
        "variants",
        "media",
        "downloads",
        "orders",
        "grants",
        "events",
        "customers",
    ):
        assert f"/api/v1/{resource}" in paths, resource
    for action in ("pay", "refund", "attach", "detach", "send_email"):
        assert f"/api/v1/orders/{{id}}/{action}" in paths
    for action in ("reset", "extend", "revoke", "restore"):
        assert f"/api/v1/grants/{{id}}/{action}" in paths
    assert "/api/v1/media/uploads" in paths
    assert "/api/v1/media/uploads/{upload_id}/complete" in paths


def test_every_operation_documents_its_errors_and_the_list_envelope(openapi):
    operations = [
        (path, method, operation)
        for path, item in openapi["paths"].items()
        for method, operation in item.items()
    ]
    for path, method, operation in operations:
        responses = operation["responses"]
        assert {"400", "401", "403", "429"} <= set(responses), (path, method)
        if method in ("post", "put", "patch"):
            assert {"409", "413", "415", "422"} <= set(responses), (path, method)
        if "{" in path:
            assert "404" in responses, (path, method)
        error = responses["401"]["content"]["application/json"]["schema"]
        assert error == {"$ref": "#/components/schemas/Error"}
    envelope = openapi["paths"]["/api/v1/grants"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"]
    envelope = openapi["components"]["schemas"][envelope["$ref"].rsplit("/", 1)[1]]
    assert envelope["properties"]["object"]["enum"] == ["list"]
    assert set(envelope["properties"]["pagination"]["required"]) == {
        "count",
        "count_is_estimate",
        "limit",
        "page",
        "url",
    }
    names = {
        parameter["name"] for parameter in openapi["paths"]["/api/v1/grants"]["get"]["parameters"]
    }
    assert {
        "page",
        "perpage",
        "limit",
        "sortby",
        "sortdir",
        "sort",
        "search",
        "ids[]",
        "order_ids[]",
    } <= names


def test_surecart_create_body_is_documented_wrapped_or_bare(openapi):
    body = openapi["paths"]["/api/v1/downloads"]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    component = openapi["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    wrapped, bare = component["anyOf"]
    assert wrapped["required"] == ["download"]
    assert bare == wrapped["properties"]["download"]


def test_money_and_channels_are_documented_with_their_bounds(openapi):
    schemas = openapi["components"]["schemas"]
    order = schemas["Order"]
    money_fields = {"currency", "subtotal", "tax", "total", "refunded_total", "payment_method"}
    times = {"paid_at", "disputed_at"}
    assert money_fields | times | {"channel", "external_id"} <= set(order["required"])
    assert order["properties"]["channel"]["enum"] == ["api", "admin", "stripe", "shopify"]
    assert {"price", "total", "external_id", "refunded_quantity"} <= set(
        schemas["OrderLine"]["required"]
    )
    amounts = [
        schemas["OrderCreateRequest"]["properties"]["tax"],
        schemas["LineInputRequest"]["properties"]["price"],
        schemas["RefundRequest"]["properties"]["amount"],
        schemas["ProductInputRequest"]["properties"]["price"],
        schemas["VariantInputRequest"]["properties"]["price"],
    ]
    assert all(
        (a["type"], a["minimum"], a["maximum"]) == ("integer", 0, MAX_AMOUNT) for a in amounts
    )
    assert schemas["Variant"]["properties"]["price"]["nullable"] is True
    assert schemas["Variant"]["properties"]["effective_price"]["readOnly"] is True
    create = openapi["paths"]["/api/v1/orders"]["post"]["responses"]
    assert create["200"]["content"] == create["201"]["content"]
    assert "external_id" in create["200"]["description"]
    parameters = {
        parameter["name"]: parameter["schema"]
        for parameter in openapi["paths"]["/api/v1/orders"]["get"]["parameters"]
    }
    assert parameters["channel"]["enum"] == ["api", "admin", "stripe", "shopify"]
    assert parameters["external_id"] == {"type": "string", "maxLength": 255}


def test_docs_page_renders_without_a_cdn(client, db):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower()


# --- schemathesis --------------------------------------------------------------------------------

RANDOM_EXAMPLES = 12
SEEDED_EXAMPLES = 8


def _seed() -> dict[str, str]:
    """One object of each resource, so generated calls also reach real objects."""
    customer = factories.UserFactory(password=None)
    order = factories.OrderFactory(
        status=Order.Status.PAID, customer=customer, email=customer.email
    )
    line = factories.OrderLineFactory(order=order, variant=None)
    variant = factories.VariantFactory(product=line.product)
    grant = factories.GrantFactory(order=order, line=line)
    event = factories.EventFactory(grant=grant)
    return {
        "products": str(line.product_id),
        "variants": str(variant.pk),
        "media": str(grant.download.media_id),
        "downloads": str(grant.download_id),
        "orders": str(order.pk),
        "grants": str(grant.pk),
        "events": str(event.pk),
        "customers": customer.pk,
    }


@pytest.mark.postgres
def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    postgres_only, transactional_db, capsys
):
    raw = factories.api_key(ApiKey.Scope.WRITE, name="schemathesis")[1]
    headers = {"Authorization": f"Bearer {raw}"}
    seeded = _seed()
    schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
    ]
    # Invalid inputs must never crash the app (DRF coerces some, e.g. 12 for a string, so
    # schemathesis' negative_data_rejection is not asserted).
    negative_checks = [not_a_server_error, status_code_conformance]
    counts = {"operations": 0, "examples": 0}
    started = time.monotonic()

    def exercise(strategy, max_examples, case_checks):
        @settings(
            max_examples=max_examples,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def run(case):
            counts["examples"] += 1
            response = case.call(headers=headers)
            case.validate_response(response, checks=case_checks, headers=headers)

        run()

    for result in schema.get_all_operations():
        operation = result.ok()
        counts["operations"] += 1
        exercise(operation.as_strategy(), RANDOM_EXAMPLES, checks)
        exercise(
            operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
            RANDOM_EXAMPLES // 2,
            negative_checks,
        )
        seeded_id = seeded.get(operation.path.split("/")[3])
        if "{id}" in operation.path and seeded_id is not None:
            exercise(
                operation.as_strategy(path_parameters={"id": seeded_id}),
                SEEDED_EXAMPLES,
                checks,
            )

    elapsed = time.monotonic() - started
    with capsys.disabled():
        print(
            f"\nschemathesis: {counts['operations']} operations, {counts['examples']} examples, "
            f"{elapsed:.1f}s"
        )
    assert counts["operations"] >= 35
