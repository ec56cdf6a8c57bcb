from datetime import timedelta

import pytest
from django.utils import timezone

from downloads.errors import ServiceError
from downloads.models import Download, DownloadEvent, DownloadGrant, Order
from downloads.services.catalogue import product_create, product_delete, product_update
from downloads.services.common import LATEST_EXPIRY, MAX_EXPIRY_DAYS
from downloads.services.consume import grant_consume
from downloads.services.grants import (
    grant_create,
    grant_extend,
    grant_update,
    grants_extend,
    grants_issue,
    grants_reset,
    grants_restore,
    grants_revoke,
)
from downloads.services.media import media_delete
from downloads.services.orders import (
    LineInput,
    order_attach_downloads,
    order_cancel,
    order_create,
    order_detach_downloads,
    order_pay,
    order_refund,
)
from tests import factories

pytestmark = pytest.mark.django_db


def make_paid_order(*products, email="buyer@example.com", **kwargs):
    lines = [LineInput(product=p) for p in products]
    return order_create(
        email=email, lines=lines, status=Order.Status.PAID, send_email=False, **kwargs
    )


class TestOrderCreate:
    def test_numbers_are_sequential_from_1001(self):
        product = factories.ProductFactory()
        first = order_create(email="a@example.com", lines=[LineInput(product=product)])
        second = order_create(email="b@example.com", lines=[LineInput(product=product)])
        assert (first.number, second.number) == (1001, 1002)

    def test_lines_snapshot_name_and_sku_of_the_variant(self):
        variant = factories.VariantFactory(sku="V-1", name="Hardback")
        order = order_create(
            email="A@Example.com ",
            lines=[LineInput(product=variant.product, variant=variant)],
        )
        line = order.lines.get()
        assert (line.name, line.variant_name, line.sku) == (variant.product.name, "Hardback", "V-1")
        assert order.email == "a@example.com"

    def test_taken_number_is_a_conflict(self):
        product = factories.ProductFactory()
        order_create(email="a@example.com", number=77, lines=[LineInput(product=product)])
        with pytest.raises(ServiceError) as exc:
            order_create(email="a@example.com", number=77, lines=[LineInput(product=product)])
        assert exc.value.code == "order.number_taken"

    def test_invalid_email_and_empty_lines_are_refused(self):
        product = factories.ProductFactory()
        with pytest.raises(ServiceError) as exc:
            order_create(email="not an email", lines=[LineInput(product=product)])
        assert exc.value.attribute == "email"
        with pytest.raises(ServiceError) as exc:
            order_create(email="a@example.com", lines=[])
        assert exc.value.attribute == "lines"
        assert Order.objects.count() == 0

    def test_variant_of_another_product_is_refused(self):
        variant = factories.VariantFactory()
        with pytest.raises(ServiceError):
            order_create(
                email="a@example.com",
                lines=[LineInput(product=factories.ProductFactory(), variant=variant)],
            )

    def test_order_belongs_to_existing_customer_and_to_one_who_registers_later(self):
        existing = factories.UserFactory(email="known@example.com")
        product = factories.ProductFactory()
        known = order_create(email="KNOWN@example.com", lines=[LineInput(product=product)])
        later = order_create(email="later@example.com", lines=[LineInput(product=product)])
        assert known.customer == existing
        assert later.customer is None
        user = factories.UserFactory(email="Later@Example.com")
        later.refresh_from_db()
        assert later.customer == user


