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
        "license_keys",
        "license_instances",
    ):
        assert f"/api/v1/{resource}" in paths, resource
    for action in ("pay", "refund", "attach", "detach", "send_email"):
        assert f"/api/v1/orders/{{id}}/{action}" in paths
    for action in ("reset", "extend", "revoke", "restore"):
        assert f"/api/v1/grants/{{id}}/{action}" in paths
    assert "/api/v1/media/uploads" in paths
    assert "/api/v1/media/uploads/{upload_id}/complete" in paths
    assert set(openapi["paths"]["/api/v1/license_keys"]) == {"get"}  # issued by payment only
    assert set(openapi["paths"]["/api/v1/license_keys/{id}"]) == {"get", "patch"}
    assert "/api/v1/license_keys/{license_key_id}/instances" in paths
    assert set(openapi["paths"]["/api/v1/license_keys/{license_key_id}/instances/{id}"]) == {
        "get",
        "delete",
    }


def test_every_operation_documents_its_errors_and_the_list_envelope(openapi):
    operations = [
        (path, method, operation)
        for path, item in openapi["paths"].items()
        for method, operation in item.items()
    ]
    for path, method, operation in operations:
        if "licenses (public)" in operation.get("tags", []):
            continue  # no credentials, Lemon Squeezy's answers: tests/downloads/api/test_licenses.py
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


def test_surecart_create_body_is_documented_bare_or_wrapped(openapi):
    body = openapi["paths"]["/api/v1/downloads"]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    bare, wrapped = body["anyOf"]
    assert bare == {"$ref": "#/components/schemas/DownloadInputRequest"}
    wrapped = openapi["components"]["schemas"][wrapped["$ref"].rsplit("/", 1)[1]]
    assert wrapped["required"] == ["download"]
    assert wrapped["properties"]["download"] == bare


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


def test_licence_keys_are_documented_with_enums_nullables_and_read_only_fields(openapi):
    schemas = openapi["components"]["schemas"]
    key = schemas["LicenseKey"]
    statuses = ["inactive", "active", "expired", "disabled"]
    assert key["properties"]["status"]["enum"] == statuses
    assert key["properties"]["object"]["enum"] == ["license_key"]
    for name in ("activation_limit", "activations_left", "expires_at", "disabled_at"):
        assert (key["properties"][name]["type"], key["properties"][name]["nullable"]) == (
            "integer",
            True,
        ), name
    assert key["properties"]["variant"] == {"type": "string", "format": "uuid", "nullable": True}
    for name in ("key", "status", "activation_usage", "activations_left", "customer_email"):
        assert key["properties"][name]["readOnly"] is True, name
    assert set(key["required"]) >= {"order", "order_number", "line", "product", "disabled"}
    patch = openapi["paths"]["/api/v1/license_keys/{id}"]["patch"]
    body = patch["requestBody"]["content"]["application/json"]["schema"]["anyOf"][0]
    body = schemas[body["$ref"].rsplit("/", 1)[1]]
    assert set(body["properties"]) == {"activation_limit", "expires_at", "disabled"}
    limit = body["properties"]["activation_limit"]
    assert (limit["type"], limit["minimum"], limit["nullable"]) == ("integer", 1, True)
    assert "required" not in body
    assert {"409", "422"} <= set(patch["responses"])
    parameters = {
        parameter["name"]: parameter["schema"]
        for parameter in openapi["paths"]["/api/v1/license_keys"]["get"]["parameters"]
    }
    assert parameters["status"]["enum"] == statuses
    assert {"order_ids[]", "product_ids[]", "disabled", "email", "search", "ids[]"} <= set(
        parameters
    )
    assert schemas["LicenseInstance"]["properties"]["object"]["enum"] == ["license_instance"]
    line = schemas["OrderLine"]["properties"]["license_keys"]
    assert line["type"] == "array" and "license_keys" in schemas["OrderLine"]["required"]
    delete = openapi["paths"]["/api/v1/license_keys/{license_key_id}/instances/{id}"]["delete"]
    assert delete["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Deleted"
    }


def test_webhook_event_types_include_the_licence_events(openapi):
    licence_events = {"license_key.created", "license_key.activated", "license_key.deactivated"}
    body = openapi["components"]["schemas"]["WebhookEndpointInputRequest"]
    assert licence_events <= set(body["properties"]["event_types"]["items"]["enum"])
    parameters = {
        parameter["name"]: parameter["schema"]
        for parameter in openapi["paths"]["/api/v1/webhook_deliveries"]["get"]["parameters"]
    }
    assert licence_events <= set(parameters["event_type"]["enum"])


def test_docs_page_renders_without_a_cdn(client, db):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower()


# --- schemathesis --------------------------------------------------------------------------------

RANDOM_EXAMPLES = 12
SEEDED_EXAMPLES = 8


@pytest.mark.postgres
def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    postgres_only, transactional_db, capsys
):
    raw = factories.api_key(ApiKey.Scope.WRITE, name="schemathesis")[1]
    headers = {"Authorization": f"Bearer {raw}"}
    seeded = factories.one_of_each(instance_name="Schemathesis")
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
        path_parameters = {"id": seeded.get(operation.path.split("/")[3])}
        if "{license_key_id}" in operation.path:  # a key's instances: the seeded key's own
            path_parameters = {
                "license_key_id": seeded["license_keys"],
                "id": seeded["license_instances"],
            }
        path_parameters = {
            name: value
            for name, value in path_parameters.items()
            if value is not None and f"{{{name}}}" in operation.path
        }
        if path_parameters:
            exercise(
                operation.as_strategy(path_parameters=path_parameters),
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
