"""Orders (services.orders): numbers, creation, payment, refunds, attached files."""

import pytest

from downloads.errors import ServiceError
from downloads.models import Order
from downloads.services.consume import grant_consume
from downloads.services.orders import (
    LineInput,
    order_attach_downloads,
    order_cancel,
    order_create,
    order_detach_downloads,
    order_dispute,
    order_intake,
    order_lines_add,
    order_link_external,
    order_pay,
    order_refund,
)
from tests import factories
from tests.concurrency import at_once

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


class TestAmounts:
    def test_lines_cost_the_catalogue_price_and_the_total_adds_tax(self, settings):
        settings.DOWNLOADS_CURRENCY = "EUR"
        product = factories.ProductFactory(price=1000)
        variant = factories.VariantFactory(product=product, price=2500)
        inherits = factories.VariantFactory(product=product, price=None)
        order = order_create(
            email="a@example.com",
            tax=190,
            lines=[
                LineInput(product=product, quantity=2),
                LineInput(product=product, variant=variant),
                LineInput(product=product, variant=inherits),
            ],
        )
        assert [(line.price, line.total) for line in order.lines.all()] == [
            (1000, 2000),
            (2500, 2500),
            (1000, 1000),
        ]
        assert (order.currency, order.subtotal, order.tax, order.total) == ("EUR", 5500, 190, 5690)

    def test_a_named_price_and_a_discount_override_the_catalogue(self):
        product = factories.ProductFactory(price=1000)
        order = order_create(
            email="a@example.com",
            currency="jpy",
            lines=[LineInput(product=product, price=4900, quantity=3, discount=700)],
        )
        line = order.lines.get()
        assert (line.price, line.total) == (4900, 14000)
        assert (order.currency, order.total) == ("JPY", 14000)

    @pytest.mark.parametrize(
        ("field", "kwargs"),
        [
            ("currency", {"currency": "XYZ"}),
            ("tax", {"tax": -1}),
            ("tax", {"tax": 2**60}),
            ("lines", {"price": -5}),
            ("lines", {"price": 1.5}),
        ],
    )
    def test_bad_amounts_and_currencies_are_refused_and_nothing_is_written(self, field, kwargs):
        product = factories.ProductFactory()
        line_kwargs = {k: v for k, v in kwargs.items() if k == "price"}
        order_kwargs = {k: v for k, v in kwargs.items() if k != "price"}
        with pytest.raises(ServiceError) as exc:
            order_create(
                email="a@example.com",
                lines=[LineInput(product=product, **line_kwargs)],
                **order_kwargs,
            )
        assert (exc.value.code, exc.value.attribute) == ("order.invalid", field)
        assert Order.objects.count() == 0


class TestOrderCurrency:
    def test_an_order_in_another_currency_names_each_lines_price(self, settings):
        settings.DOWNLOADS_CURRENCY = "USD"
        product = factories.ProductFactory(price=1900)
        with pytest.raises(ServiceError) as exc:
            order_create(email="a@example.com", currency="EUR", lines=[LineInput(product=product)])
        assert (exc.value.code, exc.value.reason, exc.value.attribute) == (
            "order.invalid",
            "required",
            "lines",
        )
        order = order_create(
            email="a@example.com", currency="EUR", lines=[LineInput(product=product, price=1700)]
        )
        assert (order.currency, order.total) == ("EUR", 1700)


