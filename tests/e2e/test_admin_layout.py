"""The back office at 1280 × 800 in headless Chromium: every changelist of the store's models,
with a few realistic rows each (long emails, file names, URLs, every date filled), shows
every column whole (no cell is wider inside than its box, the table is not wider than its
frame, the page does not scroll sideways), and the product page's and the order page's
tables fit. No page logs a Content-Security-Policy violation (an inline style or script).
"""

from datetime import timedelta

import pytest
from django.contrib.admin import site
from django.urls import reverse
from django.utils import timezone

from accounts.services import api_key_create
from downloads.models import (
    Backfill,
    ChannelEvent,
    DownloadVersion,
    Order,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WorkerHeartbeat,
)
from downloads.services.grants import grants_revoke
from downloads.services.orders import LineInput, order_create, order_refund
from tests import factories
from tests.conftest import paid_order

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery"
VIEWPORT = {"width": 1280, "height": 800}

# Measured in the page: every th/td whose content is wider than its box, the table against
# its frame (`.results`, which scrolls sideways when the table is wider), and the page.
MEASURE = """(selector) => {
    const table = document.querySelector(selector);
    if (!table) { return {missing: true}; }
    const frame = table.closest('.results, .tabular, fieldset, .module') || table.parentElement;
    const clipped = [];
    for (const cell of table.querySelectorAll('th, td')) {
        if (cell.offsetParent === null) { continue; }  // hidden (a template row)
        if (cell.scrollWidth > cell.clientWidth + 1) {
            clipped.push(`${cell.className || cell.tagName}: ${cell.innerText.trim().slice(0, 40)}`
                + ` (${cell.scrollWidth} > ${cell.clientWidth})`);
        }
    }
    const content = document.getElementById('content');
    return {
        clipped,
        table: Math.ceil(table.getBoundingClientRect().width),
        frame: frame.clientWidth,
        frameScrolls: frame.scrollWidth > frame.clientWidth + 1,
        contentScrolls: content.scrollWidth > content.clientWidth + 1,
        pageScrolls: document.documentElement.scrollWidth > document.documentElement.clientWidth,
    };
}"""


def problems(measured: dict) -> list[str]:
    if measured.get("missing"):
        return ["no table"]
    found = list(measured["clipped"])
    if measured["table"] > measured["frame"] + 1 or measured["frameScrolls"]:
        found.append(f"table {measured['table']}px in a {measured['frame']}px frame")
    if measured["contentScrolls"]:
        found.append("the content area scrolls sideways")
    if measured["pageScrolls"]:
        found.append("the page scrolls sideways")
    return found


def store_with_a_few_of_everything():
    """A few rows of every model the back office lists, with long, realistic values."""
    staff = factories.StaffFactory(email="merchant@example.com")
    guide = factories.ProductFactory(
        name="The Complete Field Guide to North American Birds",
        sku="FIELD-GUIDE-BIRDS-2ND-EDITION",
        vendor="Northern Lights Publishing House",
    )
    variant = factories.VariantFactory(product=guide, name="Second edition, large print")
    download = factories.DownloadFactory(
        product=guide,
        media=factories.MediaFactory(
            filename="the-complete-field-guide-to-north-american-birds-2nd-edition.pdf"
        ),
        name="Field guide (PDF, large print)",
    )
    factories.LinkDownloadFactory(
        product=guide,
        url="https://cdn.northern-lights-publishing.example.com/audio/field-guide-chapter-01.mp3",
        name="Audio companion, chapter 1",
    )
    software = factories.ProductFactory(
        name="Darkroom Pro", license_keys=True, license_activation_limit=3
    )
    factories.DownloadFactory(product=software)
    orders = []
    for index, email in enumerate(
        [
            "a.very.long.buyer.address.for.testing@northern-lights-publishing.example.com",
            "reader@example.com",
            "shopper.with.a.long.name@example.org",
        ]
    ):
        orders.append(
            order_create(
                email=email,
                lines=[
                    LineInput(product=guide, variant=variant),
                    LineInput(product=software, quantity=2),
                ],
                status="paid",
                send_email=False,
                number=51001 + index,
                external_id=f"54832984{index:05d}",
                channel="shopify",
            )
        )
    order_refund(order=orders[1], line_ids=[orders[1].lines.first().pk])
    order_create(email="pending.buyer@example.com", lines=[LineInput(product=guide)])
    grants = orders[2].grants.all()
    grants_revoke(grants=grants.filter(pk=grants.first().pk))
    for grant in orders[0].grants.all():
        grant.last_downloaded_at = timezone.now()
        grant.expires_at = timezone.now() + timedelta(days=30)
        grant.download_count = 2
        grant.save()
        factories.EventFactory(
            grant=grant,
            user_agent="Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36",
            ip="2001:db8:85a3::8a2e:370:7334",
        )
    paid_order(guide, email="another.customer@example.net")
    for index, order in enumerate(orders):
        ChannelEvent.objects.create(
            channel="shopify",
            event_id=f"b3a9c1f0-6d2e-4c8b-9f1a-{index:012d}",
            type="orders/paid",
            payload={"id": index},
            order=order,
            status="failed" if index else "processed",
            error="No product is mapped to the Shopify product 8012345678901 (variant "
            "44012345678901); map it and process the event again.",
            processed_at=timezone.now(),
        )
    version = DownloadVersion.objects.create(
        download=download,
        media=download.media,
        changelog="Corrected the range maps of the warblers and added forty new photographs.",
        created_by=staff,
    )
    Backfill.objects.create(
        download=download,
        version=version,
        status="done",
        notify_buyers=True,
        cursor=1003,
        orders_seen=3,
        emails_sent=3,
        started_at=timezone.now(),
        finished_at=timezone.now(),
    )
    Backfill.objects.create(download=download, status="running", started_at=timezone.now())
    endpoint = WebhookEndpoint.objects.create(
        url="https://hooks.northern-lights-publishing.example.com/store/webhooks/downloads",
        description="Fulfilment and CRM sync for the publishing house",
        event_types=["order.paid", "order.refunded", "grant.created", "grant.revoked"],
    )
    for event_type in ("order.paid", "grant.created", "license_key.deactivated"):
        delivery = WebhookDelivery.objects.create(
            endpoint=endpoint,
            event_type=event_type,
            payload={"type": event_type},
            attempts=3,
            next_attempt_at=timezone.now(),
            delivered_at=timezone.now(),
        )
        WebhookAttempt.objects.create(delivery=delivery, status_code=503, duration_ms=412)
    for name in ("Storefront sync (read only)", "Fulfilment service, production"):
        api_key_create(name=name, created_by=staff)
    factories.UserFactory(email="a.customer.with.a.long.address@northern-lights.example.com")
    WorkerHeartbeat.objects.create(
        worker_id="worker-7f3c9a1e2b4d4c6e8a0b1c2d3e4f5a6b",
        host="app-server-eu-west-1b.internal.northern-lights.example.com",
        pid=48213,
        started_at=timezone.now(),
        beat_at=timezone.now(),
    )
    return staff, guide


