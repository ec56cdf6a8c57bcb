"""GET/POST /buy/<product or variant id>/ and POST /channels/stripe/webhooks: the buy page,
the 303 to Stripe's Checkout, the 503 when Stripe is down, and Stripe's signed webhooks."""

import re
import socket

import pytest
import requests
from django.core import mail
from django.test import Client
from django.urls import reverse
from django_tasks_db.models import DBTaskResult

from downloads.models import ChannelEvent, DownloadGrant, Order
from downloads.services.channels import channel_event_process
from tests import factories
from tests import stripe_server as stripe

pytestmark = pytest.mark.django_db


def buy_url(item) -> str:
    return reverse("buy", args=[item.pk])


WEBHOOK = "/channels/stripe/webhooks"


def post_event(client, evt, secret, *, signature=None):
    body = stripe.encode(evt)
    if signature is None:
        signature = stripe.signature_header(body, secret)
    headers = {"HTTP_STRIPE_SIGNATURE": signature} if signature else {}
    return client.post(WEBHOOK, body, content_type="application/json", **headers)


@pytest.fixture
def variant():
    product = factories.ProductFactory(name="The Field Guide", price=2500)
    factories.DownloadFactory(product=product)
    return factories.VariantFactory(product=product, name="PDF edition", price=1900)


class TestBuyPage:
    def test_it_shows_what_is_bought_and_its_formatted_price_with_a_pay_form(
        self, client, stripe_api, variant
    ):
        response = client.get(buy_url(variant))
        html = response.content.decode()
        assert response.status_code == 200
        assert "The Field Guide" in html and "PDF edition" in html
        assert "$19.00" in html
        form = re.search(r'<form method="post" action="([^"]+)"', html)
        assert form and form[1] == buy_url(variant)
        assert 'name="csrfmiddlewaretoken"' in html and 'name="email"' in html
        assert re.search(r'<button type="submit"[^>]*>Pay\b', html)
        assert "<script" not in html

    def test_a_product_is_sold_at_its_own_price(self, client, stripe_api):
        product = factories.ProductFactory(price=4200)
        assert "$42.00" in client.get(buy_url(product)).content.decode()

    def test_it_is_404_without_stripe(self, client, settings, variant):
        settings.STRIPE_SECRET_KEY = ""
        assert client.get(buy_url(variant)).status_code == 404
        assert client.post(buy_url(variant)).status_code == 404
        assert not Order.objects.exists()

    def test_it_is_404_for_an_archived_product_or_an_unknown_id(self, client, stripe_api, variant):
        archived = factories.ProductFactory(archived=True)
        archived_variant = factories.VariantFactory(product=archived)
        for item in (archived, archived_variant, factories.ProductFactory.build()):
            assert client.get(buy_url(item)).status_code == 404
        assert client.post(buy_url(archived)).status_code == 404
        assert stripe_api.requests == []

    def test_other_methods_are_405(self, client, stripe_api, variant):
        assert client.put(buy_url(variant)).status_code == 405


