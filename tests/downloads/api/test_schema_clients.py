"""Clients generated from the served schema work with their generators' default settings.

- The whole document is linted for what generators refuse or get wrong: enums whose values
  differ only in case (openapi-python-client: duplicate names), `nullable` without a `type`
  beside it (ignored under OpenAPI 3.0, so null is refused), and what TypeScript generators
  need (unique, identifier-safe operation ids and component names, enum members that stay
  distinct as identifiers, no OpenAPI 3.1 forms in a 3.0 document, every `$ref` resolved).
- openapi-python-client 0.29 generates a client with its default settings from the schema
  the live server serves, without a warning, and that client drives a merchant's flow
  against the live server (products, a download, an order paid, its grants, a reset); every
  answer it gets is validated by the strict OpenAPI 3.0 validator of schema_check.py.
"""

import importlib
import json
import os
import re
import subprocess
import sys
import uuid
from collections import Counter
from io import BytesIO
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import yaml
from django.test import Client

from accounts.models import ApiKey
from downloads.models import DownloadGrant
from tests import factories

from .schema_check import ReadStrictValidator, SchemaChecker

PACKAGE = "digital_downloads_api_client"  # from the schema's title
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
COMPONENT_NAME = re.compile(r"^[A-Za-z0-9._-]+$")  # OpenAPI 3.0's rule for component keys


@pytest.fixture(scope="module")
def openapi() -> dict:
    # Serving the schema touches no database.
    response = Client().get("/api/schema/")
    assert response.status_code == 200
    return yaml.safe_load(response.content)


