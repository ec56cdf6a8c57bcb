"""Who may call the merchant API: API keys (scopes, revocation), staff by Basic or session."""

import base64
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiKey
from accounts.services import api_key_revoke
from tests import factories

pytestmark = pytest.mark.django_db


def _bearer(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def _basic(email: str, password: str) -> APIClient:
    client = APIClient()
    token = base64.b64encode(f"{email}:{password}".encode()).decode()
    client.credentials(HTTP_AUTHORIZATION=f"Basic {token}")
    return client


def test_no_credentials_is_401_with_a_bearer_challenge(anonymous):
    response = anonymous.get("/api/v1/products")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert response.json()["http_status"] == "unauthorized"
    assert response.json()["code"] == "not_authenticated"


@pytest.mark.parametrize(
    "raw",
    [
        "nonsense",
        "dd_000000000000_wrong",
        "dd_\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00_x",
        "dd_" + "z" * 12 + "_x",
        "x" * 500,
    ],
)
def test_invalid_keys_are_401_never_500(raw, write_key):
    response = _bearer(raw).get("/api/v1/products")
    assert response.status_code == 401
    assert response.json()["code"] == "api_key.invalid"


def test_right_prefix_with_wrong_secret_is_401(write_key):
    _key, raw = write_key
    assert _bearer(raw[:-3] + "abc").get("/api/v1/products").status_code == 401


def test_revoked_key_is_401(write_key):
    key, raw = write_key
    api_key_revoke(key=key)
    response = _bearer(raw).get("/api/v1/products")
    assert response.status_code == 401 and response.json()["code"] == "api_key.revoked"


def test_read_scope_key_reads_but_cannot_write(read_api):
    assert read_api.get("/api/v1/products").status_code == 200
    response = read_api.post("/api/v1/products", {"name": "X"}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "api_key.read_only"
    product = factories.ProductFactory()
    assert read_api.delete(f"/api/v1/products/{product.pk}").status_code == 403


def test_write_key_records_last_used_at_at_most_once_a_minute(write_key, api):
    key, _raw = write_key
    api.get("/api/v1/products")
    first = ApiKey.objects.get(pk=key.pk).last_used_at
    assert first is not None
    api.get("/api/v1/products")
    assert ApiKey.objects.get(pk=key.pk).last_used_at == first
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now() - timedelta(minutes=2))
    api.get("/api/v1/products")
    assert ApiKey.objects.get(pk=key.pk).last_used_at > first


def test_staff_with_http_basic_may_write(staff):
    client = _basic(staff.email, "correct horse battery")
    response = client.post("/api/v1/products", {"name": "By staff"}, format="json")
    assert response.status_code == 201


def test_customer_gets_403_on_every_merchant_endpoint(customer):
    client = _basic(customer.email, "correct horse battery")
    for path in (
        "products",
        "variants",
        "media",
        "downloads",
        "orders",
        "grants",
        "events",
        "customers",
    ):
        response = client.get(f"/api/v1/{path}")
        assert response.status_code == 403, path
        assert response.json()["http_status"] == "forbidden"


def test_customer_logged_in_by_session_gets_403(client, customer):
    client.force_login(customer)
    assert client.get("/api/v1/orders").status_code == 403


def test_staff_session_gets_the_browsable_api(client, staff):
    client.force_login(staff)
    response = client.get("/api/v1/products", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")


def test_wrong_basic_password_is_401(staff):
    assert _basic(staff.email, "nope").get("/api/v1/products").status_code == 401
