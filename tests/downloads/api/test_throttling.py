"""Throttling per API key: 429 with Retry-After, and X-RateLimit-* headers on every answer."""

import pytest
from rest_framework.test import APIClient

from accounts.models import ApiKey
from downloads_project import settings as project_settings
from tests import factories

pytestmark = pytest.mark.django_db


def _client(raw):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def test_the_default_rate_is_60_a_minute():
    assert project_settings.DOWNLOADS_API_THROTTLE == "60/min"


def test_third_request_at_two_a_minute_is_429_with_retry_after(settings):
    settings.DOWNLOADS_API_THROTTLE = "2/min"
    client = _client(factories.api_key()[1])
    first, second, third = (client.get("/api/v1/products") for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (200, 200, 429)
    assert (first["X-RateLimit-Limit"], first["X-RateLimit-Remaining"]) == ("2", "1")
    assert second["X-RateLimit-Remaining"] == "0"
    assert third["X-RateLimit-Remaining"] == "0"
    assert 0 < int(third["Retry-After"]) <= 60
    assert third.json()["http_status"] == "too_many_requests"
    assert third.json()["code"] == "throttled"


def test_each_key_has_its_own_budget(settings):
    settings.DOWNLOADS_API_THROTTLE = "1/min"
    one, other = _client(factories.api_key()[1]), _client(factories.api_key()[1])
    assert one.get("/api/v1/products").status_code == 200
    assert one.get("/api/v1/products").status_code == 429
    assert other.get("/api/v1/products").status_code == 200


def test_errors_carry_the_headers_too(settings):
    settings.DOWNLOADS_API_THROTTLE = "5/min"
    read = _client(factories.api_key(ApiKey.Scope.READ)[1])
    forbidden = read.post("/api/v1/products", {"name": "x"}, format="json")
    assert forbidden.status_code == 403 and forbidden["X-RateLimit-Remaining"] == "4"
    missing = read.get("/api/v1/products/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404 and missing["X-RateLimit-Remaining"] == "3"


def test_invalid_keys_are_throttled_by_address(settings):
    settings.DOWNLOADS_API_THROTTLE = "2/min"
    guesser = _client("dd_000000000000_guess")
    statuses = [guesser.get("/api/v1/products").status_code for _ in range(3)]
    assert statuses == [401, 401, 429]


def test_a_forged_forwarded_for_does_not_reset_the_budget_of_an_address(settings):
    settings.DOWNLOADS_API_THROTTLE = "1/min"
    guesser = APIClient()
    guesser.credentials(HTTP_AUTHORIZATION="Bearer dd_000000000000_guess")
    assert guesser.get("/api/v1/products", HTTP_X_FORWARDED_FOR="10.0.0.1").status_code == 401
    assert guesser.get("/api/v1/products", HTTP_X_FORWARDED_FOR="10.0.0.2").status_code == 429


@pytest.mark.parametrize("num_proxies", [None, 0, 1, 2])
@pytest.mark.parametrize(
    "forwarded", [None, "", "203.0.113.7", "198.51.100.1, 203.0.113.7", " 198.51.100.1 ,10.0.0.2 "]
)
def test_the_client_address_is_the_one_drfs_throttles_identify(settings, num_proxies, forwarded):
    # throttling.client_address reads the header from META instead of `request.headers`;
    # the address must be the one DRF's own get_ident gives for the same request.
    from django.test import RequestFactory
    from rest_framework.settings import api_settings
    from rest_framework.throttling import BaseThrottle

    from downloads.api import throttling

    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": num_proxies}
    assert num_proxies == api_settings.NUM_PROXIES
    extra = {} if forwarded is None else {"HTTP_X_FORWARDED_FOR": forwarded}
    request = RequestFactory().get("/", REMOTE_ADDR="192.0.2.10", **extra)
    expected = BaseThrottle().get_ident(request)
    assert throttling.client_address(request) == (expected or None)
    assert throttling.LicenseRateThrottle().get_ident(request) == expected
    assert throttling.ApiKeyRateThrottle().get_ident(request) == expected
