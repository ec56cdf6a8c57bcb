"""PDF stamping (services.stamping): the stamp on every page, what survives, what cannot be
stamped, and the copies' lifecycle."""

import hashlib
import io
import re

import pikepdf
import pytest
from django.core.files.storage import default_storage
from django_tasks_db.models import DBTaskResult
from pypdf import PdfReader

from downloads import storage
from downloads.errors import ServiceError
from downloads.models import DownloadGrant, StampedCopy
from downloads.services.grants import grant_delete
from downloads.services.orders import LineInput, order_create
from downloads.services.stamping import (
    Deliverable,
    Unstampable,
    file_to_deliver,
    pdf_stamp,
    stamp_text_check,
    stamp_text_render,
    stamped_copy_make,
)
from downloads.services.versions import download_replace_media
from tests import factories, pdfs

TEXT = "Licensed to ada@example.com · Order #1042 · 1 December 2026"


def stamped(source: bytes, **kwargs) -> bytes:
    out = io.BytesIO()
    pdf_stamp(source=io.BytesIO(source), dest=out, text=kwargs.pop("text", TEXT), **kwargs)
    return out.getvalue()


class TestThePdf:
    def test_every_page_carries_the_stamp(self):
        result = PdfReader(io.BytesIO(stamped(pdfs.book(7))))
        assert len(result.pages) == 7
        for page in result.pages:
            assert "ada@example.com" in page.extract_text()
            assert "Order #1042" in page.extract_text()

    def test_one_form_xobject_is_shared_by_every_page(self):
        result = pikepdf.open(io.BytesIO(stamped(pdfs.book(20))))
        forms = {
            page.Resources.XObject[name].objgen
            for page in result.pages
            for name in page.Resources.XObject
        }
        assert len(forms) == 1

    def test_bookmarks_links_page_labels_and_metadata_survive(self):
        source = pdfs.book(6, title="Survivors")
        before, after = PdfReader(io.BytesIO(source)), PdfReader(io.BytesIO(stamped(source)))
        assert [item.title for item in after.outline] == [item.title for item in before.outline]
        assert [after.get_destination_page_number(item) for item in after.outline] == list(range(6))
        assert after.page_labels == before.page_labels == ["i", "ii", "1", "2", "3", "4"]
        assert after.metadata.title == "Survivors"
        links = [a.get_object()["/A"]["/URI"] for a in after.pages[0]["/Annots"]]
        assert links == ["https://example.com/errata"]

    @pytest.mark.parametrize(("position", "low", "high"), [("top", 800, 842), ("bottom", 0, 40)])
    def test_the_stamp_sits_where_asked(self, position, low, high):
        pdf = pikepdf.open(io.BytesIO(stamped(pdfs.book(1), position=position)))
        page = pdf.pages[0]
        content = page.obj.Contents.read_bytes().decode("latin-1")
        placed = [
            float(match[1])
            for match in re.finditer(r"(?:[-\d.]+ ){5}([-\d.]+) cm\s*/\S+ Do", content)
        ]
        assert len(placed) == 1 and low < placed[0] < high  # A4 is 842 points high

    def test_characters_the_standard_font_lacks_become_question_marks(self):
        text = PdfReader(io.BytesIO(stamped(pdfs.book(1), text="Für Zoë 山田"))).pages[0]
        assert "Für Zoë ??" in text.extract_text()

    def test_an_encrypted_or_broken_pdf_cannot_be_stamped(self):
        with pytest.raises(Unstampable, match="encrypted"):
            stamped(pdfs.encrypted())
        with pytest.raises(Unstampable, match="cannot be read"):
            stamped(b"%PDF-1.4 this is not really a PDF")

    def test_a_500_page_book_is_stamped_in_one_pass(self):
        result = PdfReader(io.BytesIO(stamped(pdfs.book(500))))
        assert len(result.pages) == 500
        assert "ada@example.com" in result.pages[499].extract_text()


class TestTheText:
    def test_the_placeholders_are_filled_in(self):
        from datetime import date

        text = stamp_text_render(
            "Licensed to {email} ({name}) · Order #{order_number} · {date}",
            email="ada@example.com",
            name="",
            order_number=1042,
            on=date(2026, 12, 1),
        )
        assert (
            text == "Licensed to ada@example.com (ada@example.com) · Order #1042 · 1 December 2026"
        )

    @pytest.mark.parametrize(
        "bad", ["", "   ", "x" * 256, "Hi {customer}", "Hi {email", "{0}", "{email.__class__}"]
    )
    def test_a_template_with_other_placeholders_or_no_text_is_refused(self, bad):
        with pytest.raises(ServiceError) as exc:
            stamp_text_check(bad)
        assert (exc.value.code, exc.value.attribute) == ("download.invalid", "stamp_text")

    def test_a_good_template_is_kept(self):
        assert stamp_text_check(" For {name} <{email}> ") == "For {name} <{email}>"


