"""Grants (services.grants): issuance on payment, limits and expiry, maintenance."""

from datetime import timedelta

import pytest
from django.utils import timezone

from downloads.errors import ServiceError
from downloads.models import DownloadGrant, Order
from downloads.services.consume import grant_consume
from downloads.services.grants import (
    grant_create,
    grant_update,
    grants_extend,
    grants_issue,
    grants_reset,
    grants_restore,
    grants_revoke,
)
from downloads.services.orders import LineInput, order_create, order_pay
from tests import factories

pytestmark = pytest.mark.django_db


class TestGrantIssuance:
    def test_paying_issues_one_grant_per_deliverable(self, paid_order):
        book = factories.ProductFactory()
        factories.DownloadFactory(product=book)
        factories.LinkDownloadFactory(product=book)
        factories.DownloadFactory(product=book, archived=True)
        order = paid_order(book)
        assert order.status == Order.Status.PAID and order.paid_at is not None
        assert order.grants.count() == 2

    def test_variant_downloads_go_only_to_lines_of_that_variant(self):
        product = factories.ProductFactory()
        hardback, paperback = factories.VariantFactory.create_batch(2, product=product)
        common = factories.DownloadFactory(product=product)
        hard_only = factories.DownloadFactory(product=product, variant=hardback)
        order = order_create(
            email="a@example.com",
            lines=[LineInput(product=product, variant=paperback)],
            status=Order.Status.PAID,
            send_email=False,
        )
        assert set(order.grants.values_list("download", flat=True)) == {common.pk}
        order2 = order_create(
            email="a@example.com",
            lines=[LineInput(product=product, variant=hardback)],
            status=Order.Status.PAID,
            send_email=False,
        )
        assert set(order2.grants.values_list("download", flat=True)) == {common.pk, hard_only.pk}

    def test_paying_twice_is_idempotent(self, paid_order):
        product = factories.ProductFactory()
        factories.DownloadFactory.create_batch(3, product=product)
        order = paid_order(product)
        assert order_pay(order=order, send_email=False) is order
        assert grants_issue(order=order) == []
        assert order.grants.count() == 3

    def test_paying_again_issues_only_what_was_added_since(self, paid_order):
        product = factories.ProductFactory()
        factories.DownloadFactory(product=product)
        order = paid_order(product)
        factories.DownloadFactory(product=product)
        new = grants_issue(order=order)
        assert len(new) == 1 and order.grants.count() == 2

    def test_limit_and_expiry_come_from_the_product(self, settings, paid_order):
        settings.DOWNLOADS_DEFAULT_LIMIT = 10
        settings.DOWNLOADS_DEFAULT_EXPIRY_DAYS = 30
        product = factories.ProductFactory(download_limit=3, download_expiry_days=7)
        factories.DownloadFactory(product=product)
        order = paid_order(product)
        grant = order.grants.get()
        assert grant.download_limit == 3
        assert grant.expires_at == order.paid_at + timedelta(days=7)

    def test_limit_and_expiry_fall_back_to_store_defaults(self, settings, paid_order):
        settings.DOWNLOADS_DEFAULT_LIMIT = 4
        settings.DOWNLOADS_DEFAULT_EXPIRY_DAYS = 30
        product = factories.ProductFactory(download_limit=None, download_expiry_days=None)
        factories.DownloadFactory(product=product)
        grant = paid_order(product).grants.get()
        assert grant.download_limit == 4
        assert grant.expires_at == grant.order.paid_at + timedelta(days=30)

    def test_zero_means_unlimited_and_never(self, settings, paid_order):
        settings.DOWNLOADS_DEFAULT_LIMIT = 0
        settings.DOWNLOADS_DEFAULT_EXPIRY_DAYS = 0
        product = factories.ProductFactory()
        factories.DownloadFactory(product=product)
        unlimited = paid_order(product).grants.get()
        assert unlimited.download_limit is None and unlimited.expires_at is None
        capped = factories.ProductFactory(download_limit=0, download_expiry_days=0)
        settings.DOWNLOADS_DEFAULT_LIMIT = 10
        factories.DownloadFactory(product=capped)
        assert paid_order(capped).grants.get().download_limit is None


class TestGrantMaintenance:
    def test_reset_extend_revoke_restore_report_how_many_changed(self):
        now = timezone.now()
        used = factories.GrantFactory(download_count=3, expires_at=now - timedelta(days=1))
        fresh = factories.GrantFactory(download_count=0, expires_at=None)
        both = DownloadGrant.objects.filter(pk__in=[used.pk, fresh.pk])
        assert grants_reset(grants=both) == 1
        assert grants_extend(grants=both, days=10) == 1
        used.refresh_from_db()
        fresh.refresh_from_db()
        # An expired grant is extended from now; one that never expires stays so.
        assert used.expires_at > now + timedelta(days=9)
        assert fresh.expires_at is None
        assert grants_revoke(grants=both) == 2
        assert grants_revoke(grants=both) == 0
        assert grants_restore(grants=both) == 2
        assert grant_consume(grant=used).allowed

    def test_extend_pushes_a_future_expiry_further(self):
        later = timezone.now() + timedelta(days=5)
        grant = factories.GrantFactory(expires_at=later)
        grants_extend(grants=DownloadGrant.objects.filter(pk=grant.pk), days=2)
        grant.refresh_from_db()
        assert abs((grant.expires_at - later) - timedelta(days=2)) < timedelta(seconds=1)

    def test_update_refuses_negative_counts_and_zero_limits(self):
        grant = factories.GrantFactory()
        with pytest.raises(ServiceError):
            grant_update(grant=grant, download_count=-1)
        with pytest.raises(ServiceError):
            grant_update(grant=grant, download_limit=0)
        grant_update(grant=grant, download_limit=None, expires_at=None)
        grant.refresh_from_db()
        assert grant.download_limit is None

    def test_manual_grant_is_unique_per_order_and_download(self):
        order = factories.OrderFactory(status=Order.Status.PAID)
        download = factories.DownloadFactory(product=None)
        grant_create(order=order, download=download, download_limit=3)
        with pytest.raises(ServiceError):
            grant_create(order=order, download=download)
