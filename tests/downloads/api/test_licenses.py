"""The public licence API (downloads/api/licenses.py): Lemon Squeezy's activate, validate and
deactivate, with no authentication, form or JSON bodies, every refusal in the endpoint's shape,
the address throttle, one SQL statement a validation, and the limit under 50 parallel clients."""

import json
from datetime import UTC, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
import schemathesis
import yaml
from django.conf import settings as django_settings
from django.core.cache import cache
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from rest_framework.test import APIClient
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from downloads.models import LicenseInstance, LicenseKey
from downloads.services.licences import license_key_activate
from downloads.services.orders import LineInput, order_create
from downloads_project import settings as project_settings
from downloads_project.wsgi import application
from tests import factories
from tests.concurrency import at_once
from tests.downloads_project.test_settings import load_settings

pytestmark = pytest.mark.django_db

URL = "/api/v1/licenses/"
FLAGS = {"activate": "activated", "validate": "valid", "deactivate": "deactivated"}
NOT_FOUND = "license_key not found."
UNKNOWN_KEY = "0000000-0000000-0000000-0000000"  # well formed, never issued


@pytest.fixture(autouse=True)
def _license_rate_unthrottled(settings):
    """Most tests call many times from one address: a rate none reaches, fresh counters."""
    settings.DOWNLOADS_LICENSE_THROTTLE = "100000/min"
    cache.clear()


@pytest.fixture
def api() -> APIClient:
    """No credentials, and CSRF checked as a browser's session would be: none is needed."""
    return APIClient(enforce_csrf_checks=True)


def post(client, endpoint: str, data, *, as_="form", **extra):
    """POST `data` to one endpoint: form-encoded (Lemon Squeezy's docs), JSON or multipart."""
    if as_ == "json":
        return client.post(
            URL + endpoint, json.dumps(data), content_type="application/json", **extra
        )
    if as_ == "multipart":
        return client.post(URL + endpoint, data, format="multipart", **extra)
    return client.post(
        URL + endpoint,
        urlencode(data),
        content_type="application/x-www-form-urlencoded",
        **extra,
    )


def iso(moment) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def a_key(limit=3, **product_fields) -> LicenseKey:
    return factories.licensed_order(
        license_activation_limit=limit, **product_fields
    ).license_keys.get()


def activate(api, key, name="Laptop") -> dict:
    response = post(api, "activate", {"license_key": key.key, "instance_name": name})
    assert response.status_code == 200, response.content
    return response.json()


def expected_key(key: LicenseKey, status: str) -> dict:
    key.refresh_from_db()
    return {
        "id": str(key.pk),
        "status": status,
        "key": key.key,
        "activation_limit": key.activation_limit,
        "activation_usage": key.activation_usage,
        "created_at": iso(key.created_at),
        "expires_at": iso(key.expires_at),
    }


def expected_meta(key: LicenseKey) -> dict:
    order = key.order
    return {
        "order_id": str(order.pk),
        "order_number": order.number,
        "order_item_id": str(key.line_id),
        "product_id": str(key.product_id),
        "product_name": key.product.name,
        "variant_id": str(key.variant_id) if key.variant_id else None,
        "variant_name": key.variant.name if key.variant_id else None,
        "customer_name": (order.customer.name or None) if order.customer_id else None,
        "customer_email": order.email,
    }


# --- Activate, validate, deactivate -------------------------------------------------------------


def test_activating_answers_200_with_lemon_squeezys_shape_and_the_keys_values(api):
    factories.UserFactory(email="ada@example.com", name="Ada Lovelace")
    product = factories.ProductFactory(
        name="Sketcher", license_keys=True, license_activation_limit=3, license_expiry_days=365
    )
    variant = factories.VariantFactory(product=product, name="Pro")
    order = order_create(
        email="ada@example.com",
        lines=[LineInput(product=product, variant=variant)],
        status="paid",
        send_email=False,
    )
    key = order.license_keys.get()

    response = post(api, "activate", {"license_key": key.key, "instance_name": "Ada's laptop"})

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    instance = LicenseInstance.objects.get(license_key=key)
    assert response.json() == {
        "activated": True,
        "error": None,
        "code": None,
        "license_key": expected_key(key, "active"),
        "instance": {
            "id": str(instance.pk),
            "name": "Ada's laptop",
            "created_at": iso(instance.created_at),
        },
        "meta": {
            "order_id": str(order.pk),
            "order_number": order.number,
            "order_item_id": str(order.lines.get().pk),
            "product_id": str(product.pk),
            "product_name": "Sketcher",
            "variant_id": str(variant.pk),
            "variant_name": "Pro",
            "customer_name": "Ada Lovelace",
            "customer_email": "ada@example.com",
        },
    }
    body = response.json()["license_key"]
    assert (body["activation_limit"], body["activation_usage"]) == (3, 1)
    assert body["created_at"].endswith("Z") and len(body["created_at"]) == 27
    assert body["expires_at"] == iso(order.paid_at + timedelta(days=365))


