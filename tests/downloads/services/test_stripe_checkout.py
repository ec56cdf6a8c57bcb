"""Stripe Checkout: the session the store asks Stripe for (through the real `stripe` library,
to the Stripe-shaped server on 127.0.0.1), what happens when Stripe is down, the webhook's
verification, and what each Stripe event does to the order through the channel inbox."""

import socket
import time

import pytest
from django.core import mail
from django_tasks_db.models import DBTaskResult

from downloads.errors import ServiceError
from downloads.models import ChannelEvent, DownloadGrant, Order
from downloads.services.channels import channel_event_process, channel_event_process_again
from downloads.services.orders import LineInput, order_create
from downloads.services.stripe_checkout import (
    checkout_item_get,
    checkout_start,
    event_process,
    stripe_event_receive,
)
from tests import factories
from tests import stripe_server as stripe

pytestmark = pytest.mark.django_db


def start(item_id, email=""):
    return checkout_start(item=checkout_item_get(item_id=item_id), email=email)


@pytest.fixture
def sold(stripe_api):
    """A product with one file, put through Checkout: the pending order and its session."""
    download = factories.DownloadFactory(product=factories.ProductFactory(price=2500))
    begun = start(download.product.pk)
    session = stripe_api.sessions[begun.order.external_id]
    return begun.order, session


@pytest.fixture
def deliver(stripe_api, django_capture_on_commit_callbacks):
    """deliver(event) receives a signed event as the webhook does and processes it as the
    worker does (after-commit work, such as the order email, runs); returns the event row."""

    def run(evt):
        body = stripe.encode(evt)
        stored, _created = stripe_event_receive(
            payload=body, signature=stripe.signature_header(body, stripe_api.webhook_secret)
        )
        with django_capture_on_commit_callbacks(execute=True):
            return channel_event_process(event_id=stored.pk)

    return run


def paid(order, session, deliver, **details):
    deliver(
        stripe.event("checkout.session.completed", stripe.completed_session(session, **details))
    )
    order.refresh_from_db()
    return order


def grants_of(order):
    return DownloadGrant.objects.filter(order=order)


class TestCheckoutItem:
    def test_a_variant_is_sold_at_its_effective_price(self):
        variant = factories.VariantFactory(price=None, product=factories.ProductFactory(price=900))
        item = checkout_item_get(item_id=variant.pk)
        assert (item.product, item.variant, item.price) == (variant.product, variant, 900)

    def test_a_product_is_sold_at_its_price(self):
        product = factories.ProductFactory(price=4200)
        item = checkout_item_get(item_id=product.pk)
        assert (item.product, item.variant, item.price) == (product, None, 4200)

    def test_nothing_archived_or_unknown_is_for_sale(self):
        archived = factories.ProductFactory(archived=True)
        variant = factories.VariantFactory(product=archived)
        assert checkout_item_get(item_id=archived.pk) is None
        assert checkout_item_get(item_id=variant.pk) is None
        assert checkout_item_get(item_id=factories.ProductFactory.build().pk) is None


