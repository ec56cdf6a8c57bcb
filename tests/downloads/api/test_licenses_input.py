"""The public licence API's input rules, shared with the merchant API: no unknown query
parameter or body field is silently ignored, every answer is no-store (it holds the key), and
hostile input (lone surrogates, NULs, deep nesting) is a 4xx in the endpoint's shape, never a
500, on PostgreSQL too."""

import json
from urllib.parse import urlencode

import pytest
from django.db import connection
from rest_framework.test import APIClient

from downloads.api.parsers import MAX_JSON_DEPTH
from downloads.models import LicenseInstance
from tests import factories

pytestmark = pytest.mark.django_db

URL = "/api/v1/licenses/"
FLAGS = {"activate": "activated", "validate": "valid", "deactivate": "deactivated"}


@pytest.fixture
def api() -> APIClient:
    return APIClient(enforce_csrf_checks=True)


@pytest.fixture
def key():
    return factories.licensed_order(license_activation_limit=3).license_keys.get()


@pytest.fixture
def fields(key):
    """Each endpoint's complete, valid fields for `key` (an instance to validate and
    deactivate exists)."""
    instance = LicenseInstance.objects.create(license_key=key, name="Desk")
    key.activation_usage = 1
    key.save(update_fields=["activation_usage"])
    return {
        "activate": {"license_key": key.key, "instance_name": "Laptop"},
        "validate": {"license_key": key.key, "instance_id": str(instance.pk)},
        "deactivate": {"license_key": key.key, "instance_id": str(instance.pk)},
    }


def send(client, endpoint, data, *, as_="json", query=""):
    url = URL + endpoint + (f"?{query}" if query else "")
    if as_ == "json":
        body = data if isinstance(data, bytes) else json.dumps(data)
        return client.post(url, body, content_type="application/json")
    return client.post(url, urlencode(data), content_type="application/x-www-form-urlencoded")


def refused(response, endpoint, status) -> dict:
    """The answer, checked to be a refusal of `status` in the endpoint's shape."""
    assert response.status_code == status, response.content[:300]
    body = response.json()
    assert body[FLAGS[endpoint]] is False
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["code"], str) and body["code"]
    return body


# --- Unknown parameters and fields: the merchant API's rule ------------------------------------


@pytest.mark.parametrize("endpoint", FLAGS)
def test_a_query_parameter_is_400_naming_it_and_nothing_happens(api, key, fields, endpoint):
    usage = key.activation_usage
    for as_ in ("json", "form"):
        response = send(api, endpoint, fields[endpoint], as_=as_, query="instance=1&x=2")
        body = refused(response, endpoint, 400)
        assert body["code"] == "parameter.invalid"  # as the merchant API answers it
        assert body["error"] == "instance: Unknown query parameter."
        assert body["license_key"] is None
    key.refresh_from_db()
    assert key.activation_usage == usage and key.instances.count() == 1


@pytest.mark.parametrize(
    "endpoint, field",
    [
        ("activate", "instance_id"),  # validate's field, sent to activate
        ("activate", "name"),  # Lemon Squeezy's `instance_name`, misspelt
        ("validate", "instance_name"),
        ("validate", "licence_key"),
        ("deactivate", "instance"),
    ],
)
def test_a_body_field_the_endpoint_does_not_take_is_422_naming_it(
    api, key, fields, endpoint, field
):
    usage = key.activation_usage
    for as_ in ("json", "form"):
        response = send(api, endpoint, {**fields[endpoint], field: "x"}, as_=as_)
        body = refused(response, endpoint, 422)
        assert body["code"] == "license_key.invalid"
        assert body["error"] == f"{field}: Unknown field."
    key.refresh_from_db()
    assert key.activation_usage == usage and key.instances.count() == 1


def test_the_merchant_api_names_an_unknown_query_parameter_with_the_same_code(api, key):
    # One rule (views/base.py check_query_parameters), two APIs.
    merchant = APIClient()
    merchant.force_authenticate(factories.StaffFactory())
    answer = merchant.get("/api/v1/license_keys?instance=1").json()
    licence = send(api, "validate", {"license_key": key.key}, query="instance=1").json()
    assert licence["code"] == answer["code"] == "parameter.invalid"
    assert licence["error"] == answer["message"]


def test_the_documented_fields_are_accepted_in_every_form(api, key, fields):
    assert send(api, "activate", fields["activate"]).json()["activated"] is True
    assert send(api, "validate", fields["validate"], as_="form").json()["valid"] is True
    deactivated = send(api, "deactivate", fields["deactivate"], as_="form")
    assert (deactivated.status_code, deactivated.json()["code"]) == (200, None)


# --- no-store on every answer ------------------------------------------------------------------


