"""Shopify's webhook endpoint, `POST /channels/shopify/webhooks`, through real HTTP: Django's
test client (with CSRF checks on) and, for concurrency, the live server. Deliveries are
signed here as Shopify signs them: base64(HMAC-SHA256(secret, raw body))."""

import base64
import hashlib
import hmac
import json
from pathlib import Path

import pytest
import requests
from django.test import Client

from downloads.models import ChannelEvent, DownloadGrant, Order
from downloads.services.channels import channel_event_process
from tests import factories
from tests.concurrency import at_once

pytestmark = pytest.mark.django_db

URL = "/channels/shopify/webhooks"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "shopify"
SECRET = "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"
TOKEN = "b1946ac92492d2347c6235b4d2611184"  # the fixture order's token


@pytest.fixture(autouse=True)
def _shopify(settings):
    settings.SHOPIFY_WEBHOOK_SECRET = SECRET
    settings.SHOPIFY_SHOP_DOMAIN = ""


@pytest.fixture
def client():
    """A client that enforces CSRF, as a browser-less Shopify would meet it."""
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def catalogue():
    """The fixture orders' products, mapped by Shopify's ids: 1 file and 2 files."""
    guide = factories.ProductFactory(name="The Field Guide", external_id=632910392)
    factories.VariantFactory(product=guide, sku="GUIDE-PDF", external_id=808950810)
    course = factories.ProductFactory(name="Video Course", external_id=921728736)
    factories.DownloadFactory(product=guide)
    factories.DownloadFactory(product=course)
    factories.DownloadFactory(product=course)
    return guide, course