class TestGrantIssuance:
    def test_paying_issues_one_grant_per_deliverable(self):
        book = factories.ProductFactory()
        factories.DownloadFactory(product=book)
        factories.LinkDownloadFactory(product=book)
        factories.DownloadFactory(product=book, archived=True)
        order = make_paid_order(book)
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

    def test_paying_twice_is_idempotent(self):
        product = factories.ProductFactory()
        factories.DownloadFactory.create_batch(3, product=product)
        order = make_paid_order(product)
        assert order_pay(order=order, send_email=False) is order
        assert grants_issue(order=order) == []
        assert order.grants.count() == 3

    def test_paying_again_issues_only_what_was_added_since(self):
        product = factories.ProductFactory()
        factories.DownloadFactory(product=product)
        order = make_paid_order(product)
        factories.DownloadFactory(product=product)
        new = grants_issue(order=order)
        assert len(new) == 1 and order.grants.count() == 2

    def test_limit_and_expiry_come_from_the_product(self, settings):
        settings.DOWNLOADS_DEFAULT_LIMIT = 10
        settings.DOWNLOADS_DEFAULT_EXPIRY_DAYS = 30
        product = factories.ProductFactory(download_limit=3, download_expiry_days=7)
        factories.DownloadFactory(product=product)
        order = make_paid_order(product)
        grant = order.grants.get()
        assert grant.download_limit == 3
        assert grant.expires_at == order.paid_at + timedelta(days=7)

    def test_limit_and_expiry_fall_back_to_store_defaults(self, settings):
        settings.DOWNLOADS_DEFAULT_LIMIT = 4
        settings.DOWNLOADS_DEFAULT_EXPIRY_DAYS = 30
        product = factories.ProductFactory(download_limit=None, download_expiry_days=None)
        factories.DownloadFactory(product=product)
        grant = make_paid_order(product).grants.get()
        assert grant.download_limit == 4
        assert grant.expires_at == grant.order.paid_at + timedelta(days=30)

    def test_zero_means_unlimited_and_never(self, settings):
        settings.DOWNLOADS_DEFAULT_LIMIT = 0
        settings.DOWNLOADS_DEFAULT_EXPIRY_DAYS = 0
        product = factories.ProductFactory()
        factories.DownloadFactory(product=product)
        unlimited = make_paid_order(product).grants.get()
        assert unlimited.download_limit is None and unlimited.expires_at is None
        capped = factories.ProductFactory(download_limit=0, download_expiry_days=0)
        settings.DOWNLOADS_DEFAULT_LIMIT = 10
        factories.DownloadFactory(product=capped)
        assert make_paid_order(capped).grants.get().download_limit is None

    def test_refunded_or_cancelled_orders_cannot_be_paid(self):
        product = factories.ProductFactory()
        order = order_create(email="a@example.com", lines=[LineInput(product=product)])
        order_cancel(order=order)
        with pytest.raises(ServiceError):
            order_pay(order=order)


class TestRefunds:
    def test_refunding_a_line_revokes_only_its_grants(self):
        a, b = factories.ProductFactory.create_batch(2)
        factories.DownloadFactory(product=a)
        factories.DownloadFactory(product=b)
        order = make_paid_order(a, b)
        line_a = order.lines.get(product=a)
        order_refund(order=order, line_ids=[line_a.pk])
        revoked = {g.line_id: g.revoked_at is not None for g in order.grants.all()}
        assert revoked == {line_a.pk: True, order.lines.get(product=b).pk: False}
        order.refresh_from_db()
        assert order.status == Order.Status.PAID

    def test_refunding_every_line_refunds_the_order_and_attached_files(self):
        a = factories.ProductFactory()
        factories.DownloadFactory(product=a)
        extra = factories.DownloadFactory(product=None)
        order = make_paid_order(a, downloads=[extra])
        assert order.grants.count() == 2
        order_refund(order=order, line_ids=[order.lines.get().pk])
        order.refresh_from_db()
        assert order.status == Order.Status.REFUNDED
        assert not order.grants.filter(revoked_at__isnull=True).exists()

    def test_refunding_the_order_revokes_all(self):
        a, b = factories.ProductFactory.create_batch(2)
        factories.DownloadFactory(product=a)
        factories.DownloadFactory(product=b)
        order = make_paid_order(a, b)
        order_refund(order=order)
        assert order.status == Order.Status.REFUNDED
        assert order.grants.filter(revoked_at__isnull=True).count() == 0
        assert order.lines.filter(refunded_at__isnull=True).count() == 0

    def test_unknown_line_is_refused_and_changes_nothing(self):
        a = factories.ProductFactory()
        factories.DownloadFactory(product=a)
        order = make_paid_order(a)
        other = factories.OrderLineFactory()
        with pytest.raises(ServiceError):
            order_refund(order=order, line_ids=[order.lines.get().pk, other.pk])
        assert order.grants.filter(revoked_at__isnull=True).count() == 1

    def test_pending_order_cannot_be_refunded(self):
        order = factories.OrderFactory()
        with pytest.raises(ServiceError):
            order_refund(order=order)