class TestIntake:
    def test_one_order_per_channel_and_external_id(self):
        product = factories.ProductFactory()
        first, created = order_intake(
            channel="api",
            external_id="ext-1",
            email="a@example.com",
            lines=[LineInput(product=product)],
        )
        again, created_again = order_intake(
            channel="api",
            external_id="ext-1",
            email="other@example.com",
            lines=[LineInput(product=product, quantity=5)],
        )
        assert (created, created_again) == (True, False)
        assert again.pk == first.pk and again.email == "a@example.com"
        other_channel, created = order_intake(
            channel="shopify",
            external_id="ext-1",
            number=1001,
            email="a@example.com",
            lines=[LineInput(product=product)],
        )
        assert created and other_channel.pk != first.pk
        assert Order.objects.count() == 2

    def test_shopify_numbers_are_apart_from_the_stores_own(self):
        product = factories.ProductFactory()
        own = order_create(email="a@example.com", lines=[LineInput(product=product)])
        shopify = order_create(
            email="a@example.com",
            channel="shopify",
            number=own.number,
            access_token="f" * 32,
            lines=[LineInput(product=product)],
        )
        assert shopify.number == own.number and shopify.access_token == "f" * 32
        assert order_create(email="a@example.com", lines=[LineInput(product=product)]).number == (
            own.number + 1
        )
        with pytest.raises(ServiceError) as exc:
            order_create(
                email="a@example.com",
                channel="shopify",
                number=own.number,
                lines=[LineInput(product=product)],
            )
        assert exc.value.code == "order.number_taken"

    def test_a_pending_checkout_order_may_wait_for_its_email_but_is_not_paid_without_one(self):
        product = factories.ProductFactory()
        order = order_create(
            email="", channel="stripe", allow_blank_email=True, lines=[LineInput(product=product)]
        )
        with pytest.raises(ServiceError) as exc:
            order_pay(order=order, send_email=False)
        assert (exc.value.code, exc.value.attribute) == ("order.invalid", "email")
        order_pay(
            order=order,
            send_email=False,
            email="Buyer@Example.com",
            tax=100,
            payment_method="card",
            payment_id="pi_123",
        )
        order.refresh_from_db()
        assert (order.status, order.email, order.tax, order.total) == (
            "paid",
            "buyer@example.com",
            100,
            product.price + 100,
        )
        assert (order.payment_method, order.payment_id) == ("card", "pi_123")

    def test_the_email_typed_at_payment_takes_the_order_and_its_account(self):
        first = factories.UserFactory(email="first@example.com")
        payer = factories.UserFactory(email="payer@example.com")
        order = order_create(
            email="first@example.com",
            channel="stripe",
            lines=[LineInput(product=factories.ProductFactory())],
        )
        assert order.customer == first
        order_pay(order=order, send_email=False, email="payer@example.com")
        order.refresh_from_db()
        assert (order.email, order.customer) == ("payer@example.com", payer)

    def test_an_external_id_is_linked_once_per_channel(self):
        product = factories.ProductFactory()
        a = order_create(
            email="a@example.com", channel="stripe", lines=[LineInput(product=product)]
        )
        b = order_create(
            email="b@example.com", channel="stripe", lines=[LineInput(product=product)]
        )
        order_link_external(order=a, external_id="cs_1")
        with pytest.raises(ServiceError) as exc:
            order_link_external(order=b, external_id="cs_1")
        assert exc.value.code == "order.exists"
        assert Order.objects.get(external_id="cs_1").pk == a.pk

    def test_lines_added_later_are_skipped_when_present_and_grant_their_files(self):
        first = factories.DownloadFactory().product
        second = factories.DownloadFactory().product
        order = order_create(
            email="a@example.com",
            status=Order.Status.PAID,
            send_email=False,
            tax=10,
            lines=[LineInput(product=first, external_id="li-1")],
        )
        added = order_lines_add(
            order=order,
            lines=[
                LineInput(product=first, external_id="li-1"),
                LineInput(product=second, external_id="li-2"),
            ],
        )
        assert [line.external_id for line in added] == ["li-2"]
        order.refresh_from_db()
        assert order.subtotal == first.price + second.price
        assert order.total == order.subtotal + 10
        assert order.grants.count() == 2
        assert (
            order_lines_add(order=order, lines=[LineInput(product=second, external_id="li-2")])
            == []
        )


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


class TestRefundAmounts:
    def test_a_whole_refund_records_the_total_with_tax(self):
        product = factories.DownloadFactory().product
        order = order_create(
            email="a@example.com",
            status=Order.Status.PAID,
            send_email=False,
            tax=99,
            lines=[LineInput(product=product)],
        )
        order_refund(order=order)
        assert (order.status, order.refunded_total) == ("refunded", order.total)

    def test_an_amount_alone_is_recorded_and_revokes_nothing(self, paid_order):
        order = paid_order()
        order_refund(order=order, amount=100)
        order_refund(order=order, amount=10**9)  # never past the total
        order.refresh_from_db()
        assert (order.status, order.refunded_total) == ("paid", order.total)
        assert not order.grants.filter(revoked_at__isnull=False).exists()

    def test_units_refund_a_line_once_all_of_them_are(self):
        one = factories.DownloadFactory().product
        two = factories.DownloadFactory().product
        order = order_create(
            email="a@example.com",
            status=Order.Status.PAID,
            send_email=False,
            lines=[LineInput(product=one, quantity=2), LineInput(product=two)],
        )
        line = order.lines.get(product=one)
        order_refund(order=order, quantities={line.pk: 1}, amount=one.price)
        line.refresh_from_db()
        assert (line.refunded_quantity, line.refunded_at) == (1, None)
        assert not order.grants.filter(revoked_at__isnull=False).exists()
        order_refund(order=order, quantities={line.pk: 5}, amount=one.price)
        line.refresh_from_db()
        assert line.refunded_quantity == 2 and line.refunded_at is not None
        revoked = order.grants.filter(revoked_at__isnull=False)
        assert list(revoked.values_list("line_id", flat=True)) == [line.pk]
        order.refresh_from_db()
        assert (order.status, order.refunded_total) == ("paid", 2 * one.price)

    def test_units_of_a_line_of_another_order_are_refused(self, paid_order):
        order, other = paid_order(), paid_order()
        with pytest.raises(ServiceError) as exc:
            order_refund(order=order, quantities={other.lines.get().pk: 1})
        assert exc.value.attribute == "quantities"


class TestDispute:
    def test_a_dispute_revokes_every_grant_and_flags_the_order_once(self, paid_order):
        order = paid_order()
        order_dispute(order=order)
        flagged = Order.objects.get(pk=order.pk).disputed_at
        assert flagged is not None
        assert not order.grants.filter(revoked_at__isnull=True).exists()
        order_dispute(order=order)
        assert Order.objects.get(pk=order.pk).disputed_at == flagged


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
    orders = at_once(
        20,
        lambda _: order_create(email="race@example.com", lines=[LineInput(product=product)]),
    )
    assert sorted(order.number for order in orders) == list(range(1001, 1021))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_intakes_of_one_external_id_make_one_order(postgres_only):
    product = factories.ProductFactory()
    results = at_once(
        20,
        lambda _: order_intake(
            channel="shopify",
            external_id="450789469",
            number=1001,
            email="race@example.com",
            lines=[LineInput(product=product)],
        ),
    )
    assert len({order.pk for order, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert Order.objects.count() == 1
