"""A buyer in headless Chromium: the order page by its link, downloads until the limit,
and signing in to the order list."""

import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from downloads.models import DownloadEvent, Order
from tests import factories

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CONTENT = b"%PDF-1.4\n" + bytes(range(256)) * 64

# Two cores shared with the rest of the suite: wait as long as the page fixture does.
expect.set_options(timeout=15_000)


def test_buyer_downloads_from_the_order_page_until_the_limit(live_server, page, screenshot):
    order = factories.paid_order_with_files(lines=2, attached=1, email="reader@example.com")
    line = order.lines.first()
    grant = line.grants.get()
    media = factories.MediaFactory(content=CONTENT, filename="Field Guide (2nd édition).pdf")
    grant.download.media = media
    grant.download.save()
    grant.download_limit, grant.download_count = 2, 0
    grant.save()
    order.lines.update(price=1900, quantity=2, total=3800)
    Order.objects.filter(pk=order.pk).update(
        subtotal=7600, tax=760, total=8360, channel="stripe", payment_method="card"
    )

    page.goto(live_server.url + reverse("accounts:order_detail", args=[order.access_token]))
    expect(page.get_by_role("heading", name=f"Order #{order.number}")).to_be_visible()
    # The page is the receipt: each line's price × quantity and total, then the order's.
    for amount in page.locator(".line-amount").all():
        expect(amount).to_be_visible()
        expect(amount).to_have_text(re.compile(r"^\s*\$19\.00 × 2\s+\$38\.00\s*$"))
    receipt = page.locator("section.receipt")
    for label, value in (("Subtotal", "$76.00"), ("Tax", "$7.60"), ("Total", "$83.60")):
        expect(
            receipt.get_by_role("listitem").filter(has_text=re.compile(f"^{label}"))
        ).to_have_text(re.compile(rf"^\s*{label}\s*{re.escape(value)}\s*$"))
    expect(receipt).to_contain_text(re.compile(r"Paid \d+ \w+ \d{4} via Stripe Checkout \(card\)"))
    row = page.locator("li.file", has_text="Field Guide (2nd édition).pdf")
    expect(row).to_contain_text("0 of 2 downloads used")
    screenshot(page, "order-page")

    for used in (1, 2):
        with page.expect_download() as info:
            row.get_by_role("link", name=re.compile("Download")).click()
        download = info.value
        assert download.suggested_filename == "Field Guide (2nd édition).pdf"
        with open(download.path(), "rb") as delivered:
            assert delivered.read() == CONTENT
        page.reload()
        expect(row).to_contain_text(f"{used} of 2 downloads used")

    button = row.get_by_role("button", name=re.compile("Download"))
    expect(button).to_be_disabled()
    expect(row).to_contain_text("Download limit reached")
    expect(row.get_by_role("link")).to_have_count(0)
    screenshot(page, "limit-reached")
    assert DownloadEvent.objects.filter(grant=grant, outcome="served").count() == 2

    # Keyboard: the first Tab reaches the skip link, which leads to the content.
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Skip to content")

    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "order-page-phone")


def test_customer_signs_in_and_opens_an_order_from_the_list(live_server, page, screenshot):
    customer = factories.UserFactory(email="reader@example.com")
    orders = [factories.paid_order_with_files(lines=n, email=customer.email) for n in (1, 3)]

    page.goto(live_server.url + reverse("accounts:order_list"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    screenshot(page, "login")
    page.get_by_label("Email address").fill("READER@example.com")
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("heading", name="Your orders")).to_be_visible()
    for order in orders:
        expect(page.get_by_role("link", name=f"Order #{order.number}", exact=True)).to_be_visible()
    screenshot(page, "order-list")

    page.get_by_role("link", name=f"View order #{orders[1].number}").click()
    expect(page.get_by_role("heading", name=f"Order #{orders[1].number}")).to_be_visible()
    expect(page.locator("li.file")).to_have_count(4)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
