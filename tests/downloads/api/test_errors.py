"""One error envelope for everything, no 500 for anything a client can send, and one
deliberate HTTP status for every domain error code the services raise."""

import ast
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.test import Client, RequestFactory

from downloads import services
from downloads.api.exceptions import (
    STATUS_BY_CODE,
    exception_handler,
    handler500,
    service_error_body,
    service_error_status,
)
from downloads.errors import ServiceError
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


# --- Domain error codes ---------------------------------------------------------------------

SERVICES = Path(services.__file__).parent
# Codes answered 422 on purpose although they are not `<entity>.invalid`: the input breaks a
# rule (it is not the current state that forbids it, which would be 409).
UNPROCESSABLE_CODES = {
    "download.media_unchanged": "the new file is already the current one",
    "download.no_product": "only a product's file can go to the product's existing orders",
    "media_upload.size_mismatch": "the bytes sent are not the size announced",
}


def service_codes() -> dict[str, str]:
    """Every `code="…"` literal in downloads/services/ (and downloads/storage.py), with where it first appears. An
    f-string code must end in `.invalid`; a bare name forwards a caller's literal (found at
    the caller)."""
    codes = {}
    # The services, and the storage, whose StorageUnavailable is a ServiceError too.
    for path in [*sorted(SERVICES.glob("*.py")), SERVICES.parent / "storage.py"]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.keyword) and node.arg == "code"):
                continue
            where = f"{path.name}:{node.value.lineno}"
            value = node.value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                codes.setdefault(value.value, where)
            elif isinstance(value, ast.JoinedStr):
                suffix = value.values[-1]
                assert isinstance(suffix, ast.Constant) and suffix.value.endswith(".invalid"), (
                    f"{where}: a computed code must be <entity>.invalid"
                )
            else:
                assert isinstance(value, ast.Name), f"{where}: an unexpected code expression"
    return codes


def test_every_code_the_services_raise_has_a_deliberate_status():
    codes = service_codes()
    assert len(codes) > 20  # the scan found the services' codes
    undecided = {
        code: where
        for code, where in codes.items()
        if code not in STATUS_BY_CODE
        and code not in UNPROCESSABLE_CODES
        and not code.endswith(".invalid")
    }
    assert undecided == {}, "add these to STATUS_BY_CODE, or to UNPROCESSABLE_CODES here"
    assert all("." in code for code in codes)


def test_the_status_table_names_only_codes_the_services_raise():
    codes = service_codes()
    assert set(STATUS_BY_CODE) - set(codes) == set()
    assert set(UNPROCESSABLE_CODES) - set(codes) == set()
    assert set(UNPROCESSABLE_CODES) & set(STATUS_BY_CODE) == set()


@pytest.mark.parametrize("code", sorted(service_codes()))
def test_a_service_code_reaches_the_envelope_unchanged_with_its_status(code):
    exc = ServiceError("Refused.", code=code, attribute="name", reason="blank")
    # Under another resource's view: the code is never re-prefixed with the view's object.
    response = exception_handler(exc, {"view": SimpleNamespace(object_name="product")})
    assert response.status_code == service_error_status(exc) == STATUS_BY_CODE.get(code, 422)
    assert response.data == service_error_body(exc)
    assert response.data["code"] == code
    assert response.data["validation_errors"] == [
        {"attribute": "name", "code": "blank", "message": "Refused."}
    ]
