"""A shopper in headless Chromium: the store's home, a buy page, Stripe Checkout (the local
Stripe-shaped server's page), the order page while the payment is confirmed, and the receipt
with the files once Stripe's signed webhook was processed by the real worker."""

import re

import pytest
import requests
from playwright.sync_api import expect

from downloads.models import Order
from tests import factories
from tests import stripe_server as stripe

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

expect.set_options(timeout=15_000)


def test_a_shopper_buys_from_the_home_page_and_gets_the_receipt_and_files(
    live_server, page, screenshot, stripe_api, run_worker, settings
):
    settings.DOWNLOADS_SITE_URL = live_server.url  # Stripe's return links point here
    product = factories.ProductFactory(name="Field Guide", price=1900, description="A guide.")
    factories.DownloadFactory(product=product, name="Field Guide (PDF)")
    factories.ProductFactory(name="Old Edition", price=900, archived=True)

    page.goto(live_server.url + "/")
    expect(page.get_by_role("heading", name="Field Guide")).to_be_visible()
    expect(page.get_by_text("Old Edition")).to_have_count(0)
    expect(page.locator("main")).to_contain_text("$19.00")
    screenshot(page, "store-home")

    page.get_by_role("link", name=re.compile("Buy")).first.click()
    expect(page.get_by_role("heading", name=re.compile("Field Guide"))).to_be_visible()
    expect(page.locator("main")).to_contain_text("$19.00")
    screenshot(page, "buy-page")
    page.get_by_role("button", name=re.compile("Pay")).click()
    page.wait_for_url(re.compile(re.escape(stripe_api.url) + "/pay/"))  # at "Stripe"

    order = Order.objects.get()
    (create,) = stripe_api.session_creates()
    assert create["line_items"][0]["price_data"]["unit_amount"] == "1900"
    session = stripe_api.sessions[order.external_id]

    # Stripe sends the buyer back to the success URL before its webhook has landed.
    page.goto(session["success_url"])
    expect(page.get_by_text("Your payment is being confirmed.")).to_be_visible()
    expect(page.locator("li.file")).to_have_count(0)
    screenshot(page, "payment-being-confirmed")

    paid = stripe.completed_session(session, email="shopper@example.com", tax=190)
    body = stripe.encode(stripe.event("checkout.session.completed", paid))
    response = requests.post(
        live_server.url + "/channels/stripe/webhooks",
        data=body,
        headers={
            "Content-Type": "application/json",
            "Stripe-Signature": stripe.signature_header(body, stripe_api.webhook_secret),
        },
        timeout=10,
    )
    assert response.status_code == 200
    run_worker()

    page.reload()
    expect(page.get_by_text("Your payment is being confirmed.")).to_have_count(0)
    receipt = page.locator("section.receipt")
    for label, value in (("Subtotal", "$19.00"), ("Tax", "$1.90"), ("Total", "$20.90")):
        expect(
            receipt.get_by_role("listitem").filter(has_text=re.compile(f"^{label}"))
        ).to_have_text(re.compile(rf"^\s*{label}\s*{re.escape(value)}\s*$"))
    expect(receipt).to_contain_text("via Stripe Checkout")
    expect(page.locator("li.file", has_text="Field Guide (PDF)")).to_be_visible()
    screenshot(page, "receipt")
