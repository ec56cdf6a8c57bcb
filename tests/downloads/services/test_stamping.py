"""PDF stamping (services.stamping): the stamp on every page, what survives, what cannot be
stamped, the copies' lifecycle, the merchant's stamp settings (services.catalogue) and where a
grant's copy stands."""

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
from downloads.models import Download, DownloadGrant, StampedCopy
from downloads.models.catalogue import DEFAULT_STAMP_TEXT
from downloads.selectors import grants_with_stamp_state
from downloads.services.catalogue import download_create, download_update
from downloads.services.grants import grant_delete
from downloads.services.orders import LineInput, order_create
from downloads.services.stamping import (
    Deliverable,
    StampState,
    Unstampable,
    file_to_deliver,
    files_to_deliver,
    is_stamped,
    is_stamped_file,
    pdf_stamp,
    stamp_state,
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


@pytest.mark.django_db
class TestManyAtOnce:
    def test_files_to_deliver_says_what_file_to_deliver_says_in_one_query(
        self, django_assert_num_queries
    ):
        def stamped(content):
            media = factories.MediaFactory(content=content, filename="Guide.pdf")
            return factories.DownloadFactory(media=media, stamp=True).product

        order = order_create(
            email="ada@example.com",
            lines=[
                LineInput(product=product)
                for product in (
                    stamped(pdfs.book(1)),  # ready
                    stamped(pdfs.book(1)),  # pending
                    stamped(pdfs.encrypted()),  # unstampable
                    factories.DownloadFactory().product,  # not stamped
                    factories.LinkDownloadFactory().product,
                )
            ],
            status="paid",
            send_email=False,
        )
        grants = list(
            order.grants.select_related("download__media", "line").order_by("line__position")
        )
        for grant in (grants[0], grants[2]):
            stamped_copy_make(copy_id=StampedCopy.objects.get(grant=grant).pk)
        with django_assert_num_queries(1):
            many = files_to_deliver(grants=grants)
        assert many == [file_to_deliver(grant=grant) for grant in grants]
        assert [(d.pending, d.stamped) for d in many] == [
            (False, True),
            (True, True),
            (False, False),
            (False, False),
            (False, False),
        ]
        with django_assert_num_queries(0):
            assert files_to_deliver(grants=grants[3:]) == [
                Deliverable(file=grants[3].download.media),
                Deliverable(file=None),
            ]


@pytest.mark.django_db
class TestStampSettings:
    """download_create/download_update: the stamp settings, checked, and what changing them
    does to the buyers' copies (services.catalogue, services.stamping)."""

    @pytest.fixture
    def download(self):
        media = factories.MediaFactory(content=pdfs.book(2), filename="Guide.pdf")
        return factories.DownloadFactory(media=media)

    def pay(self, download, n=1):
        return [
            order_create(
                email=f"buyer{i}@example.com",
                lines=[LineInput(product=download.product)],
                status="paid",
                send_email=False,
            )
            for i in range(n)
        ]

    def make_all(self):
        return [
            stamped_copy_make(copy_id=pk) for pk in StampedCopy.objects.values_list("pk", flat=True)
        ]

    def test_a_download_is_created_with_its_stamp_settings_checked(self):
        media = factories.MediaFactory(filename="Guide.pdf")
        download = download_create(
            media=media, stamp=True, stamp_text=" For {email} ", stamp_position="top"
        )
        assert (download.stamp, download.stamp_text, download.stamp_position) == (
            True,
            "For {email}",
            "top",
        )
        plain = download_create(media=factories.MediaFactory())
        assert (plain.stamp, plain.stamp_text, plain.stamp_position) == (
            False,
            DEFAULT_STAMP_TEXT,
            "bottom",
        )

    @pytest.mark.parametrize(
        ("fields", "attribute"),
        [
            ({"stamp_text": "Hi {customer}"}, "stamp_text"),
            ({"stamp_text": ""}, "stamp_text"),
            ({"stamp_position": "middle"}, "stamp_position"),
            ({"stamp": "yes"}, "stamp"),
        ],
    )
    def test_settings_the_service_refuses_change_nothing(self, download, fields, attribute):
        with pytest.raises(ServiceError) as exc:
            download_update(download=download, **fields)
        assert (exc.value.code, exc.value.attribute) == ("download.invalid", attribute)
        stored = Download.objects.get(pk=download.pk)
        assert (stored.stamp, stored.stamp_text, stored.stamp_position) == (
            False,
            DEFAULT_STAMP_TEXT,
            "bottom",
        )
        with pytest.raises(ServiceError):
            download_create(media=factories.MediaFactory(), **fields)

    def test_turning_stamp_on_requests_a_copy_for_every_existing_grant(self, download):
        orders = self.pay(download, 3)
        download_update(download=download, stamp=True)
        copies = StampedCopy.objects.all()
        assert sorted(copy.grant.order_id for copy in copies) == sorted(o.pk for o in orders)
        assert {(copy.status, copy.source_id) for copy in copies} == {
            ("pending", download.media_id)
        }
        tasks = DBTaskResult.objects.filter(task_path="downloads.tasks.stamped_copy_make")
        assert sorted(t.args_kwargs["args"][0] for t in tasks) == sorted(str(c.pk) for c in copies)

    @pytest.mark.parametrize(
        "change", [{"stamp_text": "Personal copy of {email}"}, {"stamp_position": "top"}]
    )
    def test_a_new_text_or_position_makes_every_copy_again(self, download, change):
        download_update(download=download, stamp=True)
        self.pay(download, 2)
        old = self.make_all()
        with self.captured_commits():
            download_update(download=download, **change)
        assert all(not default_storage.exists(copy.file.name) for copy in old)
        fresh = list(StampedCopy.objects.all())
        assert len(fresh) == 2 and {copy.status for copy in fresh} == {"pending"}
        assert not {copy.pk for copy in fresh} & {copy.pk for copy in old}
        made = self.make_all()
        data = b"".join(storage.stored_chunks(made[0].file.name))
        text = PdfReader(io.BytesIO(data)).pages[0].extract_text()
        if "stamp_text" in change:
            assert "Personal copy of buyer" in text and "Licensed to" not in text
        else:
            assert "Licensed to buyer" in text

    def test_the_same_settings_again_remake_nothing(self, download):
        download_update(download=download, stamp=True)
        self.pay(download)
        (copy,) = self.make_all()
        download_update(
            download=download,
            stamp=True,
            stamp_text=f" {DEFAULT_STAMP_TEXT} ",
            stamp_position="bottom",
        )
        assert list(StampedCopy.objects.values_list("pk", "status")) == [(copy.pk, "ready")]

    def test_turning_stamp_off_deletes_the_copies_and_their_files(self, download):
        download_update(download=download, stamp=True)
        self.pay(download, 2)
        copies = self.make_all()
        with self.captured_commits():
            download_update(download=download, stamp=False)
        assert not StampedCopy.objects.exists()
        assert all(not default_storage.exists(copy.file.name) for copy in copies)
        grant = DownloadGrant.objects.select_related("download__media").first()
        assert file_to_deliver(grant=grant) == Deliverable(file=grant.download.media)

    def test_a_task_left_for_a_deleted_copy_does_nothing(self, download):
        download_update(download=download, stamp=True)
        self.pay(download)
        pk = StampedCopy.objects.get().pk
        download_update(download=download, stamp=False)
        assert stamped_copy_make(copy_id=pk) is None
        assert not StampedCopy.objects.exists()

    @pytest.fixture(autouse=True)
    def _commits(self, django_capture_on_commit_callbacks):
        self.captured_commits = lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.mark.django_db
class TestStampState:
    def test_it_is_none_for_files_that_are_not_stamped(self):
        assert stamp_state(grant=factories.GrantFactory()) is None
        link = factories.GrantFactory(download=factories.LinkDownloadFactory(stamp=True))
        assert stamp_state(grant=link) is None

    def test_a_stamped_pdf_without_a_copy_is_pending_like_file_to_deliver_says(self):
        media = factories.MediaFactory(filename="Guide.pdf")
        grant = factories.GrantFactory(download=factories.DownloadFactory(media=media, stamp=True))
        assert stamp_state(grant=grant) == StampState(status="pending")
        assert file_to_deliver(grant=grant).pending

    def test_read_through_the_selector_it_costs_no_query(self, django_assert_num_queries):
        media = factories.MediaFactory(content=pdfs.book(2), filename="Guide.pdf")
        download = factories.DownloadFactory(media=media, stamp=True)
        order = order_create(
            email="ada@example.com",
            lines=[LineInput(product=download.product)],
            status="paid",
            send_email=False,
        )
        copy = stamped_copy_make(copy_id=StampedCopy.objects.get().pk)
        with django_assert_num_queries(1):
            (grant,) = grants_with_stamp_state(
                DownloadGrant.objects.filter(order=order).select_related("download__media")
            )
            state = stamp_state(grant=grant)
        assert state == StampState(status="ready", ready_at=copy.ready_at)
        assert state.label == "Ready"

    @pytest.mark.parametrize(
        ("stamp", "content_type", "filename", "expected"),
        [
            (True, "application/pdf", "a.bin", True),
            (True, "application/octet-stream", "Book.PDF", True),
            (True, "application/zip", "a.zip", False),
            (False, "application/pdf", "a.pdf", False),
            (True, None, None, False),
        ],
    )
    def test_is_stamped_file_is_is_stamped_from_plain_values(
        self, stamp, content_type, filename, expected
    ):
        assert (
            is_stamped_file(stamp=stamp, content_type=content_type, filename=filename) is expected
        )
        if filename is not None:
            media = factories.MediaFactory(filename=filename, content_type=content_type)
            assert is_stamped(factories.DownloadFactory(media=media, stamp=stamp)) is expected