class TestPay:
    def test_pay_makes_a_pending_order_and_a_session_then_303s_to_checkout(
        self, client, stripe_api, variant
    ):
        response = client.post(buy_url(variant), {"email": ""})
        order = Order.objects.get()
        (session_id,) = stripe_api.sessions
        assert response.status_code == 303
        assert response["Location"] == stripe_api.sessions[session_id]["url"]
        assert (order.status, order.channel, order.external_id) == ("pending", "stripe", session_id)
        assert order.lines.get().variant == variant and order.total == 1900
        (form,) = stripe_api.session_creates()
        assert form["line_items"][0]["price_data"]["unit_amount"] == "1900"
        assert form["line_items"][0]["price_data"]["currency"] == "usd"
        assert form["client_reference_id"] == str(order.pk)
        assert form["success_url"] == f"http://testserver/account/orders/{order.access_token}/"

    def test_the_form_needs_its_csrf_token(self, stripe_api, variant):
        browser = Client(enforce_csrf_checks=True)
        assert browser.post(buy_url(variant)).status_code == 403
        page = browser.get(buy_url(variant)).content.decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]
        response = browser.post(buy_url(variant), {"csrfmiddlewaretoken": token})
        assert response.status_code == 303

    def test_an_email_given_prefills_checkout(self, client, stripe_api, variant):
        client.post(buy_url(variant), {"email": "reader@example.com"})
        assert stripe_api.session_creates()[0]["customer_email"] == "reader@example.com"

    def test_an_invalid_email_asks_again_and_makes_nothing(self, client, stripe_api, variant):
        response = client.post(buy_url(variant), {"email": "not an email"})
        assert response.status_code == 400
        assert "valid email" in response.content.decode()
        assert not Order.objects.exists() and stripe_api.requests == []

    def test_stripe_down_is_a_503_page_and_the_order_is_cancelled(
        self, client, stripe_api, variant
    ):
        stripe_api.fail(500)
        response = client.post(buy_url(variant))
        html = response.content.decode()
        assert response.status_code == 503
        assert "payment provider is unavailable" in html and "nothing was charged" in html
        assert buy_url(variant) in html  # try again
        assert Order.objects.get().status == "cancelled"

    def test_stripe_refusing_the_key_is_the_same_503_never_a_500(
        self, client, stripe_api, settings, variant
    ):
        settings.STRIPE_SECRET_KEY = "sk_test_revoked"
        response = client.post(buy_url(variant))
        assert response.status_code == 503
        assert stripe_api.requests[0]["headers"]["Authorization"] == "Bearer sk_test_revoked"
        assert Order.objects.get().status == "cancelled"

    def test_stripe_unreachable_is_the_same_503_never_a_500(
        self, client, stripe_api, settings, variant
    ):
        with socket.socket() as probe:  # a port nothing listens on
            probe.bind(("127.0.0.1", 0))
            settings.STRIPE_API_BASE = f"http://127.0.0.1:{probe.getsockname()[1]}"
        response = client.post(buy_url(variant))
        assert response.status_code == 503
        assert "nothing was charged" in response.content.decode()
        assert Order.objects.get().status == "cancelled"

    def test_the_order_page_says_the_payment_is_being_confirmed(self, client, stripe_api, variant):
        client.post(buy_url(variant))
        order = Order.objects.get()
        page = client.get(f"/account/orders/{order.access_token}/").content.decode()
        assert "Your payment is being confirmed." in page


