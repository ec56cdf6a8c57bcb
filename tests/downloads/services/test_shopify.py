"""Shopify (services.shopify): verifying a delivery, and what each topic does to the store.

Events go through the real inbox (channel_event_receive, then channel_event_process as the
worker runs it) with payloads written from Shopify's documented webhook fields
(tests/fixtures/shopify/). Signatures are made here with hmac and base64, as Shopify does.
"""

import base64
import copy
import hashlib
import hmac
import itertools
import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.core import mail
from django.db import connections

from downloads.models import ChannelEvent, DownloadGrant, Order
from downloads.services.channels import (
    channel_event_process,
    channel_event_process_again,
    channel_event_receive,
)
from downloads.services.shopify import line_items_map, webhook_verify
from tests import factories

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "shopify"
SECRET = "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"
GUIDE_LINE, COURSE_LINE = "866550311766439020", "141249953214522974"
_ids = itertools.count(1)


def payload(name: str, **changes) -> dict:
    """A fixture payload (orders-paid, orders-create, orders-cancelled, refunds-create)."""
    data = json.loads((FIXTURES / f"{name}.json").read_text())
    data.update(changes)
    return data


def deliver(topic: str, data: dict, event_id: str | None = None) -> ChannelEvent:
    """Receive one delivery into the inbox and process it, as the worker would."""
    event, _ = channel_event_receive(
        channel="shopify",
        event_id=event_id or f"wh-{next(_ids)}",
        event_type=topic,
        payload=data,
    )
    return channel_event_process(event_id=event.pk)


def shopify_order() -> Order:
    return Order.objects.get(channel="shopify", external_id="450789469")


def grants_of(order: Order, product) -> list[DownloadGrant]:
    return list(order.grants.filter(line__product=product))


@pytest.fixture
def catalogue():
    """The products the fixture orders buy, mapped by Shopify's ids: the guide (a PDF
    variant, one file) and the video course (two files)."""
    guide = factories.ProductFactory(name="The Field Guide", sku="GUIDE", external_id=632910392)
    pdf = factories.VariantFactory(
        product=guide, name="PDF", sku="GUIDE-PDF", external_id=808950810
    )
    course = factories.ProductFactory(name="Video Course", sku="COURSE", external_id=921728736)
    factories.DownloadFactory(product=guide)
    factories.DownloadFactory(product=course)
    factories.DownloadFactory(product=course)
    return SimpleNamespace(guide=guide, pdf=pdf, course=course)


# --- Verifying --------------------------------------------------------------------------------