def test_a_key_typed_loosely_activates_and_answers_its_stored_form(api):
    key = a_key()
    typed = " " + key.key.lower().replace("-", " ").replace("0", "o").replace("1", "l") + " "
    body = post(api, "activate", {"license_key": typed, "instance_name": "Desk"}).json()
    assert body["activated"] is True
    assert body["license_key"]["key"] == key.key


def test_validating_without_an_instance_answers_the_key_and_no_instance(api):
    key = a_key()
    response = post(api, "validate", {"license_key": key.key})
    assert response.status_code == 200
    assert response.json() == {
        "valid": True,
        "error": None,
        "code": None,
        "license_key": expected_key(key, "inactive"),
        "instance": None,
        "meta": expected_meta(key),
    }


def test_validating_with_an_instance_answers_that_instance(api):
    key = a_key()
    instance = activate(api, key)["instance"]
    activate(api, key, name="Other machine")
    response = post(api, "validate", {"license_key": key.key, "instance_id": instance["id"]})
    assert response.status_code == 200
    body = response.json()
    assert (body["valid"], body["error"], body["instance"]) == (True, None, instance)
    assert body["license_key"] == expected_key(key, "active")
    assert body["license_key"]["activation_usage"] == 2


@pytest.mark.parametrize("instance_id", ["another key's", "not-an-id", "0" * 32, "\x00"])
def test_validating_an_instance_the_key_does_not_have_is_404_with_the_key(api, instance_id):
    key, other = a_key(), a_key()
    if instance_id == "another key's":
        instance_id = activate(api, other)["instance"]["id"]
    response = post(api, "validate", {"license_key": key.key, "instance_id": instance_id})
    assert response.status_code == 404
    assert response.json() == {
        "valid": False,
        "error": "instance_id not found.",
        "code": "license_instance.not_found",
        "license_key": expected_key(key, "inactive"),
        "instance": None,
        "meta": expected_meta(key),
    }


def test_deactivating_drops_the_instance_and_gives_its_activation_back(api):
    key = a_key()
    kept = activate(api, key, name="Kept")["instance"]
    gone = activate(api, key, name="Gone")["instance"]
    response = post(api, "deactivate", {"license_key": key.key, "instance_id": gone["id"]})
    assert response.status_code == 200
    assert response.json() == {
        "deactivated": True,
        "error": None,
        "code": None,
        "license_key": expected_key(key, "active"),
        "meta": expected_meta(key),
    }
    assert response.json()["license_key"]["activation_usage"] == 1
    assert [str(pk) for pk in key.instances.values_list("id", flat=True)] == [kept["id"]]
    again = post(api, "deactivate", {"license_key": key.key, "instance_id": gone["id"]})
    assert again.status_code == 404
    assert again.json()["error"] == "instance_id not found."
    assert again.json()["license_key"]["activation_usage"] == 1


def test_the_last_deactivation_makes_the_key_inactive_and_it_activates_again(api):
    key = a_key(limit=1)
    first = activate(api, key)["instance"]
    body = post(api, "deactivate", {"license_key": key.key, "instance_id": first["id"]}).json()
    assert body["license_key"]["status"] == "inactive"
    assert body["license_key"]["activation_usage"] == 0
    again = activate(api, key, name="Reinstalled")
    assert again["license_key"]["activation_usage"] == 1
    assert again["instance"]["id"] != first["id"]
    assert (
        post(api, "validate", {"license_key": key.key, "instance_id": first["id"]}).status_code
        == 404
    )


