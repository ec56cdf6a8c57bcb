"""GET /downloads/<grant token>/ when the storage fails, and what every served file carries.

S3 unreachable: 503 with Retry-After, nothing taken (count, log, resume budget); once it is
back, the next download is served and counted. An unusable local media folder: 503, not 500.
Every served file: a sandbox Content-Security-Policy and `nosniff`, and a Content-Type that
is a media type even for rows stored before content types were checked."""

import io
import os
import zipfile
from contextlib import contextmanager
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.core.files.base import ContentFile
from django.urls import reverse

from downloads import storage, storage_health
from downloads.models import DownloadEvent, DownloadGrant
from downloads.services.media import media_create
from tests import factories
from tests.stoppable_s3 import wait_for

pytestmark = [pytest.mark.django_db, pytest.mark.s3_outage]

CONTENT = bytes(range(256)) * 4
SANDBOX = "sandbox; default-src 'none'"


@pytest.fixture
def fast_probe(settings):
    settings.DOWNLOADS_STORAGE_PROBE_SECONDS = 0.1


def url_of(grant) -> str:
    return reverse("downloads:download", args=[grant.token])


def grant_of(media, **kwargs):
    line = factories.OrderLineFactory(order=factories.OrderFactory(status="paid"))
    download = factories.DownloadFactory(product=line.product, media=media)
    kwargs.setdefault("download_limit", 5)
    return factories.GrantFactory(order=line.order, line=line, download=download, **kwargs)


def s3_grant(content=CONTENT, filename="Guide.pdf", **kwargs):
    return grant_of(media_create(file=ContentFile(content), filename=filename), **kwargs)


def taken(grant) -> tuple:
    """Everything a download takes: the count, the resume budget and the log."""
    row = DownloadGrant.objects.get(pk=grant.pk)
    events = list(DownloadEvent.objects.filter(grant=grant).values_list("outcome", flat=True))
    return row.download_count, row.resume_until, row.resume_bytes_left, events


class TestS3Unreachable:
    def test_s3_stopped_answers_503_and_takes_nothing_and_s3_back_serves_and_counts(
        self, client, s3, outage, fast_probe
    ):
        grant = s3_grant()
        url = url_of(grant)
        assert client.get(url).status_code == 302  # counted, and the probe now runs
        before = taken(grant)
        assert before[0] == 1 and before[3] == ["served"]

        outage.stop()
        wait_for(lambda: not storage_health.is_up(), what="the probe to find S3 down")
        for headers in ({}, {"HTTP_RANGE": "bytes=100-"}, {"HTTP_RANGE": "bytes=0-"}):
            response = client.get(url, **headers)
            assert response.status_code == 503, headers
            assert int(response["Retry-After"]) >= 1
            assert "Location" not in response
            assert "was not counted" in response.content.decode()
            assert response["Cache-Control"] == "private, no-store"
        head = client.head(url)
        assert head.status_code == 503 and "Location" not in head
        assert taken(grant) == before

        outage.start()
        wait_for(storage_health.is_up, what="the probe to find S3 back")
        served = client.get(url)
        assert served.status_code == 302
        assert requests.get(served["Location"], timeout=10).content == CONTENT
        count, _, _, events = taken(grant)
        assert count == 2 and events == ["served", "served"]

    def test_a_failed_storage_operation_pauses_downloads_at_once(
        self, client, s3, outage, settings
    ):
        # The probe is far off: only the failed operation can tell the downloads.
        settings.DOWNLOADS_STORAGE_PROBE_SECONDS = 300
        grant = s3_grant()
        outage.stop()
        with pytest.raises(storage.StorageUnavailable):
            storage.stored_size(grant.download.media.key)
        assert not storage_health.is_up()
        response = client.get(url_of(grant))
        assert response.status_code == 503 and response.has_header("Retry-After")
        assert taken(grant) == (0, None, 0, [])

    def test_a_link_download_is_served_whatever_the_storage_says(self, client, s3, outage):
        grant = factories.GrantFactory(download=factories.LinkDownloadFactory())
        outage.stop()
        with pytest.raises(storage.StorageUnavailable):
            storage.stored_size("media/any")
        response = client.get(url_of(grant))
        assert response.status_code == 302
        assert response["Location"] == grant.download.url

    def test_a_used_up_grant_still_says_why_when_s3_is_down(self, client, s3, outage):
        grant = s3_grant(download_limit=1, download_count=1)
        outage.stop()
        with pytest.raises(storage.StorageUnavailable):
            storage.stored_size(grant.download.media.key)
        assert client.get(url_of(grant)).status_code == 410


