"""GET /downloads/<grant token>/ for a stamped PDF: the buyer's own copy, made by the worker,
served under the same counting rule (streamed locally with ranges, a 302 to the copy's own
presigned URL on S3); a copy not made yet is a 503 with Retry-After that takes and logs
nothing; a PDF that cannot be stamped is delivered as it is."""

import hashlib
import io
from urllib.parse import unquote, urlsplit

import pytest
import requests
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from pypdf import PdfReader

from downloads import storage
from downloads.models import DownloadEvent, DownloadGrant, StampedCopy
from downloads.services.media import media_create
from downloads.services.stamping import stamped_copy_make
from downloads.services.versions import download_replace_media
from tests import factories, pdfs

EMAIL = "ada@example.com"


def url_of(grant) -> str:
    return reverse("downloads:download", args=[grant.token])


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def count_of(grant) -> int:
    return DownloadGrant.objects.get(pk=grant.pk).download_count


def outcomes(grant) -> list[str]:
    return list(DownloadEvent.objects.filter(grant=grant).values_list("outcome", flat=True))


def stamped_download(content: bytes, filename="Field Guide.pdf", **media_fields):
    media = factories.MediaFactory(content=content, filename=filename, **media_fields)
    return factories.DownloadFactory(media=media, stamp=True)


def bought(paid_order, download, email=EMAIL) -> DownloadGrant:
    order = paid_order(download.product, email=email)
    return order.grants.get()


def make_copies() -> list[StampedCopy]:
    """What the worker does, in this process (for tests that need no committed rows)."""
    return [
        stamped_copy_make(copy_id=pk) for pk in StampedCopy.objects.values_list("pk", flat=True)
    ]


def outline(reader: PdfReader) -> list[tuple[str, int]]:
    return [(item.title, reader.get_destination_page_number(item)) for item in reader.outline]


@pytest.mark.django_db(transaction=True)
class TestWithTheWorker:
    def test_the_buyer_downloads_their_copy_stamped_on_every_page_with_the_outline_kept(
        self, client, paid_order, run_worker
    ):
        source = pdfs.book(7, title="Field Guide")
        grant = bought(paid_order, stamped_download(source))
        run_worker()
        response = client.get(url_of(grant))
        assert response.status_code == 200
        delivered = body(response)
        assert delivered != source
        stamped, original = PdfReader(io.BytesIO(delivered)), PdfReader(io.BytesIO(source))
        assert len(stamped.pages) == len(original.pages) == 7
        for page in stamped.pages:
            assert f"Licensed to {EMAIL} · Order #{grant.order.number}" in page.extract_text()
        assert outline(stamped) == outline(original)
        assert stamped.page_labels == original.page_labels
        assert response["Content-Disposition"] == storage.content_disposition("Field Guide.pdf")
        assert response["Content-Type"] == "application/pdf"
        assert count_of(grant) == 1
        assert outcomes(grant) == ["served"]

    def test_the_same_grant_downloads_the_same_copy_twice_and_both_count(
        self, client, paid_order, run_worker
    ):
        grant = bought(paid_order, stamped_download(pdfs.book(3)))
        run_worker()
        first, second = client.get(url_of(grant)), client.get(url_of(grant))
        one, two = body(first), body(second)
        copy = StampedCopy.objects.get(grant=grant)
        assert one == two
        assert hashlib.sha256(one).hexdigest() == copy.sha256
        assert first["ETag"] == second["ETag"] == f'"{copy.sha256}"'
        assert count_of(grant) == 2
        assert outcomes(grant) == ["served", "served"]

    def test_a_new_version_gets_a_new_copy_and_the_old_copys_file_is_gone(
        self, client, paid_order, run_worker
    ):
        download = stamped_download(pdfs.book(3))
        grant = bought(paid_order, download)
        run_worker()
        old = StampedCopy.objects.get(grant=grant)
        assert len(PdfReader(io.BytesIO(body(client.get(url_of(grant))))).pages) == 3
        new_media = factories.MediaFactory(content=pdfs.book(5), filename="Field Guide v2.pdf")
        download_replace_media(download=download, media=new_media)
        waiting = client.get(url_of(grant))
        assert waiting.status_code == 503  # the new version's copy is not made yet
        run_worker()
        copy = StampedCopy.objects.get(grant=grant)
        assert copy.pk != old.pk and copy.source_id == new_media.pk
        assert not default_storage.exists(old.file.name)
        reader = PdfReader(io.BytesIO(body(client.get(url_of(grant)))))
        assert len(reader.pages) == 5
        assert all(EMAIL in page.extract_text() for page in reader.pages)
        assert count_of(grant) == 2

    def test_an_encrypted_pdf_is_delivered_as_it_is(self, client, paid_order, run_worker):
        source = pdfs.encrypted()
        grant = bought(paid_order, stamped_download(source, filename="Locked.pdf"))
        run_worker()
        copy = StampedCopy.objects.get(grant=grant)
        assert copy.status == StampedCopy.Status.UNSTAMPABLE and "encrypted" in copy.error
        response = client.get(url_of(grant))
        assert response.status_code == 200
        assert body(response) == source
        assert count_of(grant) == 1

    def test_on_s3_the_copy_is_a_302_to_its_own_presigned_key_holding_the_stamped_bytes(
        self, client, paid_order, run_worker, s3
    ):
        source = pdfs.book(4)
        media = media_create(file=ContentFile(source), filename="Guía de campo.pdf")
        download = factories.DownloadFactory(media=media, stamp=True)
        grant = bought(paid_order, download)
        run_worker()
        copy = StampedCopy.objects.get(grant=grant)
        assert copy.status == StampedCopy.Status.READY
        response = client.get(url_of(grant))
        assert response.status_code == 302
        location = urlsplit(response["Location"])
        assert copy.file.name.startswith("stamped/")
        assert unquote(location.path) == f"/{s3.bucket}/{copy.file.name}"  # not the original
        fetched = requests.get(response["Location"], timeout=10)
        assert fetched.status_code == 200
        assert fetched.content != source
        assert hashlib.sha256(fetched.content).hexdigest() == copy.sha256
        assert fetched.headers["Content-Disposition"] == storage.content_disposition(
            "Guía de campo.pdf"
        )
        pages = PdfReader(io.BytesIO(fetched.content)).pages
        assert len(pages) == 4 and all(EMAIL in page.extract_text() for page in pages)
        assert count_of(grant) == 1
        assert outcomes(grant) == ["served"]