def test_activating_past_the_limit_is_400_not_activated_and_the_usage_stays(api):
    key = a_key(limit=2)
    activate(api, key, name="One")
    activate(api, key, name="Two")
    response = post(api, "activate", {"license_key": key.key, "instance_name": "Three"})
    assert response.status_code == 400
    assert response.json() == {
        "activated": False,
        "error": "This license key has reached the activation limit.",
        "code": "license_key.limit_reached",
        "license_key": expected_key(key, "active"),
        "instance": None,
        "meta": expected_meta(key),
    }
    assert response.json()["license_key"]["activation_usage"] == 2
    assert key.instances.count() == 2


def test_an_unlimited_key_answers_a_null_limit(api):
    key = a_key(limit=None)
    body = activate(api, key)
    assert (body["license_key"]["activation_limit"], body["license_key"]["activation_usage"]) == (
        None,
        1,
    )


def _expire(key):
    LicenseKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))


def _disable(key):
    LicenseKey.objects.filter(pk=key.pk).update(disabled_at=timezone.now())


@pytest.mark.parametrize(
    ("change", "status", "error"),
    [
        (_expire, "expired", "This license key has expired."),
        (_disable, "disabled", "This license key is disabled."),
    ],
)
def test_an_expired_or_disabled_key_validates_as_not_valid_with_its_status(
    api, change, status, error
):
    key = a_key()
    instance = activate(api, key)["instance"]
    change(key)
    response = post(api, "validate", {"license_key": key.key, "instance_id": instance["id"]})
    assert response.status_code == 200
    assert response.json() == {
        "valid": False,
        "error": error,
        "code": f"license_key.{status}",
        "license_key": expected_key(key, status),
        "instance": instance,
        "meta": expected_meta(key),
    }


@pytest.mark.parametrize(
    ("change", "status", "error"),
    [
        (_expire, "expired", "This license key has expired."),
        (_disable, "disabled", "This license key is disabled."),
    ],
)
def test_an_expired_or_disabled_key_is_refused_activation_with_400(api, change, status, error):
    key = a_key()
    change(key)
    response = post(api, "activate", {"license_key": key.key, "instance_name": "Laptop"})
    assert response.status_code == 400
    assert response.json() == {
        "activated": False,
        "error": error,
        "code": f"license_key.{status}",
        "license_key": expected_key(key, status),
        "instance": None,
        "meta": expected_meta(key),
    }
    assert key.instances.count() == 0


def test_a_disabled_key_can_still_free_an_activation(api):
    key = a_key()
    instance = activate(api, key)["instance"]
    _disable(key)
    response = post(api, "deactivate", {"license_key": key.key, "instance_id": instance["id"]})
    assert response.status_code == 200
    assert response.json()["license_key"]["status"] == "disabled"
    assert response.json()["license_key"]["activation_usage"] == 0


# --- Unknown and malformed keys; missing and wrong fields -------------------------------------


# (A lone surrogate is no key either, but text no API takes: 422, test_licenses_input.py.)
BAD_KEYS = [UNKNOWN_KEY, "not a key", "", "X" * 10_000, "\x00" * 28, "ABC-" * 7]
# The fields each endpoint takes besides license_key.
OTHER_FIELDS = {
    "activate": {"instance_name": "Laptop"},
    "validate": {"instance_id": "0" * 32},
    "deactivate": {"instance_id": "0" * 32},
}


@pytest.mark.parametrize("endpoint", FLAGS)
def test_unknown_and_malformed_keys_get_the_same_404_body(api, endpoint):
    a_key()  # a store with keys: none of them is any of these
    fields = OTHER_FIELDS[endpoint]
    answers = []
    for text in BAD_KEYS[:2] + BAD_KEYS[3:]:
        response = post(api, endpoint, {"license_key": text, **fields}, as_="json")
        answers.append((response.status_code, response.json()))
    expected = {
        FLAGS[endpoint]: False,
        "error": NOT_FOUND,
        "code": "license_key.not_found",
        "license_key": None,
        "meta": None,
    }
    if endpoint != "deactivate":
        expected["instance"] = None
    assert answers == [(404, expected)] * len(answers)