@contextmanager
def unreadable(folder):
    """`folder` cannot be read or entered by the process while the block runs. Root reads
    everything, so as root the block runs with the effective user `nobody`."""
    mode = folder.stat().st_mode
    folder.chmod(0)
    try:
        if os.geteuid() == 0:
            os.seteuid(65534)
            try:
                yield
            finally:
                os.seteuid(0)
        else:
            yield
    finally:
        folder.chmod(mode)


class TestLocalStorageFaults:
    def test_an_unreadable_media_folder_answers_503_not_500_and_counts_nothing(
        self, client, settings
    ):
        grant = grant_of(factories.MediaFactory(content=CONTENT))
        with unreadable(settings.MEDIA_ROOT):
            response = client.get(url_of(grant))
            head = client.head(url_of(grant))
        assert response.status_code == 503
        assert "could not be delivered" in response.content.decode()
        assert head.status_code == 503
        count, _, _, events = taken(grant)
        assert count == 0 and events == ["failed"]
        assert client.get(url_of(grant)).status_code == 200  # readable again

    def test_a_media_folder_that_is_not_a_folder_answers_503(self, client, settings, tmp_path):
        grant = grant_of(factories.MediaFactory(content=CONTENT))
        blocker = tmp_path / "not-a-folder"
        blocker.write_bytes(b"")
        settings.STORAGES = {
            **settings.STORAGES,
            "default": {
                "BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": blocker / "media", "base_url": None},
            },
        }
        assert client.get(url_of(grant)).status_code == 503
        assert taken(grant)[0] == 0


class TestServedFileHeaders:
    def check(self, response):
        assert response["Content-Security-Policy"] == SANDBOX
        assert response["X-Content-Type-Options"] == "nosniff"

    def test_every_local_file_response_is_sandboxed_and_never_sniffed(self, client):
        media = factories.MediaFactory(
            content=b"<html><script>alert(1)</script></html>",
            filename="page.html",
            content_type="text/html",
        )
        grant = grant_of(media)
        url = url_of(grant)
        whole = client.get(url)
        assert whole.status_code == 200 and whole["Content-Type"] == "text/html"
        self.check(whole)
        self.check(client.head(url))
        part = client.get(url, HTTP_RANGE="bytes=3-")
        assert part.status_code == 206
        self.check(part)
        past = client.get(url, HTTP_RANGE="bytes=9999-")
        assert past.status_code == 416
        self.check(past)

    def test_the_download_all_zip_is_sandboxed_over_the_pages_policy(self, client, paid_order):
        order = paid_order(factories.DownloadFactory().product, factories.DownloadFactory().product)
        url = reverse("accounts:order_download_all", args=[order.access_token])
        response = client.get(url)
        assert response.status_code == 200 and response["Content-Type"] == "application/zip"
        self.check(response)
        zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))).testzip()
        self.check(client.head(url))

    def test_the_admin_preview_is_sandboxed(self, client, staff):
        media = factories.MediaFactory(
            content=b"<svg onload=alert(1)>", content_type="image/svg+xml"
        )
        client.force_login(staff)
        response = client.get(reverse("admin:downloads_media_preview", args=[media.pk]))
        assert response.status_code == 200
        self.check(response)

    def test_s3_is_asked_for_the_type_and_the_attachment_through_the_presigned_url(
        self, client, s3
    ):
        grant = s3_grant(filename="page.html")
        response = client.get(url_of(grant))
        query = parse_qs(urlsplit(response["Location"]).query)
        assert query["response-content-type"] == ["text/html"]
        assert query["response-content-disposition"][0].startswith("attachment;")
        delivered = requests.get(response["Location"], timeout=10)
        assert delivered.headers["Content-Type"] == "text/html"
        assert delivered.headers["Content-Disposition"].startswith("attachment;")


