"""A buyer in headless Chromium: the order page by its link, downloads until the limit,
copying licence keys, and signing in to the order list."""

import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from downloads.models import DownloadEvent, Order
from downloads.services.licences import license_key_activate
from downloads.services.orders import LineInput
from tests import factories
from tests.conftest import paid_order

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


def csp_violations(page) -> list[str]:
    """Every console message about the Content Security Policy from now on (Chromium logs
    each violation, e.g. "Refused to execute inline script because it violates …")."""
    seen: list[str] = []
    page.on(
        "console",
        lambda message: "Content Security Policy" in message.text and seen.append(message.text),
    )
    return seen


def test_buyer_copies_a_licence_key_with_the_copy_button(live_server, page, screenshot):
    app = factories.ProductFactory(
        name="Pixel Studio", license_keys=True, license_activation_limit=3
    )
    factories.DownloadFactory(product=app)
    order = paid_order(LineInput(product=app, quantity=2), email="maker@example.com")
    first, second = order.license_keys.order_by("unit")
    for name in ("Laptop", "Desktop"):
        license_key_activate(key_text=first.key, instance_name=name)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    violations, errors = csp_violations(page), []
    page.on("pageerror", lambda error: errors.append(str(error)))

    page.goto(live_server.url + reverse("accounts:order_detail", args=[order.access_token]))
    row = page.locator("li.licence-key", has_text=first.key)
    expect(row.locator("code.key-text")).to_have_text(first.key)
    for words in ("Active", "2 of 3 activations used", "1 left", "Never expires"):
        expect(row).to_contain_text(words)
    expect(page.locator("li.licence-key", has_text=second.key)).to_contain_text("Not activated yet")
    status = row.get_by_role("status")
    expect(status).to_have_attribute("aria-live", "polite")
    expect(status).to_have_text("")
    button = row.get_by_role("button", name=re.compile(r"^Copy licence key 1 for Pixel Studio"))
    expect(button).to_be_visible()  # the script took the `hidden` attribute off

    button.click()
    expect(status).to_have_text("Copied")
    expect(button).to_have_class(re.compile(r"\bis-copied\b"))
    assert page.evaluate("navigator.clipboard.readText()") == first.key
    screenshot(page, "key-copied")

    other = page.locator("li.licence-key", has_text=second.key)
    other.get_by_role("button", name=re.compile("^Copy")).click()
    expect(other.get_by_role("status")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == second.key
    expect(status).to_have_text("", timeout=8_000)  # "Copied" clears itself

    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "keys-phone")
    assert violations == [] and errors == []
    # The watch works and the policy is strict: an inline script is refused and reported.
    page.evaluate(
        "document.head.appendChild(Object.assign(document.createElement('script'),"
        " {textContent: 'window.inlineRan = true'}))"
    )
    expect(page.locator("body")).to_be_visible()
    page.wait_for_timeout(200)
    assert page.evaluate("window.inlineRan === undefined")
    assert any("inline script" in text for text in violations)


def test_without_javascript_the_key_is_selectable_and_no_copy_button_shows(live_server, browser):
    app = factories.ProductFactory(license_keys=True, license_activation_limit=None)
    order = paid_order(app)
    key = order.license_keys.get()
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(live_server.url + reverse("accounts:order_detail", args=[order.access_token]))
        row = page.locator("li.licence-key")
        expect(row).to_contain_text("0 activations (unlimited)")
        expect(row.get_by_role("button", name=re.compile("^Copy"))).to_be_hidden()
        code = row.locator("code.key-text")
        expect(code).to_have_text(key.key)
        expect(code).to_have_css("user-select", "all")  # one click selects the whole key
        expect(code).to_have_css("font-family", re.compile("monospace"))
    finally:
        context.close()