@pytest.mark.parametrize(
    ("endpoint", "fields", "error"),
    [
        ("activate", {}, "license_key is required."),
        ("activate", {"license_key": "  ", "instance_name": "x"}, "license_key is required."),
        ("activate", {"license_key": UNKNOWN_KEY}, "instance_name is required."),
        (
            "activate",
            {"license_key": UNKNOWN_KEY, "instance_name": ""},
            "instance_name is required.",
        ),
        ("activate", {"license_key": "K", "instance_name": "x" * 256}, "at most 255 characters"),
        ("validate", {}, "license_key is required."),
        ("validate", {"instance_id": "x"}, "license_key is required."),
        ("deactivate", {"license_key": UNKNOWN_KEY}, "instance_id is required."),
        ("deactivate", {"instance_id": "x"}, "license_key is required."),
    ],
)
def test_a_missing_or_blank_field_is_422_in_the_same_shape(api, endpoint, fields, error):
    a_key()
    for as_ in ("form", "json"):
        response = post(api, endpoint, fields, as_=as_)
        assert response.status_code == 422, (as_, response.content)
        body = response.json()
        assert body[FLAGS[endpoint]] is False
        assert error in body["error"]
        assert body["license_key"] is None and body["meta"] is None


@pytest.mark.parametrize("value", [12, 1.5, True, ["K"], {"key": "K"}])
@pytest.mark.parametrize(
    ("endpoint", "field"),
    [
        ("activate", "license_key"),
        ("activate", "instance_name"),
        ("validate", "license_key"),
        ("validate", "instance_id"),
        ("deactivate", "instance_id"),
    ],
)
def test_a_field_of_the_wrong_type_is_422(api, endpoint, field, value):
    key = a_key()
    fields = {"license_key": key.key, **OTHER_FIELDS[endpoint], field: value}
    response = post(api, endpoint, fields, as_="json")
    assert response.status_code == 422
    assert response.json()["error"] == f"{field} must be a string."
    assert key.instances.count() == 0


@pytest.mark.parametrize("name", ["Laptop\x00", "\ud800 laptop"])
def test_an_instance_name_the_database_cannot_store_is_422(api, name):
    key = a_key()
    response = post(api, "activate", {"license_key": key.key, "instance_name": name}, as_="json")
    assert response.status_code == 422
    assert response.json()["activated"] is False
    key.refresh_from_db()
    assert key.activation_usage == 0


@pytest.mark.parametrize("as_", ["form", "json", "multipart"])
def test_form_json_and_multipart_bodies_get_the_same_answers(api, as_):
    key = a_key()
    activated = post(api, "activate", {"license_key": key.key, "instance_name": "Box"}, as_=as_)
    assert activated.status_code == 200
    instance_id = activated.json()["instance"]["id"]
    validated = post(api, "validate", {"license_key": key.key, "instance_id": instance_id}, as_=as_)
    assert (validated.status_code, validated.json()["valid"]) == (200, True)
    deactivated = post(
        api, "deactivate", {"license_key": key.key, "instance_id": instance_id}, as_=as_
    )
    assert (deactivated.status_code, deactivated.json()["deactivated"]) == (200, True)


def test_an_empty_instance_id_validates_the_key_alone(api):
    key = a_key()
    body = post(api, "validate", {"license_key": key.key, "instance_id": ""}).json()
    assert (body["valid"], body["instance"]) == (True, None)
    body = post(api, "validate", {"license_key": key.key, "instance_id": None}, as_="json").json()
    assert (body["valid"], body["instance"]) == (True, None)


JUNK = {
    "invalid JSON": ("application/json", b'{"license_key": '),
    "a JSON array": ("application/json", b'["license_key", "instance_name"]'),
    "a JSON string": ("application/json", b'"license_key"'),
    "1 MB of junk": ("application/x-www-form-urlencoded", b"\xff&=%" * 262_144),
    "1 MB of JSON": ("application/json", b'{"license_key": "' + b"A" * 1_048_576 + b'"}'),
    "NUL bytes": ("application/json", b'{"license_key": "\x00\x00", "instance_name": "\x00"}'),
    "raw NUL bytes": ("application/x-www-form-urlencoded", b"\x00" * 64),
    "a lone surrogate": (
        "application/json",
        b'{"license_key": "\\ud800", "instance_name": "\\udfff", "instance_id": "\\ud800"}',
    ),
    "invalid UTF-8": ("application/json", b'{"license_key": "\xc3\x28"}'),
    "nested 1000 deep": ("application/json", b"[" * 1000 + b"]" * 1000),
    "nested 1000 deep in a field": (
        "application/json",
        b'{"license_key": ' + b"[" * 1000 + b"]" * 1000 + b"}",
    ),
    "2000 form fields": ("application/x-www-form-urlencoded", b"&".join([b"a=b"] * 2000)),
    "plain text": ("text/plain", b"license_key=K&instance_name=x"),
    "a broken multipart": ("multipart/form-data; boundary=xyz", b"--xyz\r\nnonsense"),
    "multipart without a boundary": ("multipart/form-data", b"license_key=K"),
}