class TestCheckoutStart:
    def test_the_session_charges_the_order_line_at_the_catalogue_price(self, stripe_api):
        variant = factories.VariantFactory(
            price=1500, product=factories.ProductFactory(name="Atlas")
        )
        begun = start(variant.pk)
        order = Order.objects.get(pk=begun.order.pk)
        (form,) = stripe_api.session_creates()
        assert form["mode"] == "payment"
        assert form["line_items"] == [
            {
                "price_data": {
                    "currency": "usd",
                    "unit_amount": "1500",
                    "product_data": {"name": f"Atlas – {variant.name}"},
                },
                "quantity": "1",
            }
        ]
        assert form["client_reference_id"] == str(order.pk)
        assert form["metadata"]["order_id"] == str(order.pk)
        assert form["success_url"] == f"http://testserver/account/orders/{order.access_token}/"
        assert form["cancel_url"] == f"http://testserver/buy/{variant.pk}/"
        assert "customer_email" not in form
        assert order.lines.get().price == 1500 and order.total == 1500

    def test_the_order_is_pending_on_the_stripe_channel_and_linked_to_the_session(self, stripe_api):
        begun = start(factories.ProductFactory().pk)
        order = Order.objects.get(pk=begun.order.pk)
        (session_id,) = stripe_api.sessions
        assert (order.status, order.channel, order.email) == ("pending", "stripe", "")
        assert order.external_id == session_id
        assert begun.url == f"{stripe_api.url}/pay/{session_id}"

    def test_the_library_authenticates_with_the_secret_key_and_an_idempotency_key(self, stripe_api):
        begun = start(factories.ProductFactory().pk)
        headers = stripe_api.requests[0]["headers"]
        assert headers["Authorization"] == f"Bearer {stripe_api.secret_key}"
        assert headers["Idempotency-Key"] == f"checkout-{begun.order.pk}"

    def test_an_email_typed_on_the_buy_page_prefills_checkout(self, stripe_api):
        begun = start(factories.ProductFactory().pk, email="Reader@Example.com")
        assert stripe_api.session_creates()[0]["customer_email"] == "reader@example.com"
        assert begun.order.email == "reader@example.com"

    def test_amounts_go_to_stripe_in_the_currencys_minor_units_lower_cased(
        self, stripe_api, settings
    ):
        settings.DOWNLOADS_CURRENCY = "JPY"
        start(factories.ProductFactory(price=4900).pk)
        price_data = stripe_api.session_creates()[0]["line_items"][0]["price_data"]
        assert (price_data["currency"], price_data["unit_amount"]) == ("jpy", "4900")
        assert Order.objects.get().currency == "JPY"

    @pytest.mark.parametrize(
        ("status", "kind"),
        [(500, "api_error"), (400, "invalid_request_error"), (401, "invalid_request_error")],
    )
    def test_stripe_refusing_cancels_the_order_and_says_unavailable(self, stripe_api, status, kind):
        stripe_api.fail(status, type=kind)
        with pytest.raises(ServiceError) as raised:
            start(factories.ProductFactory().pk)
        assert raised.value.code == "checkout.unavailable"
        order = Order.objects.get()
        assert order.status == "cancelled" and order.external_id is None

    def test_stripe_unreachable_cancels_the_order_and_says_unavailable(self, stripe_api, settings):
        with socket.socket() as probe:  # a port nothing listens on
            probe.bind(("127.0.0.1", 0))
            settings.STRIPE_API_BASE = f"http://127.0.0.1:{probe.getsockname()[1]}"
        with pytest.raises(ServiceError) as raised:
            start(factories.ProductFactory().pk)
        assert raised.value.code == "checkout.unavailable"
        assert Order.objects.get().status == "cancelled"

    def test_without_a_secret_key_nothing_is_made(self, settings):
        settings.STRIPE_SECRET_KEY = ""
        item = checkout_item_get(item_id=factories.ProductFactory().pk)
        with pytest.raises(ServiceError) as raised:
            checkout_start(item=item)
        assert raised.value.code == "checkout.unavailable"
        assert not Order.objects.exists()


class TestReceive:
    def test_a_signed_event_is_stored_once(self, stripe_api):
        body = stripe.encode(stripe.event("checkout.session.expired", {"id": "cs_x"}))
        header = stripe.signature_header(body, stripe_api.webhook_secret)
        first, created = stripe_event_receive(payload=body, signature=header)
        again, created_again = stripe_event_receive(payload=body, signature=header)
        assert (created, created_again) == (True, False) and first.pk == again.pk
        assert (first.channel, first.type) == ("stripe", "checkout.session.expired")
        assert first.payload["data"]["object"] == {"id": "cs_x"}

    @pytest.mark.parametrize(
        "signature",
        [
            None,
            "",
            "t=1,v1=00",
            "garbage",
            "wrong-secret",
            "stale",
        ],
    )
    def test_a_missing_or_bad_signature_stores_nothing(self, stripe_api, signature):
        body = stripe.encode(stripe.event("checkout.session.expired", {"id": "cs_x"}))
        if signature == "wrong-secret":
            signature = stripe.signature_header(body, "whsec_not_the_store_s")
        elif signature == "stale":  # older than the library's five minutes' tolerance
            signature = stripe.signature_header(
                body, stripe_api.webhook_secret, timestamp=int(time.time()) - 600
            )
        with pytest.raises(ServiceError) as raised:
            stripe_event_receive(payload=body, signature=signature)
        assert raised.value.code == "stripe_event.unverified"
        assert not ChannelEvent.objects.exists()

    def test_a_body_changed_after_signing_stores_nothing(self, stripe_api):
        body = stripe.encode(stripe.event("charge.refunded", {"amount_refunded": 100}))
        header = stripe.signature_header(body, stripe_api.webhook_secret)
        with pytest.raises(ServiceError):
            stripe_event_receive(payload=body.replace(b"100", b"999"), signature=header)
        assert not ChannelEvent.objects.exists()

    def test_a_signed_body_that_is_not_an_event_stores_nothing(self, stripe_api):
        for body in (b"not json", b'{"object": "event"}'):
            header = stripe.signature_header(body, stripe_api.webhook_secret)
            with pytest.raises(ServiceError) as raised:
                stripe_event_receive(payload=body, signature=header)
            assert raised.value.code == "stripe_event.malformed"
        assert not ChannelEvent.objects.exists()