def shopify_hmac(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


class TestVerify:
    BODY = b'{"id": 450789469, "email": "jon@example.com"}'

    def test_shopifys_hmac_of_the_raw_body_verifies_and_nothing_else_does(self, settings):
        settings.SHOPIFY_WEBHOOK_SECRET = SECRET
        good = shopify_hmac(self.BODY)
        assert webhook_verify(body=self.BODY, hmac_header=good, shop_domain=None)
        assert not webhook_verify(body=self.BODY + b" ", hmac_header=good, shop_domain=None)
        assert not webhook_verify(
            body=self.BODY, hmac_header=shopify_hmac(self.BODY, "other"), shop_domain=None
        )
        assert not webhook_verify(body=self.BODY, hmac_header=None, shop_domain=None)
        assert not webhook_verify(body=self.BODY, hmac_header="", shop_domain=None)
        assert not webhook_verify(body=self.BODY, hmac_header="é" + good, shop_domain=None)

    def test_nothing_verifies_without_a_secret(self, settings):
        settings.SHOPIFY_WEBHOOK_SECRET = ""
        hmac_header = shopify_hmac(self.BODY, "")
        assert not webhook_verify(body=self.BODY, hmac_header=hmac_header, shop_domain=None)

    def test_with_a_shop_domain_set_only_that_shop_verifies(self, settings):
        settings.SHOPIFY_WEBHOOK_SECRET = SECRET
        settings.SHOPIFY_SHOP_DOMAIN = "demo-press.myshopify.com"
        good = shopify_hmac(self.BODY)
        assert webhook_verify(
            body=self.BODY, hmac_header=good, shop_domain="Demo-Press.myshopify.com"
        )
        assert not webhook_verify(
            body=self.BODY, hmac_header=good, shop_domain="other.myshopify.com"
        )
        assert not webhook_verify(body=self.BODY, hmac_header=good, shop_domain=None)


# --- Line items -------------------------------------------------------------------------------


class TestLineItemsMap:
    def test_ids_map_first_then_the_variant_sku_then_the_product_sku(self):
        by_id = factories.ProductFactory(sku="X-1", external_id=111)
        by_variant_sku = factories.VariantFactory(sku="GUIDE-PDF")
        by_product_sku = factories.ProductFactory(sku="COURSE-VIDEO")
        factories.ProductFactory(sku="X-1")  # the id wins over this SKU
        items = [
            {"id": 1, "product_id": 111, "variant_id": None, "sku": "X-1", "quantity": 1,
             "price": "1.00"},
            {"id": 2, "product_id": 999, "variant_id": 998, "sku": "GUIDE-PDF", "quantity": 1,
             "price": "2.00"},
            {"id": 3, "product_id": 997, "variant_id": 996, "sku": "COURSE-VIDEO",
             "quantity": 3, "price": "3.00"},
            {"id": 4, "product_id": 995, "variant_id": 994, "sku": "T-SHIRT", "quantity": 1,
             "price": "4.00"},
        ]  # fmt: skip
        lines, unmapped = line_items_map(line_items=items, currency="USD")
        assert [(line.product, line.variant, line.external_id) for line in lines] == [
            (by_id, None, "1"),
            (by_variant_sku.product, by_variant_sku, "2"),
            (by_product_sku, None, "3"),
        ]
        assert [line.quantity for line in lines] == [1, 1, 3]
        assert [item["id"] for item in unmapped] == [4]

    def test_a_variant_of_another_product_than_the_line_items_product_is_not_taken(self):
        product = factories.ProductFactory(external_id=632910392)
        stranger = factories.VariantFactory(external_id=808950810)
        (line,), _ = line_items_map(
            line_items=[{"id": 9, "product_id": 632910392, "variant_id": 808950810,
                         "quantity": 1, "price": "5.00"}],
            currency="USD",
        )  # fmt: skip
        assert (line.product, line.variant) == (product, None)
        assert stranger.product != product

    def test_the_queries_do_not_grow_with_the_line_items(self, django_assert_max_num_queries):
        items = [
            {"id": n, "product_id": 500 + n, "variant_id": 900 + n, "sku": f"S-{n}",
             "quantity": 1, "price": "1.00"}
            for n in range(30)
        ]  # fmt: skip
        for n in range(30):
            factories.ProductFactory(external_id=500 + n)
        with django_assert_max_num_queries(2):
            lines, unmapped = line_items_map(line_items=items, currency="USD")
        assert (len(lines), unmapped) == (30, [])


# --- Orders -----------------------------------------------------------------------------------


class TestOrders:
    def test_orders_create_makes_a_pending_order_with_shopifys_number_token_and_amounts(
        self, catalogue
    ):
        event = deliver("orders/create", payload("orders-create"))
        order = shopify_order()
        assert (event.status, event.error, event.order_id) == ("processed", "", order.pk)
        assert (order.status, order.number, order.access_token) == (
            "pending",
            1042,
            "b1946ac92492d2347c6235b4d2611184",
        )
        assert (order.email, order.currency, order.payment_method) == (
            "jon@example.com",
            "USD",
            "shopify_payments",
        )
        assert order.placed_at == datetime(2026, 11, 30, 15, 12, tzinfo=UTC)
        lines = list(order.lines.order_by("position"))
        assert [(line.product, line.variant, line.external_id) for line in lines] == [
            (catalogue.guide, catalogue.pdf, GUIDE_LINE),
            (catalogue.course, None, COURSE_LINE),
        ]
        # 49.00 less the 4.90 discount; 2 × 25.00; tax 9.41: Shopify's own figures.
        assert [(line.price, line.quantity, line.total) for line in lines] == [
            (4900, 1, 4410),
            (2500, 2, 5000),
        ]
        assert (order.subtotal, order.tax, order.total) == (9410, 941, 10351)
        assert order.grants.count() == 0

    def test_orders_create_already_paid_makes_a_paid_order(self, catalogue):
        deliver("orders/create", payload("orders-create", financial_status="paid"))
        order = shopify_order()
        assert order.status == "paid"
        assert order.grants.count() == 3

    def test_orders_paid_pays_the_pending_order_grants_its_files_and_emails_the_buyer(
        self, catalogue, django_capture_on_commit_callbacks
    ):
        deliver("orders/create", payload("orders-create"))
        with django_capture_on_commit_callbacks(execute=True):
            event = deliver("orders/paid", payload("orders-paid"))
        order = shopify_order()
        assert (event.status, event.order_id) == ("processed", order.pk)
        assert (order.status, order.paid_at is not None) == ("paid", True)
        assert len(grants_of(order, catalogue.guide)) == 1
        assert len(grants_of(order, catalogue.course)) == 2
        assert [message.to for message in mail.outbox] == [["jon@example.com"]]
        assert order.access_token in mail.outbox[0].body

    def test_orders_paid_before_orders_create_makes_one_paid_order(self, catalogue):
        deliver("orders/paid", payload("orders-paid"))
        create = deliver("orders/create", payload("orders-create"))
        order = shopify_order()
        assert Order.objects.count() == 1
        assert (order.status, create.status, create.order_id) == ("paid", "processed", order.pk)
        assert order.grants.count() == 3

    def test_processing_an_event_again_changes_nothing(self, catalogue):
        event = deliver("orders/paid", payload("orders-paid"))
        grants = set(DownloadGrant.objects.values_list("pk", flat=True))
        again = channel_event_process(event_id=event.pk, again=True)
        assert (again.status, again.attempts) == ("processed", 2)
        assert Order.objects.count() == 1 and shopify_order().lines.count() == 2
        assert set(DownloadGrant.objects.values_list("pk", flat=True)) == grants

    def test_the_email_comes_from_contact_email_or_the_customer_when_email_is_empty(
        self, catalogue
    ):
        deliver("orders/paid", payload("orders-paid", email="", contact_email=None))
        assert shopify_order().email == "jon@example.com"  # customer.email

    def test_amounts_in_yen_have_no_decimals(self, catalogue):
        data = payload("orders-paid", currency="JPY", total_tax="941")
        data["line_items"][0].update(price="4900")
        data["line_items"][0]["discount_allocations"][0]["amount"] = "490.00"
        data["line_items"][1].update(price="2500")
        deliver("orders/paid", data)
        order = shopify_order()
        lines = list(order.lines.order_by("position"))
        assert order.currency == "JPY"
        assert [(line.price, line.total) for line in lines] == [(4900, 4410), (2500, 5000)]
        assert (order.subtotal, order.tax, order.total) == (9410, 941, 10351)

    def test_an_amount_finer_than_the_currency_fails_the_event_with_the_reason(self, catalogue):
        data = payload("orders-paid", currency="JPY")
        data["line_items"][0]["price"] = "4900.50"
        event = deliver("orders/paid", data)
        assert event.status == "failed"
        assert event.error.startswith("channel_event.invalid: ")
        assert Order.objects.count() == 0

    def test_an_unmapped_line_item_keeps_the_event_unmatched_until_processed_again(
        self, catalogue, django_capture_on_commit_callbacks
    ):
        catalogue.course.external_id = None
        catalogue.course.save()
        event = deliver("orders/paid", payload("orders-paid"))
        order = shopify_order()
        assert event.status == "unmatched" and event.order_id == order.pk
        assert COURSE_LINE in event.error and "'COURSE-VIDEO'" in event.error
        assert [line.external_id for line in order.lines.all()] == [GUIDE_LINE]
        assert (order.status, order.total) == ("paid", 4410 + 941)
        assert order.grants.count() == 1

        catalogue.course.external_id = 921728736  # the merchant maps the product
        catalogue.course.save()
        event = channel_event_process_again(event=event)
        order.refresh_from_db()
        assert (event.status, event.error) == ("processed", "")
        assert sorted(order.lines.values_list("external_id", flat=True)) == sorted(
            [GUIDE_LINE, COURSE_LINE]
        )
        assert len(grants_of(order, catalogue.course)) == 2
        assert (order.subtotal, order.total) == (9410, 10351)

    def test_when_no_line_item_maps_there_is_no_order_and_the_event_is_unmatched(self):
        event = deliver("orders/paid", payload("orders-paid"))
        assert event.status == "unmatched" and event.order_id is None
        assert GUIDE_LINE in event.error and COURSE_LINE in event.error
        assert Order.objects.count() == 0

    def test_a_payload_without_an_order_id_fails_with_the_reason(self, catalogue):
        data = payload("orders-paid")
        del data["id"]
        event = deliver("orders/paid", data)
        assert event.status == "failed" and "'id'" in event.error
        assert Order.objects.count() == 0

    def test_a_line_item_without_an_id_fails_the_event_since_it_could_not_be_added_once(
        self, catalogue
    ):
        data = payload("orders-paid")
        del data["line_items"][1]["id"]
        event = deliver("orders/paid", data)
        assert event.status == "failed" and "line_items[1] has no id" in event.error
        assert Order.objects.count() == 0

    def test_topics_the_store_does_not_act_on_are_kept_and_ignored(self, catalogue):
        event = deliver("orders/fulfilled", payload("orders-paid"))
        assert (event.status, ChannelEvent.objects.count()) == ("ignored", 1)
        assert "orders/fulfilled" in event.error
        assert Order.objects.count() == 0


class TestCancelled:
    def test_a_pending_order_is_cancelled(self, catalogue):
        deliver("orders/create", payload("orders-create"))
        event = deliver("orders/cancelled", payload("orders-cancelled", financial_status="voided"))
        assert (event.status, shopify_order().status) == ("processed", "cancelled")

    def test_a_paid_and_refunded_order_is_refunded_whole(self, catalogue):
        deliver("orders/paid", payload("orders-paid"))
        deliver("orders/cancelled", payload("orders-cancelled"))
        order = shopify_order()
        assert (order.status, order.refunded_total) == ("refunded", order.total)
        assert not order.grants.filter(revoked_at__isnull=True).exists()

    def test_a_paid_order_cancelled_without_a_refund_loses_its_access_and_keeps_its_money(
        self, catalogue
    ):
        deliver("orders/paid", payload("orders-paid"))
        deliver("orders/cancelled", payload("orders-cancelled", financial_status="paid"))
        order = shopify_order()
        assert (order.status, order.refunded_total) == ("refunded", 0)
        assert order.grants.count() == 3
        assert not order.grants.filter(revoked_at__isnull=True).exists()

    def test_an_order_cancelled_before_it_arrived_is_kept_cancelled_and_never_paid(self, catalogue):
        cancelled = deliver("orders/cancelled", payload("orders-cancelled"))
        paid = deliver("orders/paid", payload("orders-paid"))
        order = shopify_order()
        assert (cancelled.status, paid.status, order.status) == (
            "processed",
            "processed",
            "cancelled",
        )
        assert order.grants.count() == 0


class TestRefunds:
    def test_a_refund_revokes_only_its_lines_grants_and_adds_its_amount(self, catalogue):
        deliver("orders/paid", payload("orders-paid"))
        event = deliver("refunds/create", payload("refunds-create"))
        order = shopify_order()
        assert (event.status, event.error, event.order_id) == ("processed", "", order.pk)
        assert all(grant.revoked_at for grant in grants_of(order, catalogue.course))
        assert [grant.revoked_at for grant in grants_of(order, catalogue.guide)] == [None]
        assert order.lines.get(external_id=COURSE_LINE).refunded_at is not None
        assert order.lines.get(external_id=GUIDE_LINE).refunded_at is None
        assert (order.status, order.refunded_total) == ("paid", 5500)

    def test_a_refund_of_some_units_revokes_nothing_until_all_units_are_refunded(self, catalogue):
        deliver("orders/paid", payload("orders-paid"))
        one = payload("refunds-create", id=1)
        one["refund_line_items"][0]["quantity"] = 1
        one["transactions"][0]["amount"] = "27.50"
        deliver("refunds/create", one)
        order = shopify_order()
        course = order.lines.get(external_id=COURSE_LINE)
        assert (course.refunded_quantity, course.refunded_at) == (1, None)
        assert not any(grant.revoked_at for grant in grants_of(order, catalogue.course))
        assert order.refunded_total == 2750
        deliver("refunds/create", {**one, "id": 2})
        order.refresh_from_db()
        assert all(grant.revoked_at for grant in grants_of(order, catalogue.course))
        assert order.refunded_total == 5500

    def test_a_refund_is_applied_once_however_often_it_is_processed_or_delivered(self, catalogue):
        deliver("orders/paid", payload("orders-paid"))
        one = payload("refunds-create")
        one["refund_line_items"][0]["quantity"] = 1
        event = deliver("refunds/create", one)
        channel_event_process(event_id=event.pk, again=True)
        redelivered = deliver("refunds/create", one, event_id="another-subscription")
        order = shopify_order()
        assert redelivered.status == "processed"
        assert order.lines.get(external_id=COURSE_LINE).refunded_quantity == 1
        assert order.refunded_total == 5500

    def test_only_successful_refund_transactions_in_the_orders_currency_count(self, catalogue):
        deliver("orders/paid", payload("orders-paid"))
        data = payload("refunds-create")
        model = data["transactions"][0]
        data["transactions"] = [
            {**model, "amount": "10.00"},
            {**model, "amount": "20.00", "status": "failure"},
            {**model, "amount": "40.00", "kind": "sale"},
            {**model, "amount": "80.00", "currency": "EUR"},
        ]
        event = deliver("refunds/create", data)
        assert shopify_order().refunded_total == 1000
        assert "80.00 EUR" in event.error

    def test_a_refund_of_a_pending_order_waits_unmatched(self, catalogue):
        deliver("orders/create", payload("orders-create"))
        event = deliver("refunds/create", payload("refunds-create"))
        assert (event.status, shopify_order().refunded_total) == ("unmatched", 0)
        assert "not paid" in event.error

    def test_a_refunded_line_item_that_was_never_mapped_is_not_added_later(self, catalogue):
        catalogue.course.external_id = None
        catalogue.course.save()
        paid = deliver("orders/paid", payload("orders-paid"))
        refund = deliver("refunds/create", payload("refunds-create"))
        assert refund.status == "processed" and COURSE_LINE in refund.error
        catalogue.course.external_id = 921728736
        catalogue.course.save()
        channel_event_process_again(event=paid)
        order = shopify_order()
        assert [line.external_id for line in order.lines.all()] == [GUIDE_LINE]
        assert not grants_of(order, catalogue.course)


@pytest.mark.django_db(transaction=True)
def test_a_refund_before_its_order_waits_and_is_applied_once_the_order_is_paid(
    catalogue, run_worker
):
    receive = channel_event_receive
    refund, _ = receive(
        channel="shopify", event_id="r", event_type="refunds/create",
        payload=payload("refunds-create"),
    )  # fmt: skip
    run_worker()
    refund.refresh_from_db()
    assert refund.status == "unmatched" and "has not arrived" in refund.error

    receive(
        channel="shopify", event_id="c", event_type="orders/create",
        payload=payload("orders-create"),
    )  # fmt: skip
    run_worker()
    refund.refresh_from_db()
    assert refund.status == "unmatched" and "not paid" in refund.error

    receive(
        channel="shopify", event_id="p", event_type="orders/paid", payload=payload("orders-paid")
    )
    run_worker()
    refund.refresh_from_db()
    order = shopify_order()
    assert (refund.status, refund.order_id) == ("processed", order.pk)
    assert order.refunded_total == 5500
    assert all(grant.revoked_at for grant in grants_of(order, catalogue.course))
    assert [grant.revoked_at for grant in grants_of(order, catalogue.guide)] == [None]


@pytest.mark.django_db(transaction=True)
def test_a_refund_waiting_for_payment_is_ignored_once_the_order_is_cancelled(catalogue, run_worker):
    for event_id, topic, name in (
        ("c", "orders/create", "orders-create"),
        ("r", "refunds/create", "refunds-create"),
    ):
        channel_event_receive(
            channel="shopify", event_id=event_id, event_type=topic, payload=payload(name)
        )
    run_worker()
    assert ChannelEvent.objects.get(event_id="r").status == "unmatched"
    channel_event_receive(
        channel="shopify", event_id="x", event_type="orders/cancelled",
        payload=payload("orders-cancelled", financial_status="voided"),
    )  # fmt: skip
    run_worker()
    refund = ChannelEvent.objects.get(event_id="r")
    assert (refund.status, refund.error) == ("ignored", "The order is cancelled.")
    assert (shopify_order().status, shopify_order().refunded_total) == ("cancelled", 0)


# --- Concurrency (PostgreSQL) -----------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_orders_create_and_orders_paid_processed_at_once_make_one_paid_order(
    postgres_only, catalogue
):
    rounds = 10
    errors: list[Exception] = []
    for n in range(rounds):
        events = []
        for topic, name in (("orders/create", "orders-create"), ("orders/paid", "orders-paid")):
            data = copy.deepcopy(payload(name))
            data.update(id=7_000 + n, order_number=2_000 + n, token=f"{n:032x}")
            for position, item in enumerate(data["line_items"]):
                item["id"] = 10 * n + position + 1
            event, _ = channel_event_receive(
                channel="shopify", event_id=f"{topic}-{n}", event_type=topic, payload=data
            )
            events.append(event)
        barrier = threading.Barrier(2)

        def process(event, barrier=barrier):
            try:
                barrier.wait(timeout=30)
                channel_event_process(event_id=event.pk)
            except Exception as exc:  # collected and asserted below
                errors.append(exc)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=process, args=(event,)) for event in events]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

    assert errors == []
    assert Order.objects.filter(channel="shopify").count() == rounds
    assert set(Order.objects.values_list("status", flat=True)) == {"paid"}
    assert set(ChannelEvent.objects.values_list("status", flat=True)) == {"processed"}
    for order in Order.objects.all():
        assert order.lines.count() == 2 and order.grants.count() == 3