@pytest.mark.parametrize("endpoint", FLAGS)
@pytest.mark.parametrize("junk", JUNK)
def test_junk_bodies_get_a_4xx_in_the_same_shape_never_a_5xx(api, endpoint, junk):
    content_type, body = JUNK[junk]
    response = api.post(URL + endpoint, body, content_type=content_type)
    assert 400 <= response.status_code < 500, response.content[:300]
    answer = response.json()
    assert answer[FLAGS[endpoint]] is False
    assert isinstance(answer["error"], str) and answer["error"]
    assert answer["license_key"] is None and answer["meta"] is None


def test_a_body_over_16_kib_is_413_without_being_read(api):
    response = post(api, "validate", {"license_key": "K" * 20_000})
    assert response.status_code == 413
    assert response.json()["error"] == "The request body is larger than 16384 bytes."


def test_another_method_is_405_in_the_same_shape(api):
    response = api.get(URL + "validate")
    assert response.status_code == 405
    assert response["Allow"].startswith("POST")
    assert response.json() == {
        "valid": False,
        "error": 'Method "GET" not allowed.',
        "code": "request.method_not_allowed",
        "license_key": None,
        "instance": None,
        "meta": None,
    }


def test_answers_are_json_whatever_accept_says(api):
    key = a_key()
    response = post(api, "validate", {"license_key": key.key}, HTTP_ACCEPT="text/html")
    assert (response.status_code, response["Content-Type"]) == (200, "application/json")


def test_no_credentials_are_needed_and_none_get_in_the_way(api, staff):
    key = a_key()
    api.force_login(staff)  # a session cookie, without a CSRF token
    api.credentials(HTTP_AUTHORIZATION="Bearer dd_000000000000_not-a-key")
    response = post(api, "validate", {"license_key": key.key})
    assert (response.status_code, response.json()["valid"]) == (200, True)


# --- Throttling ---------------------------------------------------------------------------------


def test_the_default_rate_is_60_a_minute_and_a_bad_one_stops_the_start(tmp_path):
    assert project_settings.DOWNLOADS_LICENSE_THROTTLE == "60/min"
    (refused,) = load_settings(
        [{"DJANGO_DEBUG": "1", "DOWNLOADS_LICENSE_THROTTLE": "60 a minute"}], ["DEBUG"], tmp_path
    )
    assert "DOWNLOADS_LICENSE_THROTTLE must be N/sec" in refused["error"]


def test_guessing_keys_from_one_address_is_429_long_before_it_gets_anywhere(api, settings):
    settings.DOWNLOADS_LICENSE_THROTTLE = "5/min"
    key = a_key()
    guesses = [
        post(api, "validate", {"license_key": f"{n:07d}-0000000-0000000-0000000"}) for n in range(6)
    ]
    assert [response.status_code for response in guesses] == [404] * 5 + [429]
    throttled = guesses[-1]
    assert 0 < int(throttled["Retry-After"]) <= 60
    assert throttled["X-RateLimit-Limit"] == "5"
    assert throttled["X-RateLimit-Remaining"] == "0"
    assert throttled.json() == {
        "valid": False,
        "error": "Too many requests: retry after Retry-After seconds.",
        "code": "throttled",
        "license_key": None,
        "instance": None,
        "meta": None,
    }
    # The right key from that address waits too; another address is still served.
    assert post(api, "validate", {"license_key": key.key}).status_code == 429
    assert post(api, "activate", {"license_key": key.key}).status_code == 429
    other = post(api, "validate", {"license_key": key.key}, REMOTE_ADDR="10.0.0.2")
    assert (other.status_code, other.json()["valid"]) == (200, True)
    assert other["X-RateLimit-Remaining"] == "4"


def test_a_forged_forwarded_for_does_not_reset_the_budget_of_an_address(api, settings):
    settings.DOWNLOADS_LICENSE_THROTTLE = "1/min"
    assert post(api, "validate", {}, HTTP_X_FORWARDED_FOR="10.0.0.1").status_code == 422
    assert post(api, "validate", {}, HTTP_X_FORWARDED_FOR="10.0.0.2").status_code == 429


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget(
    api, settings, monkeypatch
):
    from rest_framework.settings import api_settings

    monkeypatch.setattr(api_settings, "NUM_PROXIES", 1)
    settings.DOWNLOADS_LICENSE_THROTTLE = "1/min"
    assert post(api, "validate", {}, HTTP_X_FORWARDED_FOR="10.0.0.1").status_code == 422
    assert post(api, "validate", {}, HTTP_X_FORWARDED_FOR="10.0.0.1").status_code == 429
    assert post(api, "validate", {}, HTTP_X_FORWARDED_FOR="10.0.0.2").status_code == 422


