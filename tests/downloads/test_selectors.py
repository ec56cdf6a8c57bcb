from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Prefetch
from django.utils import timezone

from downloads import selectors
from downloads.models import Download, DownloadGrant, DownloadVersion, LicenseKey, Order, OrderLine
from downloads.services.orders import order_refund
from downloads.services.stamping import STATE_ANNOTATIONS
from tests import factories

pytestmark = pytest.mark.django_db


class TestGrantForDelivery:
    def test_one_query_loads_the_grant_its_order_download_and_file(self, django_assert_num_queries):
        expires = timezone.now() + timedelta(days=3)
        grant = factories.GrantFactory(download_count=2, download_limit=5, expires_at=expires)
        with django_assert_num_queries(1):
            loaded = selectors.grant_get_for_delivery(token=grant.token)
            media = loaded.download.media
            values = (
                loaded.pk,
                loaded.download_count,
                loaded.download_limit,
                loaded.expires_at,
                loaded.revoked_at,
                loaded.order.access_token,
                loaded.order.email,
                loaded.download.display_name,
                media.key,
                media.filename,
                media.byte_size,
                media.sha256,
                loaded.refusal(),
            )
        download = grant.download
        assert values == (
            grant.pk,
            2,
            5,
            expires,
            None,
            grant.order.access_token,
            grant.order.email,
            download.display_name,
            download.media.key,
            download.media.filename,
            download.media.byte_size,
            download.media.sha256,
            None,
        )

    def test_a_link_has_no_file(self):
        grant = factories.GrantFactory(download=factories.LinkDownloadFactory())
        loaded = selectors.grant_get_for_delivery(token=grant.token)
        assert loaded.download.media is None
        assert loaded.download.url == grant.download.url

    def test_fields_it_does_not_read_still_load_on_access(self):
        grant = factories.GrantFactory()
        loaded = selectors.grant_get_for_delivery(token=grant.token)
        assert loaded.created_at == DownloadGrant.objects.get(pk=grant.pk).created_at

    @pytest.mark.parametrize("token", ["", "nope", "x" * 65, "abc\x00def"])
    def test_what_no_grant_has_finds_nothing(self, token):
        factories.GrantFactory()
        assert selectors.grant_get_for_delivery(token=token) is None


class TestOrderPaymentState:
    """The one rule for an order's badge: paid, partly refunded, refunded, else its status."""

    @pytest.mark.parametrize(
        ("fields", "line_fields", "key", "label"),
        [
            ({"status": "pending"}, {}, "pending", "Pending"),
            ({"status": "paid"}, {}, "paid", "Paid"),
            ({"status": "paid", "total": 5000, "refunded_total": 100}, {}, "partly_refunded", "Partly refunded"),
            ({"status": "paid"}, {"refunded_quantity": 1, "quantity": 2}, "partly_refunded", "Partly refunded"),
            ({"status": "paid"}, {"refunded_at": timezone.now()}, "partly_refunded", "Partly refunded"),
            ({"status": "paid", "total": 5000, "refunded_total": 5000}, {}, "refunded", "Refunded"),
            ({"status": "refunded", "total": 5000, "refunded_total": 5000}, {}, "refunded", "Refunded"),
            ({"status": "cancelled"}, {}, "cancelled", "Cancelled"),
        ],
    )  # fmt: skip
    def test_each_state_has_its_key_and_words(self, fields, line_fields, key, label):
        order = factories.OrderFactory(**fields)
        factories.OrderLineFactory(order=order, **line_fields)
        factories.OrderLineFactory(order=order)  # another line, not refunded
        state = selectors.order_payment_state(order)
        assert (state.key, str(state.label)) == (key, label)

    def test_an_order_read_with_its_lines_costs_no_query(self, django_assert_num_queries):
        order = factories.OrderFactory(status="paid")
        factories.OrderLineFactory(order=order, refunded_quantity=1, quantity=3)
        loaded = Order.objects.prefetch_related("lines").get(pk=order.pk)
        with django_assert_num_queries(0):
            assert selectors.order_payment_state(loaded).key == "partly_refunded"


class TestOrderPageGrants:
    def test_each_grant_carries_its_files_newest_changelog_and_whether_it_changed_since(self):
        order = factories.paid_order_with_files(lines=2, attached=1)
        updated = order.lines.order_by("position").first().grants.get().download
        for n, when in ((1, timedelta(days=1)), (2, timedelta(days=2))):
            DownloadVersion.objects.create(
                download=updated,
                media=updated.media,
                changelog=f"v{n}",
                created_at=order.paid_at + when,
            )
        Download.objects.filter(pk=updated.pk).update(
            file_updated_at=order.paid_at + timedelta(days=2)
        )
        loaded = selectors.order_get_by_token(access_token=order.access_token)
        grants = [
            *(g for line in loaded.lines.all() for g in line.grants.all()),
            *loaded.order_grants,
        ]
        shown = [(grant.changelog, grant.updated_since_paid) for grant in grants]
        assert shown == [("v2", True), (None, False), (None, False)]