class TestSessionEvents:
    def test_a_paid_completion_pays_the_order_with_what_the_buyer_typed_at_checkout(
        self, sold, deliver
    ):
        order, session = sold
        order = paid(
            order, session, deliver, email="Typed@Example.com", tax=200, payment_intent="pi_1"
        )
        assert order.status == "paid" and order.paid_at is not None
        assert order.email == "typed@example.com"
        assert (order.subtotal, order.tax, order.total) == (2500, 200, 2700)
        assert order.total == session["amount_subtotal"] + 200  # Stripe's amount_total
        assert (order.payment_id, order.payment_method) == ("pi_1", "card")
        assert grants_of(order).count() == 1
        (message,) = mail.outbox
        assert message.to == ["typed@example.com"]
        event = ChannelEvent.objects.get()
        assert (event.status, event.order_id, event.error) == ("processed", order.pk, "")

    def test_processing_the_completion_again_issues_and_sends_nothing_more(self, sold, deliver):
        order, session = sold
        order = paid(order, session, deliver)
        with_again = channel_event_process_again(event=ChannelEvent.objects.get())
        assert with_again.status == "processed" and with_again.attempts == 2
        assert grants_of(order).count() == 1 and len(mail.outbox) == 1

    def test_a_replayed_completion_is_stored_and_processed_once(self, sold, deliver):
        order, session = sold
        evt = stripe.event("checkout.session.completed", stripe.completed_session(session))
        deliver(evt)
        deliver(evt)
        assert ChannelEvent.objects.get().attempts == 1
        assert grants_of(order).count() == 1 and len(mail.outbox) == 1

    def test_an_unpaid_completion_leaves_the_order_pending(self, sold, deliver):
        order, session = sold
        done = stripe.completed_session(session, payment_status="unpaid")
        event = deliver(stripe.event("checkout.session.completed", done))
        order.refresh_from_db()
        assert event.status == "processed" and event.order_id == order.pk
        assert order.status == "pending" and not grants_of(order).exists()
        assert mail.outbox == []

    def test_an_async_payment_that_succeeds_pays_the_order(self, sold, deliver):
        order, session = sold
        deliver(
            stripe.event(
                "checkout.session.completed",
                stripe.completed_session(
                    session, payment_status="unpaid", email="late@example.com"
                ),
            )
        )
        deliver(
            stripe.event(
                "checkout.session.async_payment_succeeded",
                stripe.completed_session(session, email="late@example.com", payment_intent="pi_2"),
            )
        )
        order.refresh_from_db()
        assert (order.status, order.email, order.payment_id) == ("paid", "late@example.com", "pi_2")
        assert grants_of(order).count() == 1 and mail.outbox[0].to == ["late@example.com"]

    @pytest.mark.parametrize(
        "event_type", ["checkout.session.expired", "checkout.session.async_payment_failed"]
    )
    def test_an_expired_or_failed_session_cancels_a_pending_order(self, sold, deliver, event_type):
        order, session = sold
        event = deliver(stripe.event(event_type, {**session, "status": "expired"}))
        order.refresh_from_db()
        assert order.status == "cancelled" and event.status == "processed"

    def test_an_expired_session_leaves_a_paid_order_paid(self, sold, deliver):
        order, session = sold
        order = paid(order, session, deliver)
        event = deliver(stripe.event("checkout.session.expired", session))
        order.refresh_from_db()
        assert order.status == "paid" and event.status == "processed"

    def test_a_session_of_no_known_order_is_unmatched(self, sold, deliver):
        _order, session = sold
        for reference in (str(factories.ProductFactory.build().pk), "not-a-uuid", None):
            stranger = {**stripe.completed_session(session), "client_reference_id": reference}
            event = deliver(stripe.event("checkout.session.completed", stranger))
            assert event.status == "unmatched" and "No stripe order" in event.error
        assert Order.objects.get().status == "pending"

    def test_a_session_must_be_the_one_linked_to_the_order(self, sold, deliver):
        order, session = sold
        other_session = {**stripe.completed_session(session), "id": "cs_test_someone_else"}
        event = deliver(stripe.event("checkout.session.completed", other_session))
        order.refresh_from_db()
        assert event.status == "unmatched" and order.status == "pending"

    def test_an_order_of_another_channel_is_never_paid_by_a_session(self, stripe_api, deliver):
        product = factories.ProductFactory()
        api_order = order_create(email="a@example.com", lines=[LineInput(product=product)])
        Order.objects.filter(pk=api_order.pk).update(external_id="cs_test_forged")
        session = {
            "id": "cs_test_forged",
            "object": "checkout.session",
            "client_reference_id": str(api_order.pk),
            "amount_subtotal": product.price,
        }
        event = deliver(
            stripe.event("checkout.session.completed", stripe.completed_session(session))
        )
        api_order.refresh_from_db()
        assert event.status == "unmatched" and api_order.status == "pending"