def test_a_throttled_request_runs_no_sql(api, settings, django_assert_num_queries):
    settings.DOWNLOADS_LICENSE_THROTTLE = "1/min"
    key = a_key()
    post(api, "validate", {"license_key": key.key})
    with django_assert_num_queries(0):
        assert post(api, "validate", {"license_key": key.key}).status_code == 429


# --- The hot path: one statement a validation ---------------------------------------------------


def test_a_validation_is_one_sql_statement(api, django_assert_num_queries):
    """One SELECT (the key, its order, customer, product, variant and the instance asked
    about), with no BEGIN/COMMIT around it (Django would record them, on SQLite, among the
    queries counted here); the throttle is the cache's alone."""
    factories.UserFactory(email="buyer@example.com", name="Buyer")
    key = a_key()
    key.variant = factories.VariantFactory(product=key.product)
    key.save()
    instance = activate(api, key)["instance"]
    with django_assert_num_queries(1):
        with_instance = post(
            api, "validate", {"license_key": key.key, "instance_id": instance["id"]}
        )
    with django_assert_num_queries(1):
        without = post(api, "validate", {"license_key": key.key})
    with django_assert_num_queries(1):
        unknown_instance = post(api, "validate", {"license_key": key.key, "instance_id": "x"})
    with django_assert_num_queries(1):
        unknown_key = post(api, "validate", {"license_key": UNKNOWN_KEY})
    with django_assert_num_queries(0):
        malformed_key = post(api, "validate", {"license_key": "nope"})
    assert [r.status_code for r in (with_instance, without, unknown_instance, unknown_key)] == [
        200,
        200,
        404,
        404,
    ]
    assert malformed_key.json() == unknown_key.json()
    assert with_instance.json()["meta"]["customer_name"] == "Buyer"
    assert with_instance.json()["meta"]["variant_name"] == key.variant.name


# --- Concurrency, through the real endpoint -----------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_fifty_parallel_activations_of_a_key_with_a_limit_of_three_make_exactly_three(
    postgres_only, live_server, settings
):
    settings.DOWNLOADS_LICENSE_THROTTLE = "100000/min"
    key = a_key(limit=3)
    url = live_server.url + URL + "activate"

    def activate_once(n: int):
        with requests.Session() as session:
            response = session.post(
                url,
                data={"license_key": key.key, "instance_name": f"Machine {n}"},
                headers={"Accept": "application/json"},
                timeout=60,
            )
            return response.status_code, response.json()

    answers = at_once(50, activate_once, timeout=90)
    statuses = [status for status, _ in answers]
    assert len(answers) == 50
    assert (statuses.count(200), statuses.count(400)) == (3, 47)
    refusals = [body for status, body in answers if status == 400]
    assert {body["error"] for body in refusals} == {
        "This license key has reached the activation limit."
    }
    assert all(body["activated"] is False and body["instance"] is None for body in refusals)
    key.refresh_from_db()
    assert key.activation_usage == 3
    assert key.instances.count() == 3


# --- The client snippet of README.md ("Licence keys"), run as written --------------------------


def readme_client(api: str, saved) -> dict:
    """The README's Python client, its functions bound to `api` and the file `saved`."""
    readme = (Path(django_settings.BASE_DIR) / "README.md").read_text()
    section = readme.split("\n## Licence keys\n", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "README.md, Licence keys", "exec"), namespace)  # noqa: S102 - our own README
    namespace.update(API=api, SAVED=saved)
    return namespace