@pytest.mark.django_db
class TestBeingPrepared:
    @pytest.fixture
    def pending(self, paid_order):
        grant = bought(paid_order, stamped_download(pdfs.book(2)))
        assert StampedCopy.objects.get(grant=grant).status == StampedCopy.Status.PENDING
        return grant

    def test_a_copy_not_made_yet_is_a_503_with_retry_after_that_takes_and_logs_nothing(
        self, client, pending
    ):
        response = client.get(url_of(pending), HTTP_USER_AGENT="Firefox/130")
        assert response.status_code == 503
        assert response["Retry-After"] == "10"
        assert "no-store" in response["Cache-Control"]
        page = response.content.decode()
        assert "being prepared" in page and "try again in a minute" in page
        assert "stamped with your email" in page and "was not counted" in page
        assert count_of(pending) == 0
        assert outcomes(pending) == []

    def test_head_and_ranges_of_a_copy_not_made_yet_are_503_too(self, client, pending):
        for response in (
            client.head(url_of(pending)),
            client.get(url_of(pending), HTTP_RANGE="bytes=100-"),
            client.get(url_of(pending), HTTP_RANGE="bytes=0-"),
        ):
            assert response.status_code == 503
            assert response["Retry-After"] == "10"
        assert count_of(pending) == 0
        assert outcomes(pending) == []

    def test_a_copy_whose_task_was_lost_is_still_a_503(self, client, pending):
        from django_tasks_db.models import DBTaskResult

        DBTaskResult.objects.all().delete()  # e.g. the worker lost it
        assert client.get(url_of(pending)).status_code == 503
        assert count_of(pending) == 0

    def test_a_grant_without_any_copy_recorded_is_being_prepared(self, client, pending):
        StampedCopy.objects.all().delete()
        assert client.get(url_of(pending)).status_code == 503
        assert outcomes(pending) == []

    def test_a_refused_grant_is_refused_before_its_copy_is_asked_for(
        self, client, pending, django_assert_num_queries
    ):
        DownloadGrant.objects.filter(pk=pending.pk).update(download_count=10, download_limit=1)
        with django_assert_num_queries(2):  # the lookup, then the refusal's event
            assert client.get(url_of(pending)).status_code == 410
        assert outcomes(pending) == ["limit_reached"]

    def test_the_page_links_back_to_the_order_for_a_buyer_who_came_from_it(self, client, pending):
        order_url = reverse("accounts:order_detail", args=[pending.order.access_token])
        response = client.get(url_of(pending), HTTP_REFERER=f"http://testserver{order_url}")
        assert response.status_code == 503
        assert f'href="{order_url}"' in response.content.decode()


