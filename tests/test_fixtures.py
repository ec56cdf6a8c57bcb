"""The real services the suite relies on are there and work."""

import pytest
import requests
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage


@pytest.mark.django_db
def test_s3_fixture_stores_through_django_storages_and_presigns_a_fetchable_url(s3):
    name = default_storage.save("media/probe/hello world.txt", ContentFile(b"hello s3"))
    head = s3.client.head_object(Bucket=s3.bucket, Key=name)
    assert head["ContentLength"] == 8
    url = default_storage.url(name, expire=60)
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url and "X-Amz-Expires=60" in url
    assert requests.get(url, timeout=10).content == b"hello s3"


@pytest.mark.e2e
def test_headless_chromium_renders_a_page(page):
    page.set_content("<h1>ready</h1>")
    assert page.inner_text("h1") == "ready"