class TestWebhook:
    @pytest.fixture
    def order_and_session(self, client, stripe_api, variant):
        client.post(buy_url(variant))
        order = Order.objects.get()
        return order, stripe_api.sessions[order.external_id]

    def test_a_signed_event_is_stored_queued_and_answered_at_once(
        self, client, stripe_api, order_and_session
    ):
        order, session = order_and_session
        evt = stripe.event("checkout.session.completed", stripe.completed_session(session))
        response = post_event(client, evt, stripe_api.webhook_secret)
        assert response.status_code == 200 and response.json() == {"received": True}
        stored = ChannelEvent.objects.get()
        assert (stored.channel, stored.event_id, stored.type) == ("stripe", evt["id"], evt["type"])
        assert stored.status == "received" and stored.payload == evt
        assert DBTaskResult.objects.filter(
            task_path="downloads.tasks.channel_event_process", args_kwargs__args=[str(stored.pk)]
        ).exists()
        assert Order.objects.get(pk=order.pk).status == "pending"  # the worker pays it

    def test_a_paid_completion_pays_the_order_and_emails_the_address_typed_at_checkout(
        self, client, stripe_api, order_and_session, django_capture_on_commit_callbacks
    ):
        order, session = order_and_session
        done = stripe.completed_session(session, email="typed@example.com", tax=190)
        post_event(
            client, stripe.event("checkout.session.completed", done), stripe_api.webhook_secret
        )
        with django_capture_on_commit_callbacks(execute=True):
            channel_event_process(event_id=ChannelEvent.objects.get().pk)
        order.refresh_from_db()
        assert (order.status, order.email) == ("paid", "typed@example.com")
        assert (order.tax, order.total) == (190, done["amount_total"])
        assert DownloadGrant.objects.filter(order=order).count() == 1
        (message,) = mail.outbox
        assert message.to == ["typed@example.com"]
        page = client.get(f"/account/orders/{order.access_token}/").content.decode()
        assert "Your payment is being confirmed." not in page

    @pytest.mark.parametrize(
        "signature", ["t=1,v1=deadbeef", "nonsense", "", "wrong-secret"], ids=repr
    )
    def test_a_bad_or_missing_signature_is_400_json_and_stores_nothing(
        self, client, stripe_api, signature
    ):
        evt = stripe.event("checkout.session.completed", {"id": "cs_x"})
        if signature == "wrong-secret":
            signature = stripe.signature_header(stripe.encode(evt), "whsec_someone_else")
        response = post_event(client, evt, stripe_api.webhook_secret, signature=signature or False)
        assert response.status_code == 400
        assert response["Content-Type"] == "application/json"
        assert response.json()["code"] == "stripe_event.unverified"
        assert not ChannelEvent.objects.exists() and not DBTaskResult.objects.exists()

    def test_a_replayed_event_is_answered_and_does_nothing_more(
        self, client, stripe_api, order_and_session, django_capture_on_commit_callbacks
    ):
        order, session = order_and_session
        evt = stripe.event("checkout.session.completed", stripe.completed_session(session))
        for _delivery in range(2):
            response = post_event(client, evt, stripe_api.webhook_secret)
            assert response.status_code == 200
            with django_capture_on_commit_callbacks(execute=True):
                channel_event_process(event_id=ChannelEvent.objects.get().pk)
        assert ChannelEvent.objects.count() == 1
        assert (
            DBTaskResult.objects.filter(task_path="downloads.tasks.channel_event_process").count()
            == 1
        )
        assert DownloadGrant.objects.filter(order=order).count() == 1 and len(mail.outbox) == 1

    def test_it_is_404_without_a_webhook_secret(self, client, settings):
        settings.STRIPE_WEBHOOK_SECRET = ""
        evt = stripe.event("checkout.session.completed", {"id": "cs_x"})
        assert post_event(client, evt, "whsec_any").status_code == 404
        assert not ChannelEvent.objects.exists()

    def test_it_takes_only_post_and_needs_no_csrf_token(self, stripe_api):
        browser = Client(enforce_csrf_checks=True)
        assert browser.get(WEBHOOK).status_code == 405
        evt = stripe.event("checkout.session.expired", {"id": "cs_x"})
        assert post_event(browser, evt, stripe_api.webhook_secret).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_buying_end_to_end_through_the_worker(client, stripe_api, variant, run_worker):
    """Pay → Stripe's page → the signed completion → the real db_worker → the paid order page."""
    response = client.post(buy_url(variant), {"email": ""})
    assert response.status_code == 303
    checkout_page = requests.get(response["Location"], timeout=5)  # the buyer at Stripe
    assert checkout_page.status_code == 200 and "Stripe Checkout" in checkout_page.text
    order = Order.objects.get()
    session = stripe_api.sessions[order.external_id]
    done = stripe.completed_session(session, email="end@example.com", payment_intent="pi_e2e")
    evt = stripe.event("checkout.session.completed", done)
    assert post_event(client, evt, stripe_api.webhook_secret).status_code == 200
    run_worker()
    order.refresh_from_db()
    assert (order.status, order.email, order.payment_id) == ("paid", "end@example.com", "pi_e2e")
    assert ChannelEvent.objects.get().status == "processed"
    assert [message.to for message in mail.outbox] == [["end@example.com"]]
    page = client.get(f"/account/orders/{order.access_token}/").content.decode()
    assert "$19.00" in page and "Your payment is being confirmed." not in page

    refund = stripe.charge(payment_intent="pi_e2e", amount=1900, amount_refunded=1900)
    response = post_event(
        client, stripe.event("charge.refunded", refund), stripe_api.webhook_secret
    )
    assert response.status_code == 200
    run_worker()
    order.refresh_from_db()
    assert order.status == "refunded"
    assert not DownloadGrant.objects.filter(order=order, revoked_at__isnull=True).exists()