@pytest.mark.django_db
class TestReadyCopy:
    @pytest.fixture
    def ready(self, paid_order):
        grant = bought(paid_order, stamped_download(pdfs.book(3), sha256="ab" * 32))
        (copy,) = make_copies()
        assert copy.status == StampedCopy.Status.READY
        return grant, copy, b"".join(storage.stored_chunks(copy.file.name))

    def test_a_resumed_range_of_the_copy_is_206_of_the_copys_bytes_and_takes_nothing(
        self, client, ready
    ):
        grant, copy, stamped = ready
        assert body(client.get(url_of(grant))) == stamped  # the counted download it resumes
        response = client.get(
            url_of(grant), HTTP_RANGE="bytes=100-", HTTP_IF_RANGE=f'"{copy.sha256}"'
        )
        assert response.status_code == 206
        assert body(response) == stamped[100:]
        assert response["Content-Range"] == f"bytes 100-{len(stamped) - 1}/{len(stamped)}"
        assert count_of(grant) == 1
        assert outcomes(grant) == ["served"]

    def test_a_resume_against_the_original_files_etag_gets_and_pays_for_the_whole_copy(
        self, client, ready
    ):
        grant, _copy, stamped = ready
        response = client.get(
            url_of(grant), HTTP_RANGE="bytes=100-", HTTP_IF_RANGE=f'"{"ab" * 32}"'
        )
        assert response.status_code == 200
        assert body(response) == stamped
        assert count_of(grant) == 1

    def test_head_answers_the_copys_headers_and_takes_nothing(self, client, ready):
        grant, copy, stamped = ready
        response = client.head(url_of(grant))
        assert response.status_code == 200
        assert response["Content-Length"] == str(len(stamped))
        assert response["ETag"] == f'"{copy.sha256}"'
        assert count_of(grant) == 0
        assert outcomes(grant) == []

    def test_a_copy_missing_from_storage_is_a_503_that_takes_nothing(self, client, ready):
        grant, copy, _stamped = ready
        default_storage.delete(copy.file.name)
        response = client.get(url_of(grant))
        assert response.status_code == 503
        assert "could not be delivered" in response.content.decode()
        assert count_of(grant) == 0
        assert outcomes(grant) == ["failed"]


@pytest.mark.django_db
class TestNotStamped:
    def test_a_stamped_file_that_is_not_a_pdf_is_served_as_it_is(self, client, paid_order):
        media = factories.MediaFactory(
            content=b"PK\x03\x04 zip bytes", filename="Assets.zip", content_type="application/zip"
        )
        grant = bought(paid_order, factories.DownloadFactory(media=media, stamp=True))
        response = client.get(url_of(grant))
        assert response.status_code == 200
        assert body(response) == b"PK\x03\x04 zip bytes"
        assert not StampedCopy.objects.exists()

    def test_a_stamped_link_still_redirects(self, client, paid_order):
        link = factories.LinkDownloadFactory(stamp=True, url="https://cdn.example.com/a.pdf")
        grant = bought(paid_order, link)
        response = client.get(url_of(grant))
        assert response.status_code == 302
        assert response["Location"] == "https://cdn.example.com/a.pdf"
        assert count_of(grant) == 1


@pytest.mark.django_db
class TestStatementCount:
    """A stamped file costs one SELECT more than any other (its copy); a file that is not
    stamped costs what it always did (tests/downloads/views/test_delivery.py)."""

    @staticmethod
    def kinds(queries) -> list[str]:
        return [
            query["sql"].split()[0].upper()
            for query in queries
            if not query["sql"].upper().startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))
        ]

    def test_a_served_copy_is_the_lookup_its_copy_then_the_count(self, client, paid_order):
        grant = bought(paid_order, stamped_download(pdfs.book(2)))
        make_copies()
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url_of(grant))
            body(response)
        assert response.status_code == 200
        if connection.vendor == "postgresql":
            assert self.kinds(captured.captured_queries) == ["SELECT", "SELECT", "WITH"]
        else:
            assert self.kinds(captured.captured_queries) == ["SELECT", "SELECT", "UPDATE", "INSERT"]

    def test_a_copy_being_prepared_costs_two_reads_and_no_write(self, client, paid_order):
        grant = bought(paid_order, stamped_download(pdfs.book(2)))
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url_of(grant)).status_code == 503
        assert self.kinds(captured.captured_queries) == ["SELECT", "SELECT"]

    def test_a_plain_file_of_a_stamp_free_store_still_costs_what_it_did(self, client, paid_order):
        grant = bought(paid_order, factories.DownloadFactory())
        with CaptureQueriesContext(connection) as captured:
            body(client.get(url_of(grant)))
        expected = ["SELECT", "WITH"] if connection.vendor == "postgresql" else None
        expected = expected or ["SELECT", "UPDATE", "INSERT"]
        assert self.kinds(captured.captured_queries) == expected
