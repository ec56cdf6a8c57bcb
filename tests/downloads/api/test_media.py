"""Media through /api/v1/media: multipart upload and the direct upload on local storage."""

import hashlib

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from downloads.models import Media, MediaUpload
from tests import factories

pytestmark = pytest.mark.django_db


def test_multipart_upload_records_size_type_and_sha256_and_keeps_the_name(api):
    content = b"%PDF-1.7 " + bytes(range(256)) * 40
    response = api.post(
        "/api/v1/media",
        {"file": SimpleUploadedFile("My Book – 2nd ed.pdf", content, "application/pdf")},
        format="multipart",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["object"] == "media" and body["storage"] == "local"
    assert body["filename"] == "My Book – 2nd ed.pdf"
    assert body["byte_size"] == len(content)
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    assert body["content_type"] == "application/pdf"
    with default_storage.open(body["key"], "rb") as handle:
        assert handle.read() == content


def test_multipart_upload_without_file_is_422_and_json_is_415(api):
    response = api.post("/api/v1/media", {"filename": "x"}, format="multipart")
    assert response.status_code == 422
    assert response.json()["validation_errors"][0]["attribute"] == "file"
    json_body = api.post("/api/v1/media", {"file": "x"}, format="json")
    assert json_body.status_code == 415
    assert json_body.json()["code"] == "request.unsupported_media_type"


def test_upload_over_the_limit_is_413_before_the_body_is_read(api, settings):
    settings.DOWNLOADS_MAX_UPLOAD_SIZE = 10
    response = api.generic(
        "POST",
        "/api/v1/media",
        data=b"",
        content_type="multipart/form-data; boundary=x",
        CONTENT_LENGTH=str(10 + 2 * 1024 * 1024),
    )
    assert response.status_code == 413 and response.json()["code"] == "media.too_large"


def test_upload_over_the_limit_within_the_multipart_margin_is_413(api, settings):
    settings.DOWNLOADS_MAX_UPLOAD_SIZE = 10
    response = api.post(
        "/api/v1/media", {"file": SimpleUploadedFile("a.bin", b"x" * 11)}, format="multipart"
    )
    assert response.status_code == 413 and response.json()["code"] == "media.too_large"
    assert not Media.objects.exists()


def test_delete_media_in_use_is_409_and_unused_media_is_deleted_with_its_file(
    api, django_capture_on_commit_callbacks
):
    used = factories.DownloadFactory().media
    assert api.delete(f"/api/v1/media/{used.pk}").status_code == 409
    unused = factories.MediaFactory()
    key = unused.key
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/v1/media/{unused.pk}").json()["deleted"] is True
    assert not default_storage.exists(key)


def _start(api, content: bytes, **extra):
    response = api.post(
        "/api/v1/media/uploads",
        {"filename": "Sound Pack.zip", "byte_size": len(content), **extra},
        format="json",
    )
    assert response.status_code == 201, response.json()
    return response.json()


def test_direct_upload_on_local_storage_put_then_complete(api, client):
    content = bytes(range(256)) * 4097
    upload = _start(api, content)
    assert upload["object"] == "media_upload" and upload["method"] == "PUT"
    assert upload["fields"] == {} and upload["headers"] == {"Content-Type": "application/zip"}
    assert upload["upload_url"].startswith(
        f"http://testserver/api/v1/media/uploads/{upload['id']}/content?token="
    )
    assert isinstance(upload["expires_at"], int)

    # Before the bytes arrive there is nothing to complete.
    early = api.post(f"/api/v1/media/uploads/{upload['id']}/complete")
    assert early.status_code == 409 and early.json()["code"] == "media_upload.missing"

    put = client.generic("PUT", upload["upload_url"], content, content_type="application/zip")
    assert put.status_code == 204
    again = client.generic("PUT", upload["upload_url"], content, content_type="application/zip")
    assert again.status_code == 409

    done = api.post(f"/api/v1/media/uploads/{upload['id']}/complete")
    assert done.status_code == 200, done.json()
    media = done.json()
    assert media["byte_size"] == len(content)
    assert media["sha256"] == hashlib.sha256(content).hexdigest()
    assert media["filename"] == "Sound Pack.zip" and media["content_type"] == "application/zip"
    assert api.post(f"/api/v1/media/uploads/{upload['id']}/complete").json()["id"] == media["id"]
    assert MediaUpload.objects.get(pk=upload["id"]).media_id is not None


def test_direct_upload_put_needs_a_valid_token_and_the_announced_size(api, client):
    upload = _start(api, b"12345")
    url = upload["upload_url"]
    base = url.split("?")[0]
    forged = client.generic("PUT", base + "?token=" + "A" * 60, b"12345")
    assert forged.status_code == 403 and forged.json()["code"] == "media_upload.forbidden"
    other = _start(api, b"12345")
    swapped = client.generic(
        "PUT", other["upload_url"].split("?")[0] + "?" + url.split("?")[1], b"12345"
    )
    assert swapped.status_code == 403
    assert client.generic("PUT", url, b"1234").status_code == 422
    assert client.generic("PUT", url, b"123456").status_code == 413
    assert client.get(url).status_code == 405


def test_direct_upload_token_expires(api, client, settings):
    upload = _start(api, b"12345")
    settings.DOWNLOADS_UPLOAD_URL_TTL = -1
    response = client.generic("PUT", upload["upload_url"], b"12345")
    assert response.status_code == 403 and response.json()["code"] == "media_upload.expired"


def test_direct_upload_over_the_limit_is_413(api, settings):
    settings.DOWNLOADS_MAX_UPLOAD_SIZE = 100
    response = api.post(
        "/api/v1/media/uploads", {"filename": "a.bin", "byte_size": 101}, format="json"
    )
    assert response.status_code == 413
    assert response.json()["validation_errors"][0]["attribute"] == "byte_size"


def test_complete_of_an_unknown_upload_is_404(api):
    response = api.post("/api/v1/media/uploads/not-a-uuid/complete")
    assert response.status_code == 404
    response = api.post("/api/v1/media/uploads/00000000-0000-0000-0000-000000000000/complete")
    assert response.status_code == 404 and response.json()["code"] == "media_upload.not_found"


def test_a_413_names_the_size_sent_and_the_limit_it_broke(api, client, settings):
    settings.DOWNLOADS_MAX_UPLOAD_SIZE = 10
    declared = api.generic(
        "POST",
        "/api/v1/media",
        data=b"",
        content_type="multipart/form-data; boundary=x",
        CONTENT_LENGTH=str(10 + 2 * 1024 * 1024),
    ).json()["message"]
    assert f"{10 + 2 * 1024 * 1024} bytes" in declared and "limited to 10 bytes" in declared
    counted = api.post(
        "/api/v1/media", {"file": SimpleUploadedFile("a.bin", b"x" * 11)}, format="multipart"
    ).json()["message"]
    assert counted == "The file is 11 bytes, larger than the 10 byte limit."


def test_a_local_upload_over_its_announced_size_is_413_naming_both_sizes(api, client, settings):
    # The store's limit is far above: this upload's own limit is what it announced.
    settings.DOWNLOADS_MAX_UPLOAD_SIZE = 1000
    upload = _start(api, b"12345")
    response = client.generic("PUT", upload["upload_url"], b"123456")
    assert response.status_code == 413 and response.json()["code"] == "media.too_large"
    message = response.json()["message"]
    assert message.startswith("6 bytes sent;") and "the 5 bytes announced" in message
    assert "1000" not in message
    assert not default_storage.exists(MediaUpload.objects.get(pk=upload["id"]).key)