def sign_in(browser, live_server, staff):
    """A signed-in page at 1280 × 800; `page.csp_violations` collects what the browser refused."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.csp_violations = []
    page.on(
        "console",
        lambda message: (
            "Content Security Policy" in message.text
            and page.csp_violations.append(f"{page.url}: {message.text}")
        ),
    )
    page.goto(live_server.url + reverse("admin:login"))
    page.get_by_label("Email address").fill(staff.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(live_server.url + reverse("admin:index"))
    return context, page


def project_changelists() -> list[str]:
    """The admin URL names of every changelist of this project's own models."""
    return sorted(
        f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"
        for model in site._registry
        if model._meta.app_label in ("downloads", "accounts")
    )


def test_no_changelist_column_is_clipped_at_1280_px(browser, live_server, screenshot):
    staff, _ = store_with_a_few_of_everything()
    context, page = sign_in(browser, live_server, staff)
    found = {}
    try:
        for name in project_changelists():
            page.goto(live_server.url + reverse(name))
            rows = page.locator("#result_list tbody tr").count()
            assert rows >= 1, f"{name} lists no rows"
            if bad := problems(page.evaluate(MEASURE, "#result_list")):
                found[name] = bad
                screenshot(page, name.removeprefix("admin:"))
    finally:
        context.close()
    assert not found, found
    assert not page.csp_violations


def test_the_product_pages_downloads_and_variants_tables_fit_at_1280_px(
    browser, live_server, screenshot
):
    staff, guide = store_with_a_few_of_everything()
    context, page = sign_in(browser, live_server, staff)
    try:
        page.goto(live_server.url + reverse("admin:downloads_product_change", args=[guide.pk]))
        page.get_by_role("button", name="Add another Download").click()
        found = {
            group: problems(page.evaluate(MEASURE, f"#{group} table"))
            for group in ("downloads-group", "variants-group")
        }
        screenshot(page, "product-page")
    finally:
        context.close()
    assert found == {"downloads-group": [], "variants-group": []}
    assert not page.csp_violations


def test_the_order_pages_lines_grants_and_keys_tables_fit_at_1280_px(
    browser, live_server, screenshot
):
    staff, _ = store_with_a_few_of_everything()
    order = Order.objects.get(number=51001)  # the longest email, two lines, keys
    context, page = sign_in(browser, live_server, staff)
    try:
        page.goto(live_server.url + reverse("admin:downloads_order_change", args=[order.pk]))
        found = {
            group: problems(page.evaluate(MEASURE, f"#{group} table"))
            for group in ("lines-group", "grants-group", "license_keys-group")
        }
        screenshot(page, "order-page")
    finally:
        context.close()
    assert found == {"lines-group": [], "grants-group": [], "license_keys-group": []}
    assert not page.csp_violations
