"""Media in the back office: uploads (form and direct), the change page, staff previews."""

import hashlib
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from downloads.models import Media
from tests import factories
from tests.downloads.admin.conftest import messages_of

pytestmark = pytest.mark.django_db

ADD = reverse("admin:downloads_media_add")
START = reverse("admin:downloads_media_upload_start")


def start_upload(client, content: bytes, filename="big file.zip", content_type="application/zip"):
    response = client.post(
        START,
        {"filename": filename, "byte_size": len(content), "content_type": content_type},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    return response.json()


def use_in_product(media) -> str:
    return reverse("admin:downloads_download_add") + f"?media={media.pk}"


def test_uploading_through_the_form_records_size_type_and_sha256(admin_client):
    content = b"PK\x03\x04 icons" * 50
    upload = SimpleUploadedFile("line icons.zip", content, content_type="application/zip")
    response = admin_client.post(ADD, {"upload": upload})
    media = Media.objects.get()
    assert response["Location"] == reverse("admin:downloads_media_change", args=[media.pk])
    assert (media.filename, media.byte_size) == ("line icons.zip", len(content))
    assert media.content_type == "application/zip"
    assert media.sha256 == hashlib.sha256(content).hexdigest()
    assert media.file.read() == content


def test_a_file_over_the_limit_is_refused_with_the_services_message(admin_client, settings):
    settings.DOWNLOADS_MAX_UPLOAD_SIZE = 10
    upload = SimpleUploadedFile("big.bin", b"x" * 11)
    response = admin_client.post(ADD, {"upload": upload})
    assert response.status_code == 200
    assert "larger than the 10 byte limit." in response.content.decode()
    assert not Media.objects.exists()


def test_after_a_form_upload_the_files_page_says_so_and_offers_use_in_a_product(admin_client):
    upload = SimpleUploadedFile("Guide.pdf", b"%PDF-1.4 guide", content_type="application/pdf")
    response = admin_client.post(ADD, {"upload": upload}, follow=True)
    media = Media.objects.get()
    link = use_in_product(media)
    assert [str(m) for m in response.context["messages"]] == [
        f'The file “Guide.pdf” was uploaded. <a href="{link}">Use it in a product</a>.'
    ]
    html = response.content.decode()
    assert f'<a href="{link}">Use it in a product</a>' in html  # the message, as a link
    assert f'href="{link}" class="use-in-product addlink"' in html  # and the page's button


def test_use_in_a_product_opens_the_download_form_with_the_file_picked(admin_client):
    media = factories.MediaFactory(filename="Guide.pdf")
    response = admin_client.get(use_in_product(media))
    assert response.status_code == 200
    assert response.context["adminform"].form.initial["media"] == str(media.pk)
    assert f'<option value="{media.pk}" selected>' in response.content.decode()


def test_the_direct_upload_ends_with_the_message_and_the_way_on(admin_client):
    content = b"0123456789" * 100
    target = start_upload(admin_client, content, filename="Field Guide.pdf")
    admin_client.generic(
        "PUT",
        target["upload_url"].removeprefix("http://testserver"),
        content,
        content_type=target["headers"]["Content-Type"],
    )
    done = admin_client.post(target["complete_url"], {}, content_type="application/json")
    media = Media.objects.get(pk=done.json()["id"])
    page = admin_client.get(done.json()["change_url"])  # where the script goes next
    link = use_in_product(media)
    assert [str(m) for m in page.context["messages"]] == [
        f'The file “Field Guide.pdf” was uploaded. <a href="{link}">Use it in a product</a>.'
    ]


def test_a_direct_upload_in_a_popup_leaves_no_message_behind(admin_client):
    content = b"0123456789" * 100
    target = start_upload(admin_client, content)
    admin_client.generic(
        "PUT",
        target["upload_url"].removeprefix("http://testserver"),
        content,
        content_type=target["headers"]["Content-Type"],
    )
    done = admin_client.post(
        target["complete_url"], {"popup": True}, content_type="application/json"
    )
    assert done.status_code == 200
    assert messages_of(done) == []


def test_the_add_page_offers_the_direct_upload_with_a_progress_bar(admin_client):
    html = admin_client.get(ADD).content.decode()
    assert 'id="direct-upload"' in html and "<progress" in html
    assert f'data-start-url="{START}"' in html
    assert "downloads/admin/media_upload.js" in html


def test_the_change_page_shows_what_support_needs(admin_client):
    media = factories.MediaFactory(content=b"x" * 3000, filename="Guide.pdf")
    download = factories.DownloadFactory(media=media, product__name="Field Guide")
    html = admin_client.get(reverse("admin:downloads_media_change", args=[media.pk])).content
    html = html.decode()
    assert "Guide.pdf" in html
    assert "2.9\xa0KB" in html and "3,000 bytes" in html
    assert "application/pdf" in html
    assert media.key in html and ">local<" in html
    assert reverse("admin:downloads_download_change", args=[download.pk]) in html
    assert "on Field Guide" in html
    assert reverse("admin:downloads_media_preview", args=[media.pk]) in html


def test_the_local_preview_streams_the_file_to_staff_only(admin_client, client):
    media = factories.MediaFactory(content=b"secret bytes", filename="notes.txt")
    url = reverse("admin:downloads_media_preview", args=[media.pk])
    response = admin_client.get(url)
    assert b"".join(response.streaming_content) == b"secret bytes"
    assert response["Content-Disposition"].startswith("attachment;")
    assert {"private", "no-store"} <= set(response["Cache-Control"].split(", "))
    anonymous = client.get(url)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    customer = factories.UserFactory()
    client.force_login(customer)
    assert client.get(url).status_code == 302


@pytest.mark.parametrize(
    "ttl, words", [(60, "1 minute"), (1, "1 second"), (90, "90 seconds"), (3600, "1 hour")]
)
def test_the_preview_help_says_how_long_the_presigned_url_lives(
    admin_client, s3, settings, ttl, words
):
    settings.DOWNLOADS_URL_TTL = ttl
    media = factories.MediaFactory(filename="Guide.pdf")
    html = admin_client.get(reverse("admin:downloads_media_change", args=[media.pk])).content
    assert f"a presigned URL valid for {words}." in html.decode()


def test_the_s3_preview_is_a_short_lived_presigned_url(admin_client, s3, settings):
    media = factories.MediaFactory(content=b"on s3", filename="Report 2024.pdf")
    response = admin_client.get(reverse("admin:downloads_media_preview", args=[media.pk]))
    assert response.status_code == 302
    location = response["Location"]
    query = parse_qs(urlsplit(location).query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == [str(settings.DOWNLOADS_URL_TTL)]
    assert "filename*=UTF-8''Report%202024.pdf" in query["response-content-disposition"][0]
    assert requests.get(location, timeout=10).content == b"on s3"


def test_the_direct_upload_on_local_storage_goes_through_the_apps_endpoint(admin_client):
    content = b"0123456789" * 1000
    target = start_upload(admin_client, content)
    assert target["method"] == "PUT"
    assert target["upload_url"].startswith("http://testserver/api/v1/media/uploads/")
    put = admin_client.generic(
        "PUT",
        target["upload_url"].removeprefix("http://testserver"),
        content,
        content_type=target["headers"]["Content-Type"],
    )
    assert put.status_code == 204
    done = admin_client.post(target["complete_url"])
    assert done.status_code == 200
    media = Media.objects.get(pk=done.json()["id"])
    assert done.json()["change_url"] == reverse("admin:downloads_media_change", args=[media.pk])
    assert (media.filename, media.byte_size) == ("big file.zip", len(content))
    assert media.sha256 == hashlib.sha256(content).hexdigest()


def test_the_direct_upload_on_s3_posts_straight_to_the_bucket(admin_client, s3):
    content = b"s3 bytes " * 500
    target = start_upload(admin_client, content)
    assert target["method"] == "POST" and target["upload_url"].startswith(s3.endpoint)
    sent = requests.post(
        target["upload_url"],
        data=target["fields"],
        files={"file": ("big file.zip", content)},
        timeout=10,
    )
    assert sent.status_code in (200, 204), sent.text
    done = admin_client.post(target["complete_url"])
    assert done.status_code == 200, done.content
    media = Media.objects.get()
    assert media.sha256 == hashlib.sha256(content).hexdigest()
    head = s3.client.head_object(Bucket=s3.bucket, Key=media.key)
    assert head["ContentLength"] == len(content)


def test_completing_before_sending_the_bytes_is_a_clear_error(admin_client):
    target = start_upload(admin_client, b"abc")
    response = admin_client.post(target["complete_url"])
    assert response.status_code == 409
    assert response.json()["code"] == "media_upload.missing"


@pytest.mark.parametrize(
    "body", [{}, {"filename": "a.zip", "byte_size": "lots"}, {"filename": "a", "byte_size": -1}]
)
def test_a_bad_start_request_is_a_4xx_with_a_code(admin_client, body):
    response = admin_client.post(START, body, content_type="application/json")
    assert 400 <= response.status_code < 500
    assert response.json()["code"]


def test_the_upload_views_are_for_staff_with_post_only(admin_client, client):
    assert admin_client.get(START).status_code == 405
    response = client.post(START, {}, content_type="application/json")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_deleting_media_a_download_uses_shows_the_conflict(admin_client):
    download = factories.DownloadFactory()
    response = admin_client.post(
        reverse("admin:downloads_media_delete", args=[download.media.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    assert messages_of(response) == [
        "This file is used by orders and cannot be deleted; archive it instead."
    ]
    assert Media.objects.filter(pk=download.media.pk).exists()