@pytest.mark.django_db
class TestCopies:
    @pytest.fixture
    def stamped_download(self):
        media = factories.MediaFactory(content=pdfs.book(3), filename="Guide.pdf")
        return factories.DownloadFactory(media=media, stamp=True)

    def pay(self, download, email="ada@example.com"):
        return order_create(
            email=email,
            lines=[LineInput(product=download.product)],
            status="paid",
            send_email=False,
        )

    def test_paying_requests_one_pending_copy_and_enqueues_its_making(self, stamped_download):
        order = self.pay(stamped_download)
        copy = StampedCopy.objects.get()
        assert (copy.grant.order_id, copy.source_id, copy.status) == (
            order.pk,
            stamped_download.media_id,
            "pending",
        )
        tasks = DBTaskResult.objects.filter(task_path="downloads.tasks.stamped_copy_make")
        assert [task.args_kwargs["args"] for task in tasks] == [[str(copy.pk)]]

    def test_unstamped_or_non_pdf_downloads_get_no_copy(self):
        plain = factories.DownloadFactory()
        not_pdf = factories.DownloadFactory(
            stamp=True,
            media=factories.MediaFactory(filename="a.zip", content_type="application/zip"),
        )
        link = factories.LinkDownloadFactory(stamp=True)
        for download in (plain, not_pdf, link):
            self.pay(download)
        assert not StampedCopy.objects.exists()

    def test_making_a_copy_stamps_the_buyers_email_and_stores_it_apart(self, stamped_download):
        order = self.pay(stamped_download)
        copy = stamped_copy_make(copy_id=StampedCopy.objects.get().pk)
        assert copy.status == "ready" and copy.file.name.startswith("stamped/")
        assert copy.file.name != stamped_download.media.key
        data = b"".join(storage.stored_chunks(copy.file.name))
        assert (copy.byte_size, copy.sha256) == (len(data), hashlib.sha256(data).hexdigest())
        pages = PdfReader(io.BytesIO(data)).pages
        assert len(pages) == 3
        assert all(f"ada@example.com · Order #{order.number}" in p.extract_text() for p in pages)
        assert stamped_copy_make(copy_id=copy.pk).file.name == copy.file.name  # idempotent

    def test_a_new_version_gets_a_new_copy_that_replaces_the_old_one(self, stamped_download):
        self.pay(stamped_download)
        first = stamped_copy_make(copy_id=StampedCopy.objects.get().pk)
        new_media = factories.MediaFactory(content=pdfs.book(4), filename="Guide v2.pdf")
        download_replace_media(download=stamped_download, media=new_media)
        pending = StampedCopy.objects.get(status="pending")
        assert pending.source_id == new_media.pk
        with self.captured_commits() as commits:
            second = stamped_copy_make(copy_id=pending.pk)
        assert commits
        assert list(StampedCopy.objects.all()) == [second]
        assert (
            len(PdfReader(io.BytesIO(b"".join(storage.stored_chunks(second.file.name)))).pages) == 4
        )
        assert not default_storage.exists(first.file.name)

    def test_an_encrypted_pdf_is_marked_unstampable_and_kept_as_is(self):
        media = factories.MediaFactory(content=pdfs.encrypted(), filename="Locked.pdf")
        download = factories.DownloadFactory(media=media, stamp=True)
        self.pay(download)
        copy = stamped_copy_make(copy_id=StampedCopy.objects.get().pk)
        assert (copy.status, copy.file.name) == ("unstampable", "")
        assert "encrypted" in copy.error

    def test_deleting_the_grant_deletes_the_stored_copy(self, stamped_download):
        order = self.pay(stamped_download)
        copy = stamped_copy_make(copy_id=StampedCopy.objects.get().pk)
        assert default_storage.exists(copy.file.name)
        with self.captured_commits():
            grant_delete(grant=order.grants.get())
        assert not StampedCopy.objects.exists()
        assert not default_storage.exists(copy.file.name)

    @pytest.fixture(autouse=True)
    def _commits(self, django_capture_on_commit_callbacks):
        self.captured_commits = lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.mark.django_db
class TestWhatIsDelivered:
    def test_an_unstamped_file_is_its_media_and_costs_no_query(self, django_assert_num_queries):
        grant = factories.GrantFactory()
        grant = DownloadGrant.objects.select_related("download__media").get(pk=grant.pk)
        with django_assert_num_queries(0):
            deliverable = file_to_deliver(grant=grant)
        assert (deliverable.file, deliverable.pending, deliverable.stamped) == (
            grant.download.media,
            False,
            False,
        )

    def test_a_stamped_file_is_pending_then_the_buyers_copy(self):
        media = factories.MediaFactory(content=pdfs.book(2), filename="Guide.pdf")
        download = factories.DownloadFactory(media=media, stamp=True)
        order = order_create(
            email="ada@example.com",
            lines=[LineInput(product=download.product)],
            status="paid",
            send_email=False,
        )
        grant = order.grants.select_related("download__media").get()
        assert file_to_deliver(grant=grant) == Deliverable(file=None, pending=True, stamped=True)
        copy = stamped_copy_make(copy_id=StampedCopy.objects.get().pk)
        ready = file_to_deliver(grant=grant)
        assert ready.stamped and not ready.pending
        assert (ready.file.key, ready.file.filename, ready.file.sha256) == (
            copy.file.name,
            "Guide.pdf",
            copy.sha256,
        )

    def test_an_unstampable_pdf_is_delivered_as_it_is(self):
        media = factories.MediaFactory(content=pdfs.encrypted(), filename="Locked.pdf")
        download = factories.DownloadFactory(media=media, stamp=True)
        order = order_create(
            email="ada@example.com",
            lines=[LineInput(product=download.product)],
            status="paid",
            send_email=False,
        )
        stamped_copy_make(copy_id=StampedCopy.objects.get().pk)
        grant = order.grants.select_related("download__media").get()
        assert file_to_deliver(grant=grant) == Deliverable(file=media)