class TestChargeEvents:
    @pytest.fixture
    def paid_sale(self, sold, deliver):
        order, session = sold
        return paid(order, session, deliver, payment_intent="pi_sale", tax=100)

    def refund(self, deliver, amount_refunded, **kwargs):
        charge = stripe.charge(
            payment_intent="pi_sale", amount=2600, amount_refunded=amount_refunded, **kwargs
        )
        return deliver(stripe.event("charge.refunded", charge))

    def test_a_full_refund_refunds_the_order_and_revokes_its_grants(self, paid_sale, deliver):
        event = self.refund(deliver, 2600)
        order = Order.objects.get(pk=paid_sale.pk)
        assert event.status == "processed" and event.order_id == order.pk
        assert order.status == "refunded" and order.refunded_total == 2600
        assert all(grant.revoked_at is not None for grant in grants_of(order))

    def test_a_charge_stripe_calls_refunded_is_a_full_refund(self, paid_sale, deliver):
        self.refund(deliver, 2500, refunded=True)
        assert Order.objects.get(pk=paid_sale.pk).status == "refunded"

    def test_a_partial_refund_records_the_amount_and_revokes_nothing(self, paid_sale, deliver):
        event = self.refund(deliver, 600)
        order = Order.objects.get(pk=paid_sale.pk)
        assert event.status == "processed"
        assert order.status == "paid" and order.refunded_total == 600
        assert not grants_of(order).filter(revoked_at__isnull=False).exists()

    def test_partial_refunds_add_what_stripe_refunded_beyond_the_recorded_total(
        self, paid_sale, deliver
    ):
        first = self.refund(deliver, 600)
        channel_event_process_again(event=first)  # processing it again adds nothing
        self.refund(deliver, 1000)  # Stripe's amount_refunded is cumulative
        assert Order.objects.get(pk=paid_sale.pk).refunded_total == 1000
        self.refund(deliver, 2600)
        order = Order.objects.get(pk=paid_sale.pk)
        assert order.status == "refunded" and order.refunded_total == 2600

    def test_a_dispute_revokes_the_grants_and_flags_the_order(self, paid_sale, deliver):
        event = deliver(
            stripe.event(
                "charge.dispute.created", stripe.dispute(payment_intent="pi_sale", amount=2600)
            )
        )
        order = Order.objects.get(pk=paid_sale.pk)
        assert event.status == "processed" and event.order_id == order.pk
        assert order.disputed_at is not None and order.status == "paid"
        assert grants_of(order).filter(revoked_at__isnull=True).count() == 0

    def test_a_refund_or_dispute_of_an_unknown_payment_is_unmatched(self, paid_sale, deliver):
        refund = deliver(
            stripe.event("charge.refunded", stripe.charge(payment_intent="pi_other", amount=1))
        )
        dispute = deliver(
            stripe.event("charge.dispute.created", stripe.dispute(payment_intent=None, amount=1))
        )
        assert (refund.status, dispute.status) == ("unmatched", "unmatched")
        assert "PaymentIntent" in refund.error
        order = Order.objects.get(pk=paid_sale.pk)
        assert order.status == "paid" and order.disputed_at is None


def test_a_refund_delivered_before_the_completion_is_applied_once_the_order_is_paid(sold, deliver):
    order, session = sold
    charge = stripe.charge(payment_intent="pi_early", amount=2500, amount_refunded=2500)
    early = deliver(stripe.event("charge.refunded", charge))
    assert early.status == "unmatched"
    queued = DBTaskResult.objects.filter(task_path="downloads.tasks.channel_event_process")
    before = set(queued.values_list("pk", flat=True))
    paid(order, session, deliver, payment_intent="pi_early")
    woken = [task.args_kwargs["args"] for task in queued.exclude(pk__in=before)]
    assert [str(early.pk)] in woken  # the waiting refund is queued again
    channel_event_process(event_id=early.pk)  # what the worker then does
    order.refresh_from_db()
    assert (order.status, order.refunded_total) == ("refunded", 2500)


def test_other_event_types_are_ignored(stripe_api, deliver):
    event = deliver(stripe.event("customer.created", {"id": "cus_1", "object": "customer"}))
    assert event.status == "ignored" and "customer.created" in event.error


def test_the_handler_is_the_one_the_inbox_calls_for_stripe():
    from django.utils.module_loading import import_string

    from downloads.services.channels import HANDLERS

    assert import_string(HANDLERS["stripe"]) is event_process
