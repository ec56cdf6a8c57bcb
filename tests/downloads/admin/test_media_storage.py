"""The admin's uploads when the file storage cannot be reached: the merchant is told so and
nothing is kept; never a server error."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from downloads import storage
from downloads.models import Media

pytestmark = [pytest.mark.django_db, pytest.mark.s3_outage]

ADD = reverse("admin:downloads_media_add")
START = reverse("admin:downloads_media_upload_start")


def test_a_form_upload_with_s3_down_says_so_on_the_form_and_keeps_nothing(admin_client, s3, outage):
    outage.stop()
    upload = SimpleUploadedFile("Guide.pdf", b"%PDF-1.4 guide", content_type="application/pdf")
    response = admin_client.post(ADD, {"upload": upload})
    assert response.status_code == 200  # the form again, with the reason
    assert "cannot be reached" in response.content.decode()
    assert not Media.objects.exists()


def test_the_direct_upload_with_s3_down_answers_503_and_completes_once_it_is_back(
    admin_client, s3, outage
):
    content = b"0123456789" * 10
    started = admin_client.post(
        START,
        {"filename": "Guide.pdf", "byte_size": len(content), "content_type": "application/pdf"},
        content_type="application/json",
    ).json()
    outage.stop()
    complete = admin_client.post(started["complete_url"], {}, content_type="application/json")
    assert complete.status_code == 503 and int(complete["Retry-After"]) >= 1
    assert complete.json()["code"] == "storage.unavailable"
    refused = admin_client.post(
        START,
        {"filename": "Other.pdf", "byte_size": 3, "content_type": "application/pdf"},
        content_type="application/json",
    )
    assert refused.status_code == 503  # known down: no upload is opened
    assert not Media.objects.exists()

    outage.start()
    s3.client.put_object(Bucket=s3.bucket, Key=started["fields"]["key"], Body=content)
    storage.storage_health.reset()
    done = admin_client.post(started["complete_url"], {}, content_type="application/json")
    assert done.status_code == 200
    assert Media.objects.get().byte_size == len(content)
