"""Download all (services.bundles): what one ZIP of an order holds, what it leaves out and
why, and the one download it takes from each file it includes."""

from datetime import timedelta

import pytest
from django.utils import timezone

from downloads import storage
from downloads.errors import ServiceError
from downloads.models import DownloadEvent, DownloadGrant, Media, Order, StampedCopy
from downloads.services.bundles import (
    PREPARING,
    UNAVAILABLE,
    bundle_contents,
    bundle_take,
)
from downloads.services.consume import grant_consume
from downloads.services.orders import LineInput, order_create
from downloads.services.stamping import stamped_copy_make
from tests import factories, pdfs

pytestmark = pytest.mark.django_db


def order_of(*files, status=Order.Status.PAID):
    """An order with one line per file: a file is (filename, content) with optional grant
    fields, or ("link", name) for an external link. Returns (order, grants in line order)."""
    order = factories.OrderFactory(status=status, paid_at=timezone.now())
    grants = []
    for position, spec in enumerate(files):
        first, second, *rest = spec
        fields = rest[0] if rest else {}
        line = factories.OrderLineFactory(order=order, position=position)
        if first == "link":
            download = factories.LinkDownloadFactory(product=line.product, name=second)
        else:
            media = factories.MediaFactory(filename=first, content=second)
            download = factories.DownloadFactory(product=line.product, media=media)
        fields = {"download_limit": 5, **fields}
        grants.append(factories.GrantFactory(order=order, line=line, download=download, **fields))
    return order, grants


def counts(*grants) -> list[int]:
    return [DownloadGrant.objects.get(pk=grant.pk).download_count for grant in grants]


def outcomes(grant) -> list[str]:
    return sorted(DownloadEvent.objects.filter(grant=grant).values_list("outcome", flat=True))


def names(bundle) -> list[str]:
    return [file.name for file in bundle.files]


class TestContents:
    def test_holds_every_available_file_with_its_key_and_stored_size_in_page_order(self):
        order, grants = order_of(("Guide.pdf", b"guide bytes"), ("Video.mp4", b"v" * 300))
        attached = factories.DownloadFactory(
            product=None, media=factories.MediaFactory(filename="Extra.pdf", content=b"x")
        )
        factories.GrantFactory(order=order, line=None, download=attached, download_limit=None)
        bundle = bundle_contents(order=order)
        assert names(bundle) == ["Guide.pdf", "Video.mp4", "Extra.pdf"]
        assert [(file.key, file.size) for file in bundle.files] == [
            (grants[0].download.media.key, 11),
            (grants[1].download.media.key, 300),
            (attached.media.key, 1),
        ]
        assert bundle.filename == f"order-{order.number}.zip"
        assert bundle.left_out == () and not bundle.is_empty

    def test_takes_nothing_and_logs_nothing(self):
        order, grants = order_of(("a.pdf", b"a"), ("b.pdf", b"b"))
        bundle_contents(order=order)
        assert counts(*grants) == [0, 0]
        assert not DownloadEvent.objects.exists()

    @pytest.mark.parametrize(
        ("fields", "reason", "label"),
        [
            ({"download_limit": 2, "download_count": 2}, "limit_reached", "used up"),
            ({"expires_at": timezone.now() - timedelta(minutes=1)}, "expired", "expired"),
            ({"revoked_at": timezone.now()}, "revoked", "revoked"),
        ],
    )
    def test_used_up_expired_and_revoked_files_are_left_out_with_their_reason(
        self, fields, reason, label
    ):
        order, grants = order_of(("kept.pdf", b"k"), ("gone.pdf", b"g", fields))
        bundle = bundle_contents(order=order)
        assert names(bundle) == ["kept.pdf"]
        [left_out] = bundle.left_out
        assert (left_out.grant, left_out.name, left_out.reason, left_out.label) == (
            grants[1],
            "gone.pdf",
            reason,
            label,
        )

    def test_files_sharing_a_name_get_unique_names_ignoring_case(self):
        order, _ = order_of(
            ("Guide.pdf", b"1"), ("guide.pdf", b"2"), ("Guide.pdf", b"3"), ("Guide (2).pdf", b"4")
        )
        assert names(bundle_contents(order=order)) == [
            "Guide.pdf",
            "guide (2).pdf",
            "Guide (3).pdf",
            "Guide (2) (2).pdf",
        ]

    @pytest.mark.parametrize(
        ("filename", "name"),
        [
            ("Field Guide (2nd édition).pdf", "Field Guide (2nd édition).pdf"),
            ("../../etc/passwd", "_.._etc_passwd"),
            ('a:b?c*"d"<e>|.pdf', "a_b_c__d__e__.pdf"),
            (".hidden.pdf", "hidden.pdf"),
            ("trailing. ", "trailing"),
            ("...", "download"),
        ],
    )
    def test_names_are_cleaned_so_every_system_can_extract_them(self, filename, name):
        order, _ = order_of((filename, b"x"))
        assert names(bundle_contents(order=order)) == [name]

    def test_external_links_are_listed_in_the_links_file(self):
        order, grants = order_of(("a.pdf", b"a"), ("link", "Demo video"), ("link", "Stems"))
        bundle = bundle_contents(order=order)
        assert names(bundle) == ["a.pdf"]
        assert [link.grant for link in bundle.links] == grants[1:]
        assert bundle.texts == (("Links.txt", bundle.links_text),)
        text = bundle.links_text.decode()
        assert f"Demo video: {grants[1].download.url}\n" in text
        assert f"Stems: {grants[2].download.url}\n" in text

    def test_the_links_file_never_takes_a_files_name(self):
        order, _ = order_of(("links.TXT", b"mine"), ("link", "Demo video"))
        bundle = bundle_contents(order=order)
        assert names(bundle) == ["links.TXT"]
        assert bundle.links_name == "Links (2).txt"

    def test_no_links_no_links_file(self):
        order, _ = order_of(("a.pdf", b"a"))
        assert bundle_contents(order=order).texts == ()

    def test_an_order_awaiting_payment_has_nothing_to_download(self):
        order, _ = order_of(("a.pdf", b"a"), status=Order.Status.PENDING)
        with pytest.raises(ServiceError) as exc:
            bundle_contents(order=order)
        assert exc.value.code == "order.invalid_state"

    def test_a_file_missing_from_the_storage_is_left_out_as_unavailable(self):
        order, grants = order_of(("a.pdf", b"a"), ("b.pdf", b"b"))
        storage.delete_stored(grants[1].download.media.key)
        bundle = bundle_contents(order=order)
        assert names(bundle) == ["a.pdf"]
        assert [(item.name, item.reason) for item in bundle.left_out] == [("b.pdf", UNAVAILABLE)]
        assert bundle.waiting

    def test_sizes_are_the_stored_objects_own_unless_told_not_to_ask_the_storage(self, monkeypatch):
        order, grants = order_of(("a.pdf", b"12345"))
        Media.objects.filter(pk=grants[0].download.media_id).update(byte_size=999)
        assert bundle_contents(order=order).files[0].size == 5
        # The order page reads what was recorded, and asks the storage nothing.
        monkeypatch.setattr(storage, "stored_size", lambda key: pytest.fail("asked the storage"))
        page = bundle_contents(order=order, read_storage=False)
        assert page.files[0].size == 999

    def test_given_grants_are_used_as_they_are_in_their_order(self, django_assert_num_queries):
        order, grants = order_of(("a.pdf", b"a"), ("b.pdf", b"b"))
        loaded = list(
            DownloadGrant.objects.filter(pk__in=[g.pk for g in grants])
            .select_related("download__media")
            .order_by("-download__media__filename")
        )
        with django_assert_num_queries(0):
            bundle = bundle_contents(order=order, grants=loaded, read_storage=False)
        assert names(bundle) == ["b.pdf", "a.pdf"]