class TestAttach:
    def test_attaching_to_a_paid_order_issues_the_grant_at_once(self):
        order = make_paid_order(factories.ProductFactory())
        extra = factories.DownloadFactory(product=None)
        order_attach_downloads(order=order, downloads=[extra])
        grant = order.grants.get()
        assert grant.download == extra and grant.line is None

    def test_attaching_to_a_pending_order_waits_for_payment(self):
        product = factories.ProductFactory()
        order = order_create(email="a@example.com", lines=[LineInput(product=product)])
        order_attach_downloads(order=order, downloads=[factories.DownloadFactory(product=None)])
        assert order.grants.count() == 0
        order_pay(order=order, send_email=False)
        assert order.grants.count() == 1

    def test_detaching_revokes_the_grant_and_keeps_the_log(self):
        order = make_paid_order(factories.ProductFactory())
        extra = factories.DownloadFactory(product=None)
        order_attach_downloads(order=order, downloads=[extra])
        grant = order.grants.get()
        grant_consume(grant=grant)
        order_detach_downloads(order=order, downloads=[extra])
        grant.refresh_from_db()
        assert grant.revoked_at is not None
        assert not order.downloads.exists()
        assert grant.events.count() == 1


class TestConsume:
    def test_consume_counts_and_logs_until_the_limit(self):
        grant = factories.GrantFactory(download_limit=2)
        outcomes = [grant_consume(grant=grant, ip="203.0.113.1").outcome for _ in range(3)]
        assert outcomes == ["served", "served", "limit_reached"]
        grant.refresh_from_db()
        assert grant.download_count == 2
        assert (
            list(grant.events.order_by("at", "outcome").values_list("outcome", flat=True)).count(
                "served"
            )
            == 2
        )

    def test_consume_refuses_after_expiry(self):
        grant = factories.GrantFactory(expires_at=timezone.now() - timedelta(seconds=1))
        result = grant_consume(grant=grant)
        assert not result.allowed and result.outcome == DownloadEvent.Outcome.EXPIRED
        grant.refresh_from_db()
        assert grant.download_count == 0

    def test_consume_refuses_after_revocation(self):
        grant = factories.GrantFactory()
        grants_revoke(grants=DownloadGrant.objects.filter(pk=grant.pk))
        grant.refresh_from_db()
        assert grant_consume(grant=grant).outcome == DownloadEvent.Outcome.REVOKED
        grant.refresh_from_db()
        assert grant.download_count == 0

    def test_a_stale_row_that_lost_the_race_reads_as_limit_reached(self):
        grant = factories.GrantFactory(download_limit=1)
        DownloadGrant.objects.filter(pk=grant.pk).update(download_count=1)
        # `grant` in memory still says 0 used: the UPDATE decides, not Python.
        assert grant_consume(grant=grant).outcome == "limit_reached"

    def test_the_database_decides_even_when_the_loaded_row_says_revoked_is_false(self):
        grant = factories.GrantFactory()
        DownloadGrant.objects.filter(pk=grant.pk).update(revoked_at=timezone.now())
        assert not grant_consume(grant=grant).allowed

    def test_unlimited_grants_always_serve(self):
        grant = factories.GrantFactory(download_limit=None)
        assert all(grant_consume(grant=grant).allowed for _ in range(25))

    def test_a_served_download_logs_who_and_when_with_the_count_it_left(self):
        grant = factories.GrantFactory(download_limit=3, download_count=1)
        result = grant_consume(grant=grant, ip="2001:db8::7", user_agent="curl\x00/8")
        assert result.allowed
        assert grant.download_count == 2  # the count this download left, read back
        event = grant.events.get()
        grant.refresh_from_db()
        assert (event.outcome, event.ip, event.user_agent) == ("served", "2001:db8::7", "curl/8")
        assert event.at == grant.last_downloaded_at == grant.updated_at
        assert grant.download_count == 2

    def test_a_refusal_is_logged_with_its_reason_and_takes_nothing(self):
        grant = factories.GrantFactory(expires_at=timezone.now() - timedelta(seconds=1))
        grant_consume(grant=grant, ip="203.0.113.5", user_agent="x" * 600)
        event = grant.events.get()
        assert (event.outcome, event.ip, len(event.user_agent)) == ("expired", "203.0.113.5", 512)
        grant.refresh_from_db()
        assert (grant.download_count, grant.last_downloaded_at) == (0, None)


