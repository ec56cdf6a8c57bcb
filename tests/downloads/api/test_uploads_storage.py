"""Uploads when the storage cannot be reached: `POST /api/v1/media`, the direct upload's
start and `complete`, and the local upload endpoint answer 503 `storage.unavailable` with
`Retry-After` in the API's error envelope, and keep nothing; a failed upload pauses
downloads at once (downloads/storage_health.py)."""

import hashlib
import os

import pytest
import requests
from django.core.files.uploadedfile import SimpleUploadedFile

from downloads import storage_health
from downloads.models import Media, MediaUpload
from tests.stoppable_s3 import wait_for

pytestmark = [pytest.mark.django_db, pytest.mark.s3_outage]


def assert_unavailable(response):
    assert response.status_code == 503, response.content
    body = response.json()
    assert body["http_status"] == "service_unavailable"
    assert body["code"] == "storage.unavailable"
    assert body["validation_errors"] == []
    assert int(response["Retry-After"]) >= 1


def multipart(content=b"%PDF-1.7 a small book\n"):
    return {"file": SimpleUploadedFile("Book.pdf", content, "application/pdf")}


def test_media_create_with_s3_stopped_is_503_keeps_nothing_and_pauses_downloads(
    api, s3, outage, settings
):
    settings.DOWNLOADS_STORAGE_PROBE_SECONDS = 300  # only the failed upload can tell
    outage.stop()
    response = api.post("/api/v1/media", multipart(), format="multipart")
    assert_unavailable(response)
    assert not Media.objects.exists()
    assert not storage_health.is_up()

    outage.start()
    again = api.post("/api/v1/media", multipart(), format="multipart")
    assert again.status_code == 201, again.json()
    assert s3.client.head_object(Bucket=s3.bucket, Key=again.json()["key"])


def test_upload_complete_with_s3_stopped_is_503_and_completes_once_s3_is_back(api, s3, outage):
    content = os.urandom(64 * 1024)
    start = api.post(
        "/api/v1/media/uploads",
        {"filename": "Stems.zip", "byte_size": len(content), "content_type": "application/zip"},
        format="json",
    ).json()
    stored = requests.post(
        start["upload_url"],
        data=start["fields"],
        files={"file": ("Stems.zip", content)},
        timeout=30,
    )
    assert stored.status_code in (200, 201, 204), stored.text

    outage.stop()
    response = api.post(f"/api/v1/media/uploads/{start['id']}/complete")
    assert_unavailable(response)
    assert not Media.objects.exists()
    assert MediaUpload.objects.get(pk=start["id"]).completed_at is None

    outage.start()
    done = api.post(f"/api/v1/media/uploads/{start['id']}/complete")
    assert done.status_code == 200, done.json()
    assert done.json()["sha256"] == hashlib.sha256(content).hexdigest()


def test_upload_start_while_s3_is_known_down_is_503_then_201_once_a_probe_reaches_it(
    api, s3, outage, settings
):
    settings.DOWNLOADS_STORAGE_PROBE_SECONDS = 0.1
    outage.stop()
    assert_unavailable(api.post("/api/v1/media", multipart(), format="multipart"))
    body = {"filename": "a.bin", "byte_size": 10}
    assert_unavailable(api.post("/api/v1/media/uploads", body, format="json"))
    assert not MediaUpload.objects.exists()

    outage.start()
    wait_for(storage_health.is_up, what="the probe to find S3 back")
    assert api.post("/api/v1/media/uploads", body, format="json").status_code == 201


@pytest.fixture
def unusable_media_folder(settings, tmp_path):
    """Local storage whose folder cannot be used: its path runs through a file."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_bytes(b"")
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": blocker / "media", "base_url": None},
        },
    }


def test_local_multipart_upload_into_an_unusable_folder_is_503_not_500(api, unusable_media_folder):
    assert_unavailable(api.post("/api/v1/media", multipart(), format="multipart"))
    assert not Media.objects.exists()


def test_local_direct_upload_into_an_unusable_folder_is_503_not_500(
    api, client, unusable_media_folder
):
    start = api.post(
        "/api/v1/media/uploads", {"filename": "a.bin", "byte_size": 5}, format="json"
    ).json()
    put = client.generic("PUT", start["upload_url"], b"12345")
    assert_unavailable(put)
    assert_unavailable(api.post(f"/api/v1/media/uploads/{start['id']}/complete"))
    assert not Media.objects.exists()