class TestTake:
    def test_takes_one_download_from_each_file_and_link_and_logs_each_served(self):
        order, grants = order_of(
            ("a.pdf", b"a"), ("b.pdf", b"b", {"download_count": 3}), ("link", "Video")
        )
        bundle = bundle_take(order=order, ip="203.0.113.9", user_agent="zip client")
        assert names(bundle) == ["a.pdf", "b.pdf"] and len(bundle.links) == 1
        assert counts(*grants) == [1, 4, 1]
        for grant in grants:
            event = DownloadEvent.objects.get(grant=grant)
            assert (event.outcome, event.ip, event.user_agent) == (
                "served",
                "203.0.113.9",
                "zip client",
            )

    def test_takes_nothing_from_files_left_out_and_does_not_log_them(self):
        order, grants = order_of(
            ("a.pdf", b"a"),
            ("used.pdf", b"u", {"download_limit": 1, "download_count": 1}),
            ("old.pdf", b"o", {"expires_at": timezone.now() - timedelta(days=1)}),
            ("revoked.pdf", b"r", {"revoked_at": timezone.now()}),
        )
        bundle = bundle_take(order=order)
        assert names(bundle) == ["a.pdf"]
        assert [item.label for item in bundle.left_out] == ["used up", "expired", "revoked"]
        assert counts(*grants) == [1, 1, 0, 0]
        assert [outcomes(grant) for grant in grants] == [["served"], [], [], []]

    def test_a_second_download_all_takes_one_more_from_each(self):
        order, grants = order_of(("a.pdf", b"a"), ("b.pdf", b"b", {"download_limit": None}))
        bundle_take(order=order)
        bundle_take(order=order)
        assert counts(*grants) == [2, 2]
        assert outcomes(grants[0]) == ["served", "served"]

    def test_a_file_with_one_download_left_is_in_the_first_download_all_only(self):
        order, grants = order_of(("a.pdf", b"a", {"download_limit": 1}), ("b.pdf", b"b"))
        assert names(bundle_take(order=order)) == ["a.pdf", "b.pdf"]
        second = bundle_take(order=order)
        assert names(second) == ["b.pdf"]
        assert [(item.name, item.label) for item in second.left_out] == [("a.pdf", "used up")]
        assert counts(*grants) == [1, 2]

    def test_a_file_that_lost_a_race_since_it_was_read_is_left_out(self):
        order, grants = order_of(("a.pdf", b"a", {"download_limit": 1}), ("b.pdf", b"b"))
        loaded = list(
            DownloadGrant.objects.filter(order=order)
            .select_related("download__media")
            .order_by("line__position")
        )
        grant_consume(grant=grants[0])  # the last download, taken elsewhere in between
        bundle = bundle_take(order=order, grants=loaded)
        assert names(bundle) == ["b.pdf"]
        assert [(item.name, item.reason) for item in bundle.left_out] == [
            ("a.pdf", "limit_reached")
        ]
        assert counts(*grants) == [1, 1]
        assert outcomes(grants[0]) == ["limit_reached", "served"]

    def test_names_stay_unique_among_what_was_taken(self):
        order, grants = order_of(("Guide.pdf", b"1", {"download_limit": 1}), ("Guide.pdf", b"2"))
        loaded = list(
            DownloadGrant.objects.filter(order=order)
            .select_related("download__media")
            .order_by("line__position")
        )
        grant_consume(grant=grants[0])
        assert names(bundle_take(order=order, grants=loaded)) == ["Guide.pdf"]

    def test_a_missing_file_is_not_taken(self):
        order, grants = order_of(("a.pdf", b"a"), ("b.pdf", b"b"))
        storage.delete_stored(grants[1].download.media.key)
        bundle_take(order=order)
        assert counts(*grants) == [1, 0]

    def test_nothing_to_take_takes_nothing(self):
        order, _ = order_of(("a.pdf", b"a", {"revoked_at": timezone.now()}))
        bundle = bundle_take(order=order)
        assert bundle.is_empty and not DownloadEvent.objects.exists()