def schemas_in(node, path="#"):
    """Every schema-like mapping of the document, with its JSON pointer."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from schemas_in(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from schemas_in(value, f"{path}/{index}")


def enums(document):
    return [(path, node["enum"]) for path, node in schemas_in(document) if "enum" in node]


# --- The lint ------------------------------------------------------------------------------------


def test_no_enum_lists_values_that_differ_only_in_case(openapi):
    clashes = []
    for path, values in enums(openapi):
        texts = [value.lower() for value in values if isinstance(value, str)]
        if len(set(texts)) != len(texts):
            clashes.append((path, values))
    assert clashes == []
    sortdirs = [
        parameter["schema"]["enum"]
        for item in openapi["paths"].values()
        for operation in item.values()
        for parameter in operation.get("parameters", [])
        if parameter["name"] == "sortdir"
    ]
    assert len(sortdirs) > 10 and all(values == ["asc", "desc"] for values in sortdirs)


def test_no_schema_anywhere_is_nullable_without_a_type_beside_it(openapi):
    offending = [
        path
        for path, node in schemas_in(openapi)
        if node.get("nullable") is True and "type" not in node
    ]
    assert offending == []


def test_no_one_of_has_members_a_value_could_match_twice(openapi):
    components = openapi["components"]["schemas"]
    null = {"type": "object", "nullable": True, "enum": [None]}

    def kind(member):
        if "$ref" in member:
            member = components[member["$ref"].rsplit("/", 1)[1]]
        return member.get("type") or ("object" if "properties" in member else None)

    for path, node in schemas_in(openapi):
        if "oneOf" in node:
            kinds = [kind(member) for member in node["oneOf"] if member != null]
            assert None not in kinds and len(set(kinds)) == len(kinds), (path, node["oneOf"])


def test_a_download_without_variant_and_with_expanded_objects_is_valid_under_a_strict_validator(
    openapi,
):
    root = {"allOf": [{"$ref": "#/components/schemas/Download"}], **openapi}
    validator = ReadStrictValidator(root)
    media = {
        "id": str(uuid.uuid4()),
        "object": "media",
        "filename": "guide.pdf",
        "content_type": "application/pdf",
        "byte_size": 10,
        "sha256": "0" * 64,
        "storage": "local",
        "key": "media/guide.pdf",
        "created_at": 1,
        "updated_at": 1,
    }
    download = {
        "id": str(uuid.uuid4()),
        "object": "download",
        "alt": None,
        "archived": False,
        "archived_at": None,
        "name": None,
        "title": None,
        "url": None,
        "media": str(uuid.uuid4()),
        "product": None,
        "variant": None,
        "position": 0,
        "deliver_to_existing_orders": False,
        "file_updated_at": None,
        "stamp": False,
        "stamp_text": "",
        "stamp_position": "bottom",
        "created_at": 1,
        "updated_at": 1,
    }
    assert list(validator.iter_errors(download)) == []
    assert list(validator.iter_errors({**download, "media": media})) == []
    # Null is admitted by its own member only, not by every schema.
    assert list(validator.iter_errors({**download, "media": {"not": "a media"}})) != []
    assert list(validator.iter_errors({**download, "archived": None})) != []
    link_input = openapi["components"]["schemas"]["DownloadInputRequest"]["properties"]["url"]
    link_validator = ReadStrictValidator({"allOf": [link_input], **openapi})
    for url in (None, "", "https://videos.example.com/course"):
        assert list(link_validator.iter_errors(url)) == [], url


def _identifier(value) -> str:
    """An enum value as generators name its member (`created_at:asc` → CREATED_AT_ASC)."""
    return re.sub(r"[^0-9A-Za-z]+", "_", str(value)).strip("_").upper()


def test_what_typescript_generators_need_holds(openapi):
    assert openapi["openapi"].startswith("3.0.")
    operation_ids = [
        operation["operationId"]
        for item in openapi["paths"].values()
        for method, operation in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]
    assert all(IDENTIFIER.match(name) for name in operation_ids)
    assert [name for name, n in Counter(operation_ids).items() if n > 1] == []
    components = openapi["components"]["schemas"]
    assert all(COMPONENT_NAME.match(name) and IDENTIFIER.match(name) for name in components)
    # One file per model: names must stay apart on a case-insensitive file system too.
    assert [n for n, k in Counter(name.lower() for name in components).items() if k > 1] == []
    for path, values in enums(openapi):
        members = [_identifier(value) for value in values if value is not None]
        assert len(set(members)) == len(members), (path, values)
    for path, node in schemas_in(openapi):
        if (
            "type" in node
            and isinstance(node["type"], str | list)
            and path.count("/properties/") < 50
        ):
            assert node["type"] != "null" and not isinstance(node["type"], list), path
        if "$ref" in node:
            assert node["$ref"].startswith("#/components/schemas/"), path
            assert node["$ref"].rsplit("/", 1)[1] in components, path
    # Every request body a create or update takes: the object, or SureCart's wrapper of it.
    for template, item in openapi["paths"].items():
        for method in ("post", "patch", "put"):
            body = item.get(method, {}).get("requestBody", {}).get("content", {})
            schema = body.get("application/json", {}).get("schema", {})
            if "anyOf" in schema:
                bare, wrapped = schema["anyOf"]
                wrapper = components[wrapped["$ref"].rsplit("/", 1)[1]]
                (name,) = wrapper["required"]
                assert wrapper["properties"][name] == bare, template


def test_every_create_and_update_body_has_filled_in_examples_that_the_schema_accepts(openapi):
    from openapi_schema_validator import OAS30WriteValidator

    missing, checked = [], 0
    for template, item in openapi["paths"].items():
        for method, operation in item.items():
            content = operation.get("requestBody", {}).get("content", {})
            media = content.get("application/json")
            if media is None:
                continue
            if "anyOf" in media["schema"] and not media.get("examples"):
                missing.append((method, template))
            for name, example in media.get("examples", {}).items():
                validator = OAS30WriteValidator({"allOf": [media["schema"]], **openapi})
                errors = [error.message for error in validator.iter_errors(example["value"])]
                assert errors == [], (method, template, name)
                checked += 1
    assert missing == []
    assert checked >= 25
    create = openapi["paths"]["/api/v1/products"]["post"]["requestBody"]["content"]
    examples = create["application/json"]["examples"]
    assert {"product"} == set(examples["Wrapped"]["value"])


# --- openapi-python-client against the live server -------------------------------------------


@pytest.fixture(scope="module")
def generated_client(live_server, tmp_path_factory, django_db_blocker):
    """openapi-python-client, default settings (no config file), on the served schema:
    (the imported package, the generator's output). The schema reads no table, but the live
    server's request may check the connection an earlier test left it."""
    out = tmp_path_factory.mktemp("generated") / "client"
    command = Path(sys.executable).with_name("openapi-python-client")
    environment = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    with django_db_blocker.unblock():
        result = subprocess.run(
            [command, "generate", "--url", f"{live_server.url}/api/schema/", "--output-path", out],
            capture_output=True,
            text=True,
            env=environment,
            timeout=300,
            check=False,
        )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    sys.path.insert(0, str(out))
    try:
        package = importlib.import_module(PACKAGE)
        yield package, output
    finally:
        sys.path.remove(str(out))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def test_openapi_python_client_generates_every_operation_without_a_warning(
    generated_client, openapi
):
    package, output = generated_client
    assert "Warning" not in output, output
    api = Path(package.__file__).parent / "api"
    generated = {path.stem for path in api.glob("*/*.py") if path.stem != "__init__"}
    operation_ids = {
        operation["operationId"]
        for item in openapi["paths"].values()
        for operation in item.values()
        if isinstance(operation, dict) and "operationId" in operation
    }
    assert operation_ids <= generated


@pytest.mark.django_db(transaction=True)
def test_the_generated_client_runs_a_merchant_flow_with_every_answer_valid(
    generated_client, live_server
):
    package, _output = generated_client
    schema = requests.get(f"{live_server.url}/api/schema/", timeout=30)
    checker = SchemaChecker(yaml.safe_load(schema.content))

    def validate(response):
        response.read()
        checker.check_response(response)

    raw_key = factories.api_key(ApiKey.Scope.WRITE, name="generated client")[1]
    client = package.AuthenticatedClient(
        base_url=live_server.url,
        token=raw_key,
        raise_on_unexpected_status=True,
        httpx_args={"event_hooks": {"response": [validate]}},
    )
    api = importlib.import_module(f"{PACKAGE}.api")
    models = importlib.import_module(f"{PACKAGE}.models")
    types = importlib.import_module(f"{PACKAGE}.types")

    def call(module_path: str, **kwargs):
        module = importlib.import_module(f"{api.__name__}.{module_path}")
        return module.sync_detailed(client=client, **kwargs)

    factories.ProductFactory(name="Already in the catalogue")
    listed = call(
        "products.products_list",
        sortby=models.ProductsListSortby("name"),
        sortdir=models.ProductsListSortdir("desc"),
        limit=5,
    )
    assert listed.status_code == 200
    assert [product.name for product in listed.parsed.data] == ["Already in the catalogue"]

    created = call(
        "products.products_create",
        body=models.ProductInputRequest(name="Field guide", sku="GUIDE-PDF", price=1900),
    )
    assert created.status_code == 201 and isinstance(created.parsed, models.Product)
    product = created.parsed

    uploaded = call(
        "media.media_create",
        body=models.MediaCreateRequest(
            file=types.File(
                payload=BytesIO(b"%PDF-1.4 the guide\n"),
                file_name="guide.pdf",
                mime_type="application/pdf",
            )
        ),
    )
    assert uploaded.status_code == 201, uploaded.content
    media = uploaded.parsed
    assert (media.filename, media.byte_size) == ("guide.pdf", 19)

    # SureCart's wrapped body, through the generated model of it.
    download = call(
        "downloads.downloads_create",
        body=models.WrappedDownloadInputRequest(
            download=models.DownloadInputRequest(media=media.id, product=product.id)
        ),
    ).parsed
    assert isinstance(download, models.Download)
    assert (download.media, download.product, download.variant) == (media.id, product.id, None)
    expanded = call(
        "downloads.downloads_retrieve",
        id=download.id,
        expand=[models.DownloadsRetrieveExpandItem("media")],
    ).parsed
    assert isinstance(expanded.media, models.Media) and expanded.media.id == media.id

    order = call(
        "orders.orders_create",
        body=models.OrderCreateRequest(
            email="buyer@example.com",
            lines=[models.LineInputRequest(product=product.id, quantity=1)],
            send_email=False,
        ),
    )
    assert order.status_code == 201
    order = order.parsed
    assert order.status == models.OrderStatus.PENDING

    paid = call("orders.orders_pay_create", id=order.id).parsed
    assert paid.status == models.OrderStatus.PAID and paid.paid_at is not None

    grants = call("grants.grants_list", order_ids=[order.id]).parsed
    assert [grant.download for grant in grants.data] == [download.id]
    grant = grants.data[0]
    # The URL is the configured site's (the test settings name testserver): same path here.
    served = requests.get(live_server.url + urlsplit(grant.url).path, timeout=30)
    assert served.content == b"%PDF-1.4 the guide\n"
    assert call("grants.grants_retrieve", id=grant.id).parsed.download_count == 1

    reset = call("grants.grants_reset_create", id=grant.id).parsed
    assert reset.download_count == 0 and reset.downloads_remaining == reset.download_limit
    assert DownloadGrant.objects.get(pk=grant.id).download_count == 0

    # Errors come back as the generated Error model, and are valid too.
    client.raise_on_unexpected_status = False
    missing = call("products.products_retrieve", id=uuid.uuid4())
    assert missing.status_code == 404 and isinstance(missing.parsed, models.Error)
    invalid = call("products.products_create", body=models.ProductInputRequest(name=""))
    assert invalid.status_code == 422
    assert [error.attribute for error in invalid.parsed.validation_errors] == ["name"]

    # Every answer above went through the validator: 12 calls, 11 operations.
    assert len(checker.checked) == 12, checker.checked
    assert len({(method, template) for method, template, _ in checker.checked}) == 11


README = Path(__file__).resolve().parents[3] / "README.md"
README_ROW = re.compile(
    r"^\| \[`(POST|PATCH|PUT) ([^`]+)`\]\(/api/docs/#/([^/]+)/([^)]+)\) \| (.+) \|$"
)


def test_the_readmes_request_bodies_match_the_schema_and_link_their_operations(openapi):
    from openapi_schema_validator import OAS30WriteValidator

    rows = [README_ROW.match(line) for line in README.read_text().splitlines()]
    rows = [row for row in rows if row]
    assert len(rows) >= 10
    checked = 0
    for method, path, tag, operation_id, bodies in (row.groups() for row in rows):
        operation = openapi["paths"][f"/api/v1/{path}"][method.lower()]
        assert (operation["tags"], operation["operationId"]) == ([tag], operation_id)
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        validator = OAS30WriteValidator({"allOf": [schema], **openapi})
        for text in re.findall(r"`(\{.*?\})`(?: |$|\))", bodies + " "):
            body = json.loads(re.sub(r"<[a-z ]+ id>", str(uuid.uuid4()), text))
            errors = [error.message for error in validator.iter_errors(body)]
            assert errors == [], (method, path, text)
            checked += 1
    assert checked >= 14