@pytest.mark.django_db(transaction=True)
def test_the_readme_client_activates_validates_on_start_and_deactivates(
    live_server, settings, tmp_path
):
    key = a_key(limit=1)
    app = readme_client(live_server.url + URL.rstrip("/"), tmp_path / "licence.json")
    assert app["licensed"]() is False  # nothing activated yet
    app["activate"](key.key.lower())  # as the buyer typed it
    saved = json.loads((tmp_path / "licence.json").read_text())
    assert saved["instance_id"] == str(key.instances.get().pk)
    assert app["licensed"]() is True
    _disable(key)
    assert app["licensed"]() is False
    LicenseKey.objects.filter(pk=key.pk).update(disabled_at=None)
    with pytest.raises(ValueError, match="reached the activation limit"):
        app["activate"](key.key)  # a second machine: the key allows one
    app["deactivate"]()
    assert not (tmp_path / "licence.json").exists()
    key.refresh_from_db()
    assert key.activation_usage == 0
    with pytest.raises(ValueError, match="license_key not found"):
        app["activate"](UNKNOWN_KEY)
    app["activate"](key.key)
    settings.DOWNLOADS_LICENSE_THROTTLE = "1/min"
    cache.clear()
    assert app["licensed"]() is True
    assert app["licensed"]() is True  # throttled (429): the grace branch, not a refusal
    assert post(APIClient(), "validate", {"license_key": key.key}).status_code == 429


# --- The schema, and schemathesis over the three operations ------------------------------------


@pytest.fixture(scope="module")
def openapi() -> dict:
    response = Client().get("/api/schema/")
    assert response.status_code == 200
    return yaml.safe_load(response.content)


def test_the_three_operations_are_in_the_schema_public_with_their_bodies(openapi):
    schemas = openapi["components"]["schemas"]
    for endpoint, flag in FLAGS.items():
        operation = openapi["paths"][f"{URL}{endpoint}"]["post"]
        assert operation["tags"] == ["licenses (public)"]
        assert operation["operationId"] == f"license_{endpoint}"
        assert operation["security"] == []
        content = operation["requestBody"]["content"]
        assert {"application/json", "application/x-www-form-urlencoded"} <= set(content)
        assert set(operation["responses"]) == {"200", "400", "404", "413", "415", "422", "429"}
        answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert all(
            response["content"]["application/json"]["schema"] == answer
            for response in operation["responses"].values()
        )
        component = schemas[answer["$ref"].rsplit("/", 1)[1]]
        assert {flag, "error", "license_key", "meta"} <= set(component["required"])
        assert ("instance" in component["properties"]) == (endpoint != "deactivate")
        assert "Retry-After" in operation["responses"]["429"]["headers"]
    request = openapi["paths"][f"{URL}activate"]["post"]["requestBody"]["content"][
        "application/x-www-form-urlencoded"
    ]["schema"]
    assert set(schemas[request["$ref"].rsplit("/", 1)[1]]["required"]) == {
        "license_key",
        "instance_name",
    }
    key = schemas["PublicLicenseKey"]
    assert key["properties"]["status"]["enum"] == ["inactive", "active", "expired", "disabled"]
    assert key["properties"]["expires_at"]["format"] == "date-time"


def test_schemathesis_finds_no_server_error_and_no_schema_violation_in_the_licence_api(
    transactional_db, capsys
):
    # Committed rows (transactional_db): each WSGI call ends with Django closing a connection
    # left inside a transaction, as the test transaction of `db` would be.
    key = a_key(limit=None)
    instance = license_key_activate(key_text=key.key, instance_name="Seeded").instance
    schema = schemathesis.openapi.from_wsgi("/api/schema/", application).include(
        path_regex="^/api/v1/licenses/"
    )
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
    ]
    counts = {"operations": 0, "examples": 0}

    def exercise(strategy, max_examples, case_checks):
        @hypothesis_settings(
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
            response = case.call()  # no credentials: the API is public
            case.validate_response(response, checks=case_checks)

        run()

    real = {"license_key": key.key, "instance_id": str(instance.pk), "instance_name": "Case"}
    for result in schema.get_all_operations():
        operation = result.ok()
        counts["operations"] += 1
        exercise(operation.as_strategy(), 25, checks)
        exercise(
            operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
            15,
            [not_a_server_error, status_code_conformance],
        )
        # The real key and instance, so the answers that are not 404s are exercised too.
        exercise(operation.as_strategy().map(lambda case: _with_fields(case, real)), 10, checks)
    with capsys.disabled():
        print(f"\nschemathesis (licence API): {counts['examples']} examples")
    assert counts["operations"] == 3


def _with_fields(case, fields: dict):
    if isinstance(case.body, dict):
        case.body = {**case.body, **{k: v for k, v in fields.items() if k in case.body}}
    return case