# Content types stored before they were checked: CR/LF (a header injection), characters that
# are not Latin-1 (no header can carry them), a control character, and no media type at all.
# (A NUL byte never reached a row on PostgreSQL, which refuses it.)
BAD_TYPES = [
    "text/html\r\nSet-Cookie: session=stolen",
    "text/plain; name=файл.txt",
    "application/pdf\x0b",
    "not a type",
]


class TestStoredContentTypesThatAreNotMediaTypes:
    @pytest.mark.parametrize("content_type", BAD_TYPES)
    def test_a_local_file_is_served_as_octet_stream_not_a_500(self, client, content_type):
        grant = grant_of(factories.MediaFactory(content=CONTENT, content_type=content_type))
        response = client.get(url_of(grant))
        assert response.status_code == 200
        assert response["Content-Type"] == "application/octet-stream"
        assert b"".join(response.streaming_content) == CONTENT
        assert "Set-Cookie" not in response
        assert taken(grant)[0] == 1

    @pytest.mark.parametrize("content_type", BAD_TYPES)
    def test_an_s3_file_is_signed_as_octet_stream(self, client, s3, content_type):
        media = media_create(file=ContentFile(CONTENT), filename="notes.txt")
        type(media).objects.filter(pk=media.pk).update(content_type=content_type)
        media.refresh_from_db()
        grant = grant_of(media)
        response = client.get(url_of(grant))
        assert response.status_code == 302
        query = parse_qs(urlsplit(response["Location"]).query)
        assert query["response-content-type"] == ["application/octet-stream"]
        delivered = requests.get(response["Location"], timeout=10)
        assert delivered.headers["Content-Type"] == "application/octet-stream"

    def test_the_admin_preview_of_such_a_file_is_not_a_500(self, client, staff):
        media = factories.MediaFactory(content_type=BAD_TYPES[0])
        client.force_login(staff)
        response = client.get(reverse("admin:downloads_media_preview", args=[media.pk]))
        assert response.status_code == 200
        assert response["Content-Type"] == "application/octet-stream"

    def test_valid_types_with_parameters_are_served_as_stored(self, client):
        content_type = 'text/plain; charset=utf-8; name="notes.txt"'
        grant = grant_of(factories.MediaFactory(content=CONTENT, content_type=content_type))
        assert client.get(url_of(grant))["Content-Type"] == content_type


class TestDownloadAllWhenS3IsDown:
    def test_download_all_answers_503_and_takes_nothing_until_s3_is_back(
        self, client, s3, outage, fast_probe
    ):
        first = s3_grant(filename="One.pdf")
        line = first.line
        download = factories.DownloadFactory(
            product=line.product, media=media_create(file=ContentFile(b"two"), filename="Two.pdf")
        )
        second = factories.GrantFactory(
            order=first.order, line=line, download=download, download_limit=5
        )
        url = reverse("accounts:order_download_all", args=[first.order.access_token])
        assert client.get(url_of(second)).status_code == 302  # counted, and the probe runs
        outage.stop()
        wait_for(lambda: not storage_health.is_up(), what="the probe to find S3 down")
        for method in (client.get, client.head):
            response = method(url)
            assert response.status_code == 503 and int(response["Retry-After"]) >= 1
        assert "Nothing was counted" in client.get(url).content.decode()
        assert (taken(first)[0], taken(second)[0]) == (0, 1)

        outage.start()
        wait_for(storage_health.is_up, what="the probe to find S3 back")
        response = client.get(url)
        assert response.status_code == 200
        names = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))).namelist()
        assert sorted(names) == ["One.pdf", "Two.pdf"]
        assert (taken(first)[0], taken(second)[0]) == (1, 2)