def test_buyer_downloads_all_files_as_one_zip_from_the_order_page(live_server, page, screenshot):
    import io
    import zipfile

    order = factories.paid_order_with_files(lines=2, attached=0, email="reader@example.com")
    guide, sheet = (line.grants.get() for line in order.lines.order_by("position"))
    for grant, name in ((guide, "Guide.pdf"), (sheet, "Sheet.pdf")):
        grant.download.media = factories.MediaFactory(
            content=CONTENT + name.encode(), filename=name
        )
        grant.download.save()
    used = factories.DownloadFactory(
        product=None, media=factories.MediaFactory(filename="Used.pdf")
    )
    factories.GrantFactory(
        order=order, line=None, download=used, download_limit=1, download_count=1
    )

    page.goto(live_server.url + reverse("accounts:order_detail", args=[order.access_token]))
    box = page.locator(".download-all")
    expect(box).to_contain_text("2 files in one ZIP")
    expect(box).to_contain_text(re.compile(r"Not included now:\s*Used\.pdf \(used up\)"))
    screenshot(page, "download-all")
    with page.expect_download() as info:
        box.get_by_role("link", name="Download all").click()
    download = info.value
    assert download.suggested_filename == f"order-{order.number}.zip"
    with open(download.path(), "rb") as delivered:
        archive = zipfile.ZipFile(io.BytesIO(delivered.read()))
    assert archive.namelist() == ["Guide.pdf", "Sheet.pdf"]
    assert archive.read("Guide.pdf") == CONTENT + b"Guide.pdf"
    assert archive.read("Sheet.pdf") == CONTENT + b"Sheet.pdf"

    page.reload()
    expect(page.locator("li.file", has_text="Guide.pdf")).to_contain_text("1 of 10 downloads used")
    expect(page.locator("li.file", has_text="Sheet.pdf")).to_contain_text("2 of 10 downloads used")
    assert DownloadEvent.objects.filter(grant__order=order, outcome="served").count() == 2


def test_a_guest_back_from_a_used_up_download_link_finds_their_order_page(
    live_server, page, browser, screenshot
):
    order = factories.paid_order_with_files(lines=1, attached=0, email="guest@example.com")
    grant = order.lines.get().grants.get()
    grant.download_limit, grant.download_count = 1, 1
    grant.save()
    order_page = live_server.url + reverse("accounts:order_detail", args=[order.access_token])
    download_url = live_server.url + reverse("downloads:download", args=[grant.token])

    # Days later, from the browser's download list: no Referer, no session.
    page.goto(order_page)
    expect(page.get_by_role("heading", name=f"Order #{order.number}")).to_be_visible()
    response = page.goto(download_url)
    assert response.status == 410
    expect(page.get_by_role("heading", name="Download limit reached")).to_be_visible()
    expect(page.locator("main")).to_contain_text("You have used your 1 download of")
    expect(page.get_by_role("link", name="Go to your orders")).to_have_count(0)
    screenshot(page, "refused-back-to-order")
    page.get_by_role("link", name="Back to your order").click()
    expect(page).to_have_url(order_page)
    expect(page.get_by_role("heading", name=f"Order #{order.number}")).to_be_visible()

    # The same link in another browser (it was shared): no way into the order.
    context = browser.new_context()
    try:
        other = context.new_page()
        assert other.goto(download_url).status == 410
        expect(other.get_by_role("link", name="Back to your order")).to_have_count(0)
        expect(other.locator("main")).to_contain_text("link in your order email")
        expect(other.locator("main").get_by_role("link", name="Sign in")).to_be_visible()
        assert order.access_token not in other.content()
    finally:
        context.close()


def test_the_order_page_names_links_refunds_and_what_changed(live_server, page, screenshot):
    from downloads.services.orders import order_refund
    from downloads.services.versions import download_replace_media

    guide = factories.DownloadFactory(media=factories.MediaFactory(filename="Guide.pdf"))
    course = factories.LinkDownloadFactory(name="Video course")
    order = paid_order(guide.product, course.product, email="reader@example.com")
    download_replace_media(
        download=guide, media=factories.MediaFactory(filename="Guide.pdf"), changelog="New map"
    )
    order_refund(order=order, line_ids=[order.lines.get(product=course.product).pk])
    link = factories.LinkDownloadFactory(product=None, name="Live session")
    factories.GrantFactory(order=order, line=None, download=link, download_limit=1)

    page.goto(live_server.url + reverse("accounts:order_detail", args=[order.access_token]))
    expect(page.locator(".order-meta .badge")).to_have_text("Partly refunded")
    guide_row = page.locator("li.file", has_text="Guide.pdf")
    expect(guide_row).to_contain_text(re.compile(r"Updated on \d+ \w+ \d{4}: New map"))
    expect(guide_row.get_by_role("link", name=re.compile("^Download Guide.pdf"))).to_be_visible()
    link_row = page.locator("li.file", has_text="Live session")
    expect(link_row).to_contain_text("0 of 1 visit used")
    expect(link_row.get_by_role("link", name=re.compile("^Open link Live session"))).to_be_visible()
    expect(link_row.get_by_role("link", name=re.compile("Download"))).to_have_count(0)
    screenshot(page, "order-page-words")