class TestStampedFiles:
    @pytest.fixture
    def order(self):
        media = factories.MediaFactory(content=pdfs.book(3), filename="Book.pdf")
        stamped = factories.DownloadFactory(media=media, stamp=True)
        plain = factories.DownloadFactory(
            media=factories.MediaFactory(content=b"plain", filename="Notes.pdf")
        )
        return order_create(
            email="ada@example.com",
            lines=[LineInput(product=stamped.product), LineInput(product=plain.product)],
            status="paid",
            send_email=False,
        )

    def book_grant(self, order):
        return order.grants.get(download__media__filename="Book.pdf")

    def test_a_ready_copy_goes_in_instead_of_the_original(self, order):
        copy = stamped_copy_make(copy_id=StampedCopy.objects.get().pk)
        bundle = bundle_take(order=order)
        book = next(file for file in bundle.files if file.name == "Book.pdf")
        assert (book.key, book.size) == (copy.file.name, copy.byte_size)
        assert book.key != self.book_grant(order).download.media.key
        assert counts(self.book_grant(order)) == [1]

    def test_a_copy_being_prepared_is_left_out_named_and_not_taken(self, order):
        bundle = bundle_take(order=order)
        assert names(bundle) == ["Notes.pdf"]
        assert [(item.name, item.reason, item.label) for item in bundle.left_out] == [
            ("Book.pdf", PREPARING, "being prepared")
        ]
        assert bundle.waiting
        assert counts(self.book_grant(order)) == [0]
        assert not DownloadEvent.objects.filter(grant=self.book_grant(order)).exists()

    def test_a_pdf_that_cannot_be_stamped_goes_in_as_it_is(self, order):
        StampedCopy.objects.update(status=StampedCopy.Status.UNSTAMPABLE, error="encrypted")
        book = next(f for f in bundle_take(order=order).files if f.name == "Book.pdf")
        assert book.key == self.book_grant(order).download.media.key

    def test_the_order_page_reads_where_each_copy_stands_with_the_grants_and_no_query(
        self, order, django_assert_num_queries
    ):
        from downloads import selectors

        def page_grants():
            grants = DownloadGrant.objects.filter(order=order).select_related("download__media")
            return list(selectors.grants_with_stamp_state(grants).order_by("line__position"))

        loaded = page_grants()
        with django_assert_num_queries(0):
            bundle = bundle_contents(order=order, grants=loaded, read_storage=False)
        assert names(bundle) == ["Notes.pdf"]
        assert [(item.name, item.reason) for item in bundle.left_out] == [("Book.pdf", PREPARING)]
        stamped_copy_make(copy_id=StampedCopy.objects.get().pk)
        loaded = page_grants()
        with django_assert_num_queries(0):
            bundle = bundle_contents(order=order, grants=loaded, read_storage=False)
        assert names(bundle) == ["Book.pdf", "Notes.pdf"]