GRANT_STATES = {
    "available": {},
    "unlimited": {"download_limit": None, "download_count": 40},
    "one left": {"download_limit": 3, "download_count": 2},
    "used up": {"download_limit": 3, "download_count": 3},
    "over a lowered limit": {"download_limit": 2, "download_count": 3},
    "revoked": {"revoked_at": timedelta(seconds=-5)},
    "expired": {"expires_at": timedelta(seconds=-1)},
    "expires later": {"expires_at": timedelta(hours=1)},
    "revoked and used up": {"revoked_at": timedelta(0), "download_limit": 1, "download_count": 1},
}


@pytest.mark.postgres
@pytest.mark.parametrize("state", GRANT_STATES)
def test_postgresqls_single_statement_follows_the_same_rule_as_available_q(postgres_only, state):
    """`_CONSUME_SQL` writes `DownloadGrant.available_q()` out by hand: both must agree."""
    now = timezone.now()
    fields = {
        key: now + value if isinstance(value, timedelta) else value
        for key, value in GRANT_STATES[state].items()
    }
    grant = factories.GrantFactory(**fields)
    rule_says = DownloadGrant.objects.filter(DownloadGrant.available_q(now), pk=grant.pk).exists()
    before = DownloadGrant.objects.get(pk=grant.pk).download_count
    assert grant_consume(grant=grant).allowed is rule_says
    after = DownloadGrant.objects.get(pk=grant.pk).download_count
    assert after == before + (1 if rule_says else 0)
    assert list(grant.events.values_list("outcome", flat=True)) == [
        "served" if rule_says else grant.refusal(now) or "limit_reached"
    ]


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


class TestDeletion:
    def test_deleting_a_product_with_orders_is_refused(self):
        product = factories.ProductFactory()
        factories.DownloadFactory(product=product)
        make_paid_order(product)
        with pytest.raises(ServiceError) as exc:
            product_delete(product=product)
        assert exc.value.code == "product.in_use"
        assert Download.objects.filter(product=product).exists()

    def test_deleting_an_unsold_product_takes_its_downloads(self):
        product = factories.ProductFactory()
        factories.DownloadFactory(product=product)
        product_delete(product=product)
        assert not Download.objects.exists()

    def test_media_used_by_a_download_cannot_be_deleted(self):
        download = factories.DownloadFactory()
        with pytest.raises(ServiceError):
            media_delete(media=download.media)


class TestBounds:
    """The bounds hold in the services, so the API and the admin both get them."""

    def test_product_expiry_days_beyond_a_century_are_refused(self):
        with pytest.raises(ServiceError) as exc:
            product_create(name="Book", download_expiry_days=MAX_EXPIRY_DAYS + 1)
        assert exc.value.attribute == "download_expiry_days"
        product = product_create(name="Book", download_expiry_days=30)
        with pytest.raises(ServiceError):
            product_update(product=product, download_expiry_days=-1)

    def test_extending_by_more_than_a_century_is_refused(self):
        grant = factories.GrantFactory(expires_at=timezone.now())
        with pytest.raises(ServiceError) as exc:
            grants_extend(
                grants=DownloadGrant.objects.filter(pk=grant.pk),
                days=MAX_EXPIRY_DAYS + 1,
            )
        assert exc.value.attribute == "days"

    def test_expiry_dates_past_the_representable_range_are_refused(self):
        grant = factories.GrantFactory()
        with pytest.raises(ServiceError):
            grant_update(grant=grant, expires_at=LATEST_EXPIRY)
        with pytest.raises(ServiceError):
            grant_create(
                order=grant.order,
                download=factories.DownloadFactory(product=None),
                expires_at=LATEST_EXPIRY,
            )

    def test_extending_past_the_representable_range_changes_no_grant(self):
        near_end = factories.GrantFactory(expires_at=LATEST_EXPIRY - timedelta(days=3))
        ordinary = factories.GrantFactory(expires_at=timezone.now())
        both = DownloadGrant.objects.filter(pk__in=[near_end.pk, ordinary.pk])
        with pytest.raises(ServiceError) as exc:
            grants_extend(grants=both, days=5)
        assert exc.value.attribute == "days"
        ordinary_before = ordinary.expires_at
        ordinary.refresh_from_db()
        assert ordinary.expires_at == ordinary_before
        with pytest.raises(ServiceError):
            grant_extend(grant=near_end, days=5)
