"""API authentication (accounts/authentication.py) under the login protection: HTTP Basic is
a password login (locked out like the pages, answered with the API's envelope), API keys are
not (never locked out, never counted as login failures)."""

import base64

import pytest
import yaml
from axes.models import AccessAttempt
from django.core.cache import cache
from rest_framework.test import APIClient

from tests import factories

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def _fast_hashes(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cache.clear()


def basic(email: str, password: str) -> dict:
    token = base64.b64encode(f"{email}:{password}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}


def test_guessing_until_the_address_bucket_is_spent_refuses_the_right_password_too(staff):
    # The finding, under the defaults (60 requests a minute, 5 failures): once the address's
    # bucket was spent a wrong password got 429 and the right one 200, so guessing went on.
    client = APIClient()
    guesses = [
        client.get("/api/v1/products", **basic(staff.email, f"guess {n}")).status_code
        for n in range(61)
    ]
    assert guesses[:4] == [401] * 4 and set(guesses[4:]) == {429}
    right = client.get("/api/v1/products", **basic(staff.email, PASSWORD))
    assert right.status_code == 429
    assert right.json()["code"] == "auth.locked_out"


def test_a_locked_out_basic_login_answers_the_api_envelope_with_retry_after(settings, staff):
    settings.DOWNLOADS_LOGIN_FAILURE_LIMIT = 2
    settings.DOWNLOADS_LOGIN_COOLOFF = 120
    client = APIClient()
    assert client.get("/api/v1/products", **basic(staff.email, "nope")).status_code == 401
    for password in ("nope again", PASSWORD):
        locked = client.get("/api/v1/products", **basic(staff.email, password))
        assert locked.status_code == 429
        assert locked["Retry-After"] == "120"
        body = locked.json()
        assert (body["http_status"], body["code"]) == ("too_many_requests", "auth.locked_out")
        assert "the right password too" in body["message"]
        assert body["validation_errors"] == []


def test_api_keys_are_never_locked_out(settings, staff):
    settings.DOWNLOADS_LOGIN_FAILURE_LIMIT = 2
    _, raw = factories.api_key()
    client = APIClient()
    for _ in range(2):
        client.get("/api/v1/products", **basic(staff.email, "nope"))
    assert client.get("/api/v1/products", **basic(staff.email, PASSWORD)).status_code == 429
    # The same address, locked out for passwords, still works with its API key.
    keyed = client.get("/api/v1/products", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert keyed.status_code == 200


def test_wrong_api_keys_are_not_login_failures(settings, staff):
    settings.DOWNLOADS_LOGIN_FAILURE_LIMIT = 2
    client = APIClient()
    for n in range(5):
        bad = client.get("/api/v1/products", HTTP_AUTHORIZATION=f"Bearer dd_{n:012x}_guess")
        assert bad.status_code == 401
    assert AccessAttempt.objects.count() == 0
    assert client.get("/api/v1/products", **basic(staff.email, PASSWORD)).status_code == 200


def test_a_wrong_basic_password_is_refused_without_reading_the_body(staff):
    client = APIClient()
    refused = client.post(
        "/api/v1/products",
        {"name": "body-that-must-stay-unread"},
        format="multipart",
        **basic(staff.email, "nope"),
    )
    assert refused.status_code == 401
    (attempt,) = AccessAttempt.objects.all()
    assert "body-that-must-stay-unread" not in attempt.post_data


@pytest.mark.parametrize("userid", ["a\x00b@example.com", "x" * 300 + "@example.com"])
def test_an_impossible_basic_username_is_a_401_never_a_400_or_500(userid):
    response = APIClient().get("/api/v1/products", **basic(userid, "guess"))
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


def test_the_schema_still_offers_http_basic(client):
    schema = yaml.safe_load(client.get("/api/schema/").content)
    assert schema["components"]["securitySchemes"]["basicAuth"] == {
        "type": "http",
        "scheme": "basic",
    }
    products = schema["paths"]["/api/v1/products"]["get"]
    assert {"basicAuth": []} in products["security"]
