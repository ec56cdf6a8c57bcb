"""Orders (services.orders): numbers, creation, payment, refunds, attached files."""

import threading

import pytest
from django.db import connections

from downloads.errors import ServiceError
from downloads.models import Order
from downloads.services.consume import grant_consume
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


class TestOrderPay:
    def test_refunded_or_cancelled_orders_cannot_be_paid(self):
        product = factories.ProductFactory()
        order = order_create(email="a@example.com", lines=[LineInput(product=product)])
        order_cancel(order=order)
        with pytest.raises(ServiceError):
            order_pay(order=order)


class TestRefunds:
    def test_refunding_a_line_revokes_only_its_grants(self, paid_order):
        a, b = factories.ProductFactory.create_batch(2)
        factories.DownloadFactory(product=a)
        factories.DownloadFactory(product=b)
        order = paid_order(a, b)
        line_a = order.lines.get(product=a)
        order_refund(order=order, line_ids=[line_a.pk])
        revoked = {g.line_id: g.revoked_at is not None for g in order.grants.all()}
        assert revoked == {line_a.pk: True, order.lines.get(product=b).pk: False}
        order.refresh_from_db()
        assert order.status == Order.Status.PAID

    def test_refunding_every_line_refunds_the_order_and_attached_files(self, paid_order):
        a = factories.ProductFactory()
        factories.DownloadFactory(product=a)
        extra = factories.DownloadFactory(product=None)
        order = paid_order(a, downloads=[extra])
        assert order.grants.count() == 2
        order_refund(order=order, line_ids=[order.lines.get().pk])
        order.refresh_from_db()
        assert order.status == Order.Status.REFUNDED
        assert not order.grants.filter(revoked_at__isnull=True).exists()

    def test_refunding_the_order_revokes_all(self, paid_order):
        a, b = factories.ProductFactory.create_batch(2)
        factories.DownloadFactory(product=a)
        factories.DownloadFactory(product=b)
        order = paid_order(a, b)
        order_refund(order=order)
        assert order.status == Order.Status.REFUNDED
        assert order.grants.filter(revoked_at__isnull=True).count() == 0
        assert order.lines.filter(refunded_at__isnull=True).count() == 0

    def test_unknown_line_is_refused_and_changes_nothing(self, paid_order):
        a = factories.ProductFactory()
        factories.DownloadFactory(product=a)
        order = paid_order(a)
        other = factories.OrderLineFactory()
        with pytest.raises(ServiceError):
            order_refund(order=order, line_ids=[order.lines.get().pk, other.pk])
        assert order.grants.filter(revoked_at__isnull=True).count() == 1

    def test_pending_order_cannot_be_refunded(self):
        order = factories.OrderFactory()
        with pytest.raises(ServiceError):
            order_refund(order=order)


class TestAttach:
    def test_attaching_to_a_paid_order_issues_the_grant_at_once(self, paid_order):
        order = paid_order(factories.ProductFactory())
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

    def test_detaching_revokes_the_grant_and_keeps_the_log(self, paid_order):
        order = paid_order(factories.ProductFactory())
        extra = factories.DownloadFactory(product=None)
        order_attach_downloads(order=order, downloads=[extra])
        grant = order.grants.get()
        grant_consume(grant=grant)
        order_detach_downloads(order=order, downloads=[extra])
        grant.refresh_from_db()
        assert grant.revoked_at is not None
        assert not order.downloads.exists()
        assert grant.events.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_orders_get_distinct_sequential_numbers(postgres_only):
    product = factories.ProductFactory()
    barrier = threading.Barrier(20)
    numbers: list[int] = []
    errors: list[Exception] = []
    lock = threading.Lock()

    def place():
        try:
            barrier.wait(timeout=30)
            order = order_create(email="race@example.com", lines=[LineInput(product=product)])
            with lock:
                numbers.append(order.number)
        except Exception as exc:  # collected and asserted below
            with lock:
                errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=place) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sorted(numbers) == list(range(1001, 1021))
