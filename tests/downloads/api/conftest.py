"""Fixtures of the merchant API tests: API keys and clients that carry them."""

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts.models import ApiKey
from tests import factories


@pytest.fixture(autouse=True)
def _api_rate_unthrottled(settings):
    """The suite makes many calls per key: a rate no test reaches, and fresh counters."""
    settings.DOWNLOADS_API_THROTTLE = "100000/min"
    settings.DOWNLOADS_LICENSE_THROTTLE = "100000/min"
    cache.clear()


def _client(raw: str | None = None) -> APIClient:
    client = APIClient()
    if raw:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def write_key(db):
    """(ApiKey, raw key) with write scope."""
    return factories.api_key(ApiKey.Scope.WRITE)


@pytest.fixture
def api(write_key) -> APIClient:
    """A client authenticated with a write-scope API key."""
    return _client(write_key[1])


@pytest.fixture
def read_api(db) -> APIClient:
    """A client authenticated with a read-scope API key."""
    return _client(factories.api_key(ApiKey.Scope.READ, name="read key")[1])


@pytest.fixture
def anonymous() -> APIClient:
    return _client()
