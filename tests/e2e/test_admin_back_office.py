"""A merchant runs the store from the admin in headless Chromium, and a buyer downloads.

The merchant uploads a file (large enough for the direct upload with its progress bar), is
told it worked and offered to use it in a product, creates a product with it and its price,
creates an order for a buyer and marks it paid (the page then offers no *Mark paid* or
*Cancel*), and the dashboard charts the sale's revenue. The buyer opens the order page from
the email's link and downloads the exact bytes; the merchant resets the grant with the bulk
action and the buyer's page shows the new count. Destructive buttons are red and go through
a confirmation page, which works under the admin's Content-Security-Policy (no inline script).
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
DELETE_RED = "rgb(186, 33, 33)"  # Django admin's --delete-button-bg


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
    expect(page.locator(".messagelist")).to_contain_text("The file “Field Guide.pdf” was uploaded.")
    use_it = f"/admin/downloads/download/add/?media={media.pk}"
    expect(
        page.locator(".messagelist").get_by_role("link", name="Use it in a product")
    ).to_have_attribute("href", use_it)
    screenshot(page, "media-uploaded")
    # The way on: the download form with the file picked.
    page.locator(".object-tools").get_by_role("link", name="Use in a product").click()
    expect(page.locator("#id_media")).to_have_value(str(media.pk))
    expect(page.locator(".field-media .select2-selection__rendered")).to_contain_text(
        "Field Guide.pdf"
    )
    screenshot(page, "use-in-a-product")

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
    # Paid: no Mark paid, no Cancel; Refund is red.
    tools = page.locator(".object-tools")
    expect(tools.get_by_role("button", name="Mark paid")).to_have_count(0)
    expect(tools.get_by_role("button", name=re.compile("Cancel order"))).to_have_count(0)
    expect(tools.get_by_role("button", name="Refund…")).to_have_css("background-color", DELETE_RED)
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


def test_destructive_buttons_are_red_and_confirm_before_anything_changes(
    live_server, page, screenshot
):
    merchant = factories.StaffFactory(email="merchant@example.com")
    pending = factories.OrderFactory(email="reader@example.com")
    csp_violations = []
    page.on(
        "console",
        lambda message: (
            "Content Security Policy" in message.text and csp_violations.append(message.text)
        ),
    )
    page.goto(live_server.url + "/admin/")
    page.get_by_label("Email address").fill(merchant.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    page.goto(live_server.url + f"/admin/downloads/order/{pending.pk}/change/")
    cancel = page.locator(".object-tools").get_by_role("button", name="Cancel order…")
    expect(cancel).to_have_css("background-color", DELETE_RED)
    expect(page.locator(".object-tools").get_by_role("button", name="Mark paid")).to_be_visible()
    cancel.click()
    # The confirmation page: nothing changed yet; "No" goes back to the order.
    confirm = page.get_by_role("button", name="Yes, cancel")
    expect(confirm).to_have_css("background-color", DELETE_RED)
    screenshot(page, "cancel-confirmation")
    pending.refresh_from_db()
    assert pending.status == "pending"
    page.get_by_role("link", name="No, take me back").click()
    expect(page.locator(".field-status")).to_contain_text("Pending")
    page.locator(".object-tools").get_by_role("button", name="Cancel order…").click()
    page.get_by_role("button", name="Yes, cancel").click()
    expect(page.locator(".messagelist")).to_contain_text("Cancelled 1 order.")
    expect(page.locator(".field-status")).to_contain_text("Cancelled")
    expect(page.locator(".object-tools button")).to_have_count(0)
    screenshot(page, "order-cancelled")
    pending.refresh_from_db()
    assert pending.status == "cancelled"
    assert not csp_violations, csp_violations