def _fields(instance) -> dict:
    """The fields `instance` was loaded with (a deferred field is not read: no query)."""
    deferred = instance.get_deferred_fields()
    return {
        f.attname: getattr(instance, f.attname)
        for f in type(instance)._meta.concrete_fields
        if f.attname not in deferred
    }


def _same(loaded, reference) -> bool:
    # What the page read is what the ORM read, and all it leaves out is bookkeeping.
    assert loaded.get_deferred_fields() <= {"created_at", "updated_at"}
    return _fields(loaded) == {name: _fields(reference)[name] for name in _fields(loaded)}


class TestOrderGetByToken:
    """The order page's read: compiled rows built into the instances prefetch_related()
    would give, at one statement on PostgreSQL whatever the order's size."""

    @staticmethod
    def reference(order):
        # What the page read before its reads were compiled: the ORM's own prefetches.
        return (
            Order.objects.filter(pk=order.pk)
            .prefetch_related(
                Prefetch(
                    "lines",
                    queryset=OrderLine.objects.order_by("position", "id"),
                ),
                Prefetch(
                    "lines__grants",
                    queryset=selectors.grants_with_stamp_state(
                        DownloadGrant.objects.select_related("download__media")
                    ).order_by("download__position", "created_at", "id"),
                ),
                Prefetch("lines__license_keys", queryset=LicenseKey.objects.order_by("unit", "id")),
                Prefetch(
                    "grants",
                    queryset=DownloadGrant.objects.filter(line__isnull=True)
                    .select_related("download__media")
                    .order_by("download__position", "created_at", "id"),
                    to_attr="order_grants",
                ),
            )
            .get()
        )

    def an_order_of_every_kind(self):
        order = factories.paid_order_with_files(lines=4, attached=2)
        keyed = factories.licensed_order(quantity=3)
        line = keyed.lines.get()
        line.order = order
        line.position = 9
        line.save()
        LicenseKey.objects.filter(line=line).update(order=order)
        order_refund(order=order, quantities={line.pk: 1})
        return order

    def test_it_reads_what_the_orms_prefetches_read(self, django_assert_num_queries):
        order = self.an_order_of_every_kind()
        expected = self.reference(order)
        with django_assert_num_queries(1 if connection.vendor == "postgresql" else 4):
            loaded = selectors.order_get_by_token(access_token=order.access_token)
        with django_assert_num_queries(0):
            assert _fields(loaded) == _fields(expected)
            pairs = list(zip(loaded.lines.all(), expected.lines.all(), strict=True))
            assert len(pairs) == 5
            for line, reference in pairs:
                assert _fields(line) == _fields(reference)
                assert line.order is loaded
                grants = list(zip(line.grants.all(), reference.grants.all(), strict=True))
                for grant, other in grants:
                    assert _same(grant, other)
                    assert grant.line is line and grant.order is loaded
                    assert _same(grant.download, other.download)
                    media, other_media = grant.download.media, other.download.media
                    assert (media is None) == (other_media is None)
                    assert media is None or _same(media, other_media)
                    for name in STATE_ANNOTATIONS:
                        assert getattr(grant, name) == getattr(other, name)
                keys = list(zip(line.license_keys.all(), reference.license_keys.all(), strict=True))
                for key, other in keys:
                    assert _fields(key) == _fields(other) and key.line is line
                # the refund above: the highest unit of the keyed line's three
                assert [key.unit_refunded for key in line.license_keys.all()] == (
                    [False, False, True] if keys else []
                )
            assert len(loaded.order_grants) == len(expected.order_grants) == 2
            for grant, other in zip(loaded.order_grants, expected.order_grants, strict=True):
                assert _same(grant, other) and _same(grant.download, other.download)
            assert all(g.download.media is not None for g in loaded.order_grants)

    @pytest.mark.parametrize("lines", [1, 10, 40])
    def test_its_statements_do_not_grow_with_the_order(self, django_assert_num_queries, lines):
        order = factories.paid_order_with_files(lines=lines, attached=3)
        with django_assert_num_queries(1 if connection.vendor == "postgresql" else 4):
            loaded = selectors.order_get_by_token(access_token=order.access_token)
            shown = [g for line in loaded.lines.all() for g in line.grants.all()]
            assert len(shown) == lines and len(loaded.order_grants) == 3
            assert all(g.download.display_name and g.refusal() is None for g in shown)

    @pytest.mark.parametrize("token", ["", "nope", "x" * 65, "abc\x00def"])
    def test_what_no_order_has_finds_nothing(self, token):
        factories.paid_order_with_files()
        assert selectors.order_get_by_token(access_token=token) is None

    def test_an_order_whose_lines_are_gone_is_read_with_none(self):
        order = factories.paid_order_with_files(lines=0, attached=1)
        loaded = selectors.order_get_by_token(access_token=order.access_token)
        assert list(loaded.lines.all()) == [] and len(loaded.order_grants) == 1
