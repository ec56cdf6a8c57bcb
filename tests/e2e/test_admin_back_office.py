"""A merchant runs the store from the admin in headless Chromium, and a buyer downloads.

The merchant uploads a file (large enough for the direct upload with its progress bar),
creates a product with it and its price, creates an order for a buyer and marks it paid,
and the dashboard charts the sale's revenue. The buyer opens
the order page from the email's link and downloads the exact bytes; the merchant resets the
grant with the bulk action and the buyer's page shows the new count.
"""

import hashlib
import os
import re

import pytest
from django.core import mail
from playwright.sync_api import expect

from downloads.admin.media import DIRECT_UPLOAD_MIN_BYTES
from downloads.models import Media, MediaUpload, Order
from tests import factories

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

expect.set_options(timeout=15_000)

# Just over the direct-upload threshold: the browser sends it to storage itself.
CONTENT = b"%PDF-1.4\n" + os.urandom(DIRECT_UPLOAD_MIN_BYTES + 200_000)
PASSWORD = "correct horse battery"


def pick(page, row, text):
    """Choose `text` in the select2 autocomplete inside `row`."""
    row.locator(".select2-selection").first.click()
    page.locator(".select2-container--open .select2-search__field").fill(text)
    page.locator(".select2-results__option", has_text=text).first.click()


def test_merchant_sells_a_file_and_the_buyer_downloads_it(
    live_server, browser, page, screenshot, settings
):
    settings.DOWNLOADS_SITE_URL = live_server.url
    merchant = factories.StaffFactory(email="merchant@example.com")
    admin = live_server.url + "/admin/"

    # The merchant signs in.
    page.goto(admin)
    page.get_by_label("Email address").fill(merchant.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("At a glance: the last 30 days")).to_be_visible()
    screenshot(page, "admin-index")

    # Uploads the file: over the threshold, so straight to storage with a progress bar.
    page.goto(admin + "downloads/media/add/")
    upload = {"name": "Field Guide.pdf", "mimeType": "application/pdf", "buffer": CONTENT}
    page.locator("input[name=upload]").set_input_files(upload)
    screenshot(page, "media-upload-chosen")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("heading", name="Field Guide.pdf")).to_be_visible()
    media = Media.objects.get()
    # It came through the direct flow (the page's script), not the form's POST.
    assert MediaUpload.objects.get().media == media
    assert media.sha256 == hashlib.sha256(CONTENT).hexdigest()
    assert media.byte_size == len(CONTENT)
    expect(page.locator(".field-sha256_display")).to_contain_text(media.sha256)
    expect(page.locator(".field-storage")).to_contain_text("local")
    screenshot(page, "media-uploaded")

    # Creates a product with that file.
    page.goto(admin + "downloads/product/add/")
    page.get_by_label("Name:").fill("The Field Guide")
    page.get_by_label("Sku:").fill("GUIDE-1")
    page.get_by_label("Price:").fill("1900")
    page.get_by_role("button", name="Add another Download").click()
    pick(page, page.locator("#downloads-0"), "Field Guide.pdf")
    screenshot(page, "product-form")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    screenshot(page, "product-added")

    # Creates an order for the buyer's email, then marks it paid.
    page.goto(admin + "downloads/order/add/")
    page.get_by_label("Email:").fill("reader@example.com")
    pick(page, page.locator("#lines-0"), "The Field Guide")
    screenshot(page, "order-form")
    page.get_by_role("button", name="Create order").click()
    expect(page.locator(".messagelist")).to_contain_text("was created for reader@example.com")
    order = Order.objects.get()
    assert order.status == "pending" and not mail.outbox
    page.get_by_role("button", name="Mark paid").click()
    expect(page.locator(".messagelist")).to_contain_text("Marked 1 order paid.")
    expect(page.locator(".field-status")).to_contain_text("Paid")
    expect(page.locator("#grants-group")).to_contain_text("0 / 10")
    screenshot(page, "order-paid")

    # The dashboard charts the sale's net revenue beside the downloads.
    page.goto(admin)
    revenue = page.locator("figure.revenue")
    expect(revenue.locator("svg.revenue-chart rect.bar")).to_have_count(30)
    expect(revenue.locator("figcaption")).to_contain_text("$19.00 net revenue")
    expect(page.locator("table.top-products-revenue")).to_contain_text("The Field Guide")
    screenshot(page, "admin-index-revenue")

    # The buyer opens the order page from the email (sent once the payment committed).
    assert [message.to for message in mail.outbox] == [["reader@example.com"]]
    link = re.search(r"https?://\S+/account/orders/\w+/", mail.outbox[0].body).group(0)
    assert link.startswith(live_server.url)
    buyer_context = browser.new_context(
        accept_downloads=True, viewport={"width": 1280, "height": 900}
    )
    buyer = buyer_context.new_page()
    buyer.set_default_timeout(15_000)
    try:
        buyer.goto(link)
        row = buyer.locator("li.file", has_text="Field Guide.pdf")
        expect(row).to_contain_text("0 of 10 downloads used")
        with buyer.expect_download() as info:
            row.get_by_role("link", name=re.compile("Download")).click()
        with open(info.value.path(), "rb") as delivered:
            assert delivered.read() == CONTENT
        buyer.reload()
        expect(row).to_contain_text("1 of 10 downloads used")
        screenshot(buyer, "buyer-downloaded")

        # The merchant resets the grant with the bulk action.
        page.goto(admin + f"downloads/downloadgrant/?q={order.number}")
        page.locator("input.action-select").first.check()
        page.locator("select[name=action]").select_option("reset")
        screenshot(page, "grants-reset-chosen")
        page.get_by_role("button", name="Go").click()
        expect(page.locator(".messagelist")).to_contain_text("Reset 1 grant.")
        expect(page.locator("#result_list")).to_contain_text("0 / 10")
        screenshot(page, "grants-reset")

        # The buyer's page shows the new count.
        buyer.reload()
        expect(row).to_contain_text("0 of 10 downloads used")
        screenshot(buyer, "buyer-after-reset")
    finally:
        buyer_context.close()