def body_of(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def signed(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def headers(body: bytes, *, topic="orders/paid", webhook_id="b54557e4-8a5f-4f7d", **extra):
    values = {
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": signed(body),
        "X-Shopify-Shop-Domain": "demo-press.myshopify.com",
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-API-Version": "2026-10",
        **extra,
    }
    return {name: value for name, value in values.items() if value is not None}


def post(client, body: bytes, **options):
    return client.post(URL, body, content_type="application/json", headers=headers(body, **options))


def nothing_stored():
    return ChannelEvent.objects.count() == 0 and Order.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_signed_orders_paid_makes_one_paid_order_whose_storefront_json_has_shopifys_number(
    client, catalogue, run_worker, mailoutbox
):
    response = post(client, body_of("orders-paid"))
    assert (response.status_code, response.json()) == (200, {"received": True})
    run_worker()

    order = Order.objects.get()
    assert (order.channel, order.external_id, order.status) == ("shopify", "450789469", "paid")
    assert order.grants.count() == 3
    assert [message.to for message in mailoutbox] == [["jon@example.com"]]
    storefront = client.get("/api/v2/customer-account-orders", {"id": TOKEN})
    assert storefront.status_code == 200
    data = storefront.json()["order"]
    assert data["order_number"] == 1042
    assert [line["product"]["product_id"] for line in data["lines"]] == [632910392, 921728736]
    assert [len(line["assets"]) for line in data["lines"]] == [1, 2]


def test_the_answer_comes_before_the_processing(client, catalogue):
    response = post(client, body_of("orders-paid"))
    assert response.status_code == 200
    event = ChannelEvent.objects.get()
    assert (event.channel, event.type, event.event_id) == (
        "shopify",
        "orders/paid",
        "b54557e4-8a5f-4f7d",
    )
    assert event.status == "received" and event.payload["order_number"] == 1042
    assert Order.objects.count() == 0  # the worker makes it


def test_a_wrong_hmac_is_401_and_stores_nothing(client, catalogue):
    body = body_of("orders-paid")
    forged = signed(body, "not the secret")
    response = client.post(
        URL, body, content_type="application/json",
        headers=headers(body, **{"X-Shopify-Hmac-Sha256": forged}),
    )  # fmt: skip
    assert response.status_code == 401
    assert response.json()["code"] == "shopify_webhook.unverified"
    assert nothing_stored()


def test_a_body_changed_after_signing_is_401_and_stores_nothing(client, catalogue):
    body = body_of("orders-paid")
    changed = body.replace(b'"49.00"', b'"0.01"')
    response = client.post(URL, changed, content_type="application/json", headers=headers(body))
    assert response.status_code == 401
    assert nothing_stored()


def test_a_missing_hmac_is_401_and_stores_nothing(client, catalogue):
    response = post(client, body_of("orders-paid"), **{"X-Shopify-Hmac-Sha256": None})
    assert response.status_code == 401
    assert nothing_stored()


def test_without_a_secret_the_endpoint_is_not_there(client, settings):
    settings.SHOPIFY_WEBHOOK_SECRET = ""
    body = body_of("orders-paid")
    response = client.post(
        URL, body, content_type="application/json",
        headers=headers(body, **{"X-Shopify-Hmac-Sha256": signed(body, "")}),
    )  # fmt: skip
    assert response.status_code == 404
    assert nothing_stored()


def test_with_a_shop_domain_set_another_shop_is_401(client, settings, catalogue):
    settings.SHOPIFY_SHOP_DOMAIN = "demo-press.myshopify.com"
    body = body_of("orders-paid")
    other = post(client, body, **{"X-Shopify-Shop-Domain": "other.myshopify.com"})
    assert other.status_code == 401
    assert nothing_stored()
    assert post(client, body).status_code == 200


@pytest.mark.parametrize("body", [b"not json", b'[{"id": 450789469}]', b'"text"', b""])
def test_a_verified_body_that_is_not_a_json_object_is_400_and_stores_nothing(client, body):
    response = post(client, body)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "request.malformed"
    assert nothing_stored()


def test_a_verified_delivery_without_a_webhook_id_is_400_and_stores_nothing(client):
    response = post(client, body_of("orders-paid"), webhook_id=None)
    assert response.status_code == 400
    assert response.json()["code"] == "shopify_webhook.malformed"
    assert nothing_stored()


def test_only_post_is_allowed(client):
    response = client.get(URL)
    assert response.status_code == 405
    assert response["Allow"] == "POST"


def test_an_unknown_topic_is_stored_answered_and_ignored(client):
    body = json.dumps({"id": 1, "title": "Spring sale"}).encode()
    assert post(client, body, topic="collections/update").status_code == 200
    event = channel_event_process(event_id=ChannelEvent.objects.get().pk)
    assert (event.type, event.status) == ("collections/update", "ignored")


@pytest.mark.django_db(transaction=True)
def test_the_same_delivery_twice_is_one_event_and_one_order(client, catalogue, run_worker):
    body = body_of("orders-paid")
    first, second = post(client, body), post(client, body)
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json() == {"received": True}
    run_worker()
    assert ChannelEvent.objects.count() == 1
    assert Order.objects.count() == 1 and DownloadGrant.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_orders_create_then_orders_paid_and_a_refund_through_the_endpoint(
    client, catalogue, run_worker
):
    guide, course = catalogue
    deliveries = [
        post(client, body_of("orders-create"), topic="orders/create", webhook_id="1"),
        post(client, body_of("orders-paid"), webhook_id="2"),
        post(client, body_of("refunds-create"), topic="refunds/create", webhook_id="3"),
    ]
    assert [response.status_code for response in deliveries] == [200, 200, 200]
    run_worker()
    order = Order.objects.get()
    assert (order.status, order.refunded_total) == ("paid", 5500)
    revoked = {grant.line.product_id: grant.revoked_at is not None for grant in order.grants.all()}
    assert revoked == {guide.pk: False, course.pk: True}
    assert set(ChannelEvent.objects.values_list("status", flat=True)) == {"processed"}


# --- Concurrency, through the live server (PostgreSQL) ---------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_deliveries_of_one_webhook_store_one_event_and_make_one_order(
    postgres_only, live_server, catalogue, run_worker
):
    body = body_of("orders-paid")
    request_headers = {"Content-Type": "application/json", **headers(body)}

    def deliver(session):
        with session:
            return session.post(
                live_server.url + URL, data=body, headers=request_headers, timeout=60
            ).status_code

    statuses = at_once(50, deliver, setup=lambda _: requests.Session(), timeout=90)
    assert statuses == [200] * 50
    assert ChannelEvent.objects.count() == 1
    run_worker()
    order = Order.objects.get()
    assert order.status == "paid"
    assert DownloadGrant.objects.count() == 3
    assert sorted(order.grants.values_list("line__product__name", flat=True)) == [
        "The Field Guide",
        "Video Course",
        "Video Course",
    ]
    assert ChannelEvent.objects.get().status == "processed"