def test_every_answer_is_no_store(api, key, fields, settings):
    answers = {
        "activated": send(api, "activate", fields["activate"]),
        "validated": send(api, "validate", fields["validate"]),
        "deactivated": send(api, "deactivate", fields["deactivate"]),
        "unknown key": send(api, "validate", {"license_key": "nope"}),
        "missing field": send(api, "activate", {"license_key": key.key}),
        "unknown field": send(api, "validate", {"license_key": key.key, "x": 1}),
        "query parameter": send(api, "validate", {"license_key": key.key}, query="a=b"),
        "malformed": send(api, "validate", b"{"),
        "too large": send(api, "validate", {"license_key": "K" * 20_000}),
        "wrong type": api.post(URL + "validate", b"x", content_type="text/plain"),
        "wrong method": api.get(URL + "validate"),
    }
    settings.DOWNLOADS_LICENSE_THROTTLE = "1/min"
    from django.core.cache import cache

    cache.clear()
    send(api, "validate", {"license_key": key.key})
    answers["throttled"] = send(api, "validate", {"license_key": key.key})
    assert answers["throttled"].status_code == 429
    statuses = {name: response.status_code for name, response in answers.items()}
    assert set(statuses.values()) == {200, 400, 404, 405, 413, 415, 422, 429}, statuses
    for name, response in answers.items():
        assert response["Cache-Control"] == "no-store", name


# --- Hostile input: a 4xx in the endpoint's shape, never a 500 ---------------------------------


def nested(depth: int, leaf='"x"') -> str:
    return "[" * depth + leaf + "]" * depth


HOSTILE_JSON = {
    "a lone surrogate in a value": ('{"license_key": "\\ud800"}', 422),
    "a lone low surrogate in a name": ('{"license_key": "K", "instance_name": "\\udfff"}', 422),
    "a lone surrogate in a field name": ('{"license_key": "K", "\\ud800": "x"}', 422),
    "a lone surrogate in an instance_id": ('{"license_key": "K", "instance_id": "\\udbff"}', 422),
    "NULs in every value": (
        '{"license_key": "\\u0000", "instance_name": "\\u0000", "instance_id": "\\u0000"}',
        None,  # 404 or 422: which field is refused first is the endpoint's business
    ),
    "a NUL in a field name": ('{"license_key": "K", "a\\u0000b": "x"}', 422),
    "a NUL inside a well-formed key": ('{"license_key": "ABCD\\u0000-EFGH"}', None),
    "nested one level past the bound": (
        '{"license_key": ' + nested(MAX_JSON_DEPTH) + "}",
        400,
    ),
    "nested 5,000 deep": (nested(5_000), 400),
    "nested 3,000 deep in objects": ('{"":' * 3_000 + "1" + "}" * 3_000, 400),  # < 16 KiB
    "a deep value under a good key": (
        '{"license_key": "K", "instance_name": ' + nested(2_000) + "}",
        400,
    ),
    "just under the bound": ('{"license_key": ' + nested(MAX_JSON_DEPTH - 1) + "}", 422),
}


@pytest.mark.parametrize("endpoint", FLAGS)
@pytest.mark.parametrize("case", HOSTILE_JSON)
def test_hostile_json_is_a_4xx_in_the_endpoints_shape(api, key, endpoint, case):
    body, status = HOSTILE_JSON[case]
    response = send(api, endpoint, body.encode())
    answer = refused(response, endpoint, status or response.status_code)
    assert 400 <= response.status_code < 500
    assert response["Cache-Control"] == "no-store"
    if status == 400:
        assert answer["code"] == "request.malformed"
    if "surrogate" in case:
        assert "surrogate" in answer["error"]


def test_surrogates_are_refused_naming_the_attribute(api, key):
    response = send(api, "activate", b'{"license_key": "K", "instance_name": "a\\ud800"}')
    assert refused(response, "activate", 422)["error"].startswith("instance_name: ")
    assert key.instances.count() == 0


HOSTILE_FORMS = {
    "a NUL in a value": {"license_key": "\x00", "instance_name": "a\x00b", "instance_id": "\x00"},
    "a NUL in a field name": {"license_key": "K", "\x00": "x"},
    "invalid UTF-8": None,  # raw bytes, below
}


@pytest.mark.parametrize("endpoint", FLAGS)
@pytest.mark.parametrize("case", HOSTILE_FORMS)
def test_hostile_forms_and_query_strings_are_a_4xx(api, key, endpoint, case):
    if HOSTILE_FORMS[case] is None:
        response = api.post(
            URL + endpoint + "?%ED%A0%80=%00",
            b"license_key=%ED%A0%80&instance_name=%FF%00&%C3%28=1",
            content_type="application/x-www-form-urlencoded",
        )
    else:
        response = send(api, endpoint, HOSTILE_FORMS[case], as_="form", query="%00=%00")
    refused(response, endpoint, response.status_code)
    assert 400 <= response.status_code < 500


@pytest.mark.postgres
@pytest.mark.parametrize("endpoint", FLAGS)
def test_nuls_and_surrogates_never_reach_postgresql_as_a_500(postgres_only, api, key, endpoint):
    # SQLite stores a NUL; PostgreSQL refuses it (DataError): every field and name, both ways.
    assert connection.vendor == "postgresql"
    for value in ("\x00", "A\x00" * 14, "\ud800", "\udfff\x00"):
        for name in ("license_key", "instance_name", "instance_id"):
            data = {"license_key": key.key, "instance_name": "Box", "instance_id": "0" * 32}
            data[name] = value
            as_json = json.dumps(data).encode()
            response = send(api, endpoint, as_json)
            assert 400 <= response.status_code < 500, (value, name, response.content)
            if "\ud800" not in value and "\udfff" not in value:
                response = send(api, endpoint, data, as_="form")
                assert 400 <= response.status_code < 500, (value, name, response.content)
    assert key.instances.count() == 0
