"""The buyer's pages: one order by its secret link, the customer's order list."""

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from storages.backends.s3 import S3Storage

from downloads import storage
from downloads.models import LicenseKey, Order
from downloads.services.licences import license_key_activate, license_keys_disable
from downloads.services.orders import LineInput, order_dispute, order_refund
from downloads.services.versions import download_replace_media
from downloads.views.headers import (
    CHECKOUT_CONTENT_SECURITY_POLICY,
    CONTENT_SECURITY_POLICY,
    ORDER_PAGE_CONTENT_SECURITY_POLICY,
)
from tests import factories
from tests.concurrency import at_once

# The order page's reads (selectors.order_get_by_token): the order, its lines (+product,
# variant), its grants (+download, media) and its licence keys, in one statement on
# PostgreSQL, four queries elsewhere.
ORDER_PAGE_QUERIES = 1 if connection.vendor == "postgresql" else 4

pytestmark = pytest.mark.django_db


def order_url(order) -> str:
    return reverse("accounts:order_detail", args=[order.access_token])


def text_of(response) -> str:
    """The page's visible text, whitespace collapsed."""
    html = response.content.decode()
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


class TestOrderPage:
    def test_shows_number_date_lines_files_and_their_downloads(self, client):
        order = factories.paid_order_with_files(lines=3, attached=1)
        response = client.get(order_url(order))
        assert response.status_code == 200
        page = text_of(response)
        assert f"Order #{order.number}" in page
        assert f"Placed on {timezone.localtime(order.placed_at):%-d %B %Y}" in page
        for line in order.lines.all():
            assert line.name in page
            assert line.variant_name in page
            grant = line.grants.get()
            assert grant.download.display_name in page
            # A file is downloaded, an external link visited (every third line's).
            unit = "downloads" if grant.download.media_id else "visits"
            assert f"{grant.download_count} of 10 {unit} used" in page
            assert f'href="/downloads/{grant.token}/"' in response.content.decode()
        assert "Files added to your order" in page
        assert "Unlimited downloads" in page
        assert "External link" in page
        assert "20 bytes" in page  # the media's size

    def test_shows_the_expiry_date(self, client):
        expires = timezone.now() + timedelta(days=30)
        grant = factories.GrantFactory(expires_at=expires)
        page = text_of(client.get(order_url(grant.order)))
        assert f"Available until {timezone.localtime(expires):%-d %B %Y}" in page

    @pytest.mark.parametrize(
        ("state", "reason"),
        [
            ({"download_limit": 3, "download_count": 3}, "Download limit reached"),
            ({"expires_at": timezone.now() - timedelta(days=2)}, "Download period ended"),
            ({"revoked_at": timezone.now()}, "Access revoked"),
        ],
    )
    def test_used_up_expired_or_revoked_files_get_a_disabled_button_with_the_reason(
        self, client, state, reason
    ):
        grant = factories.GrantFactory(**state)
        response = client.get(order_url(grant.order))
        html = response.content.decode()
        assert reason in text_of(response)
        assert f"/downloads/{grant.token}/" not in html
        button = re.search(r"<button[^>]*disabled[^>]*>", html)
        assert button and f'aria-describedby="reason-{grant.pk}"' in button.group(0)
        assert f'id="reason-{grant.pk}"' in html

    def test_a_file_updated_after_payment_says_so(self, client):
        order = factories.paid_order_with_files(lines=2, attached=0)
        first, second = (line.grants.get() for line in order.lines.all())
        first.download.file_updated_at = order.paid_at + timedelta(days=3)
        first.download.save()
        second.download.file_updated_at = order.paid_at - timedelta(days=1)
        second.download.save()
        response = client.get(order_url(order))
        when = timezone.localtime(first.download.file_updated_at)
        assert text_of(response).count("Updated on") == 1
        assert f"Updated on {when:%-d %B %Y}" in text_of(response)

    def test_a_pending_order_says_it_is_awaiting_payment_and_does_not_refresh(self, client):
        order = factories.OrderFactory(status=Order.Status.PENDING)
        factories.OrderLineFactory(order=order)
        response = client.get(order_url(order))
        assert "This order is awaiting payment." in text_of(response)
        assert "Your payment is being confirmed." not in text_of(response)
        assert 'http-equiv="refresh"' not in response.content.decode()

    @pytest.mark.parametrize(
        "token", ["0c732eb6fd9802a0821a9d29888baee8", "x" * 5000, "abc%00def", "%C3%A9"]
    )
    def test_an_unknown_or_malformed_token_is_a_404_page(self, client, token):
        factories.paid_order_with_files(lines=1)
        response = client.get(f"/account/orders/{token}/")
        assert response.status_code == 404
        assert "Order not found" in text_of(response)

    def test_one_buyers_token_never_shows_another_buyers_order(self, client):
        mine = factories.paid_order_with_files(lines=1, email="me@example.com")
        theirs = factories.paid_order_with_files(lines=1, email="them@example.com")
        html = client.get(order_url(mine)).content.decode()
        assert f"#{mine.number}" in html and f"#{theirs.number}" not in html
        for grant in theirs.grants.all():
            assert grant.token not in html

    def test_headers_forbid_caching_framing_and_foreign_resources(self, client):
        order = factories.paid_order_with_files(lines=1)
        response = client.get(order_url(order))
        assert "no-store" in response["Cache-Control"]
        assert "default-src 'none'" in response["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
        assert response["Referrer-Policy"] == "same-origin"
        assert response["X-Frame-Options"] == "DENY"
        assert response["X-Content-Type-Options"] == "nosniff"
        assert "noindex" in response["X-Robots-Tag"]

    def test_the_page_uses_only_its_own_stylesheet_and_labels_its_buttons(self, client):
        order = factories.paid_order_with_files(lines=1)
        html = client.get(order_url(order)).content.decode()
        assert re.findall(r'(?:href|src)="(https?:)?//', html) == []
        assert '<link rel="stylesheet" href="/static/accounts/store.css">' in html
        assert '<html lang="en-us">' in html and 'name="viewport"' in html
        # Each download button names its file for screen readers.
        assert re.search(r'class="visually-hidden"> file \d+\.pdf<', html)

    def test_the_stylesheet_is_found_by_staticfiles(self):
        from django.contrib.staticfiles import finders

        assert finders.find("accounts/store.css")

    def test_the_owner_logged_in_gets_a_link_back_to_their_orders(self, client, customer):
        order = factories.paid_order_with_files(lines=1, email=customer.email)
        client.force_login(customer)
        html = client.get(order_url(order)).content.decode()
        assert "← Your orders" in html

    def test_the_owner_logged_in_costs_only_the_session_and_user_lookups_more(
        self, client, customer, django_assert_num_queries
    ):
        order = factories.paid_order_with_files(lines=10, email=customer.email)
        client.force_login(customer)
        # session, user, then the same reads as for a guest
        with django_assert_num_queries(ORDER_PAGE_QUERIES + 2):
            assert client.get(order_url(order)).status_code == 200

    def test_head_is_answered_and_post_is_405(self, client):
        order = factories.paid_order_with_files(lines=1)
        assert client.head(order_url(order)).status_code == 200
        assert client.post(order_url(order)).status_code == 405

    @pytest.mark.parametrize("lines", [1, 10, 50])
    def test_query_count_is_constant_and_nothing_is_presigned(
        self, client, s3, monkeypatch, django_assert_num_queries, lines
    ):
        order = factories.paid_order_with_files(lines=lines, attached=2)
        presigned = []
        original = storage.presigned_download_url
        monkeypatch.setattr(
            storage, "presigned_download_url", lambda **k: presigned.append(k) or original(**k)
        )
        assert storage.is_s3()
        with django_assert_num_queries(ORDER_PAGE_QUERIES):
            response = client.get(order_url(order))
        assert response.status_code == 200
        assert response.content.decode().count('<li class="file">') == lines + 2
        assert presigned == []


class TestOrderPageReceipt:
    """The order page is the receipt: amounts from the order's rows, in its currency."""

    def test_shows_each_lines_unit_price_quantity_and_total_then_subtotal_tax_and_total(
        self, client, paid_order
    ):
        guide = factories.DownloadFactory(product=factories.ProductFactory(name="Guide")).product
        variant = factories.VariantFactory(name="Commercial licence", price=4900)
        order = paid_order(guide, LineInput(product=variant.product, variant=variant, quantity=2))
        order.tax = 1480
        order.total = order.subtotal + order.tax
        order.save()
        page = text_of(client.get(order_url(order)))
        assert "Guide $25.00 × 1 $25.00" in page
        assert "Commercial licence $49.00 × 2 $98.00" in page
        assert "Subtotal $123.00 Tax $14.80 Total $137.80" in page
        assert "Refunded" not in page

    def test_amounts_are_in_the_orders_currency(self, client, paid_order):
        product = factories.DownloadFactory().product
        order = paid_order(
            LineInput(product=product, quantity=3, price=4900), currency="JPY", tax=735
        )
        page = text_of(client.get(order_url(order)))
        assert "¥4,900 × 3 ¥14,700" in page
        assert "Subtotal ¥14,700 Tax ¥735 Total ¥15,435" in page
        assert "$" not in page

    def test_says_when_and_how_it_was_paid(self, client, paid_order):
        order = paid_order(channel=Order.Channel.STRIPE, payment_method="card")
        Order.objects.filter(pk=order.pk).update(paid_at=datetime(2026, 12, 1, 12, tzinfo=UTC))
        page = text_of(client.get(order_url(order)))
        assert "Paid 1 December 2026 via Stripe Checkout (card)" in page

    def test_without_a_payment_method_names_only_the_channel(self, client, paid_order):
        order = paid_order(channel=Order.Channel.SHOPIFY)
        when = timezone.localtime(order.paid_at)
        page = text_of(client.get(order_url(order)))
        assert f"Paid {when:%-d %B %Y} via Shopify" in page
        assert "via Shopify (" not in page

    def test_a_payment_method_from_a_channel_is_escaped(self, client, paid_order):
        order = paid_order(payment_method="<b>card</b>", channel="shopify")
        html = client.get(order_url(order)).content.decode()
        assert "<b>card</b>" not in html
        assert "via Shopify (&lt;b&gt;card&lt;/b&gt;)" in html

    def test_a_pending_stripe_order_is_being_confirmed_refreshes_itself_and_shows_no_files(
        self, client
    ):
        order = factories.OrderFactory(status=Order.Status.PENDING, channel="stripe", email="")
        grant = factories.GrantFactory(order=order)  # even a stray grant is not offered
        factories.GrantFactory(order=order, line=None)
        response = client.get(order_url(order))
        html, page = response.content.decode(), text_of(response)
        assert "Your payment is being confirmed." in page
        assert '<meta http-equiv="refresh" content="5">' in html
        assert '<li class="file">' not in html
        assert f"/downloads/{grant.token}/" not in html
        assert "Files added to your order" not in page
        assert "Not paid yet." in page
        assert "<script" not in html  # refreshed by the browser, no JavaScript

    def test_a_paid_stripe_order_does_not_refresh(self, client, paid_order):
        order = paid_order(channel=Order.Channel.STRIPE, payment_method="card")
        response = client.get(order_url(order))
        assert 'http-equiv="refresh"' not in response.content.decode()
        assert "Your files are ready." in text_of(response)

    def test_a_cancelled_order_says_so_and_was_not_paid(self, client):
        order = factories.OrderFactory(status=Order.Status.CANCELLED, channel="stripe")
        factories.OrderLineFactory(order=order)
        response = client.get(order_url(order))
        page = text_of(response)
        assert "This order was cancelled." in page
        assert "Not paid: the order was cancelled." in page
        assert 'http-equiv="refresh"' not in response.content.decode()

    def test_a_refunded_order_marks_its_lines_and_shows_the_refunded_total(
        self, client, paid_order
    ):
        product = factories.DownloadFactory().product
        order = order_refund(order=paid_order(LineInput(product=product, quantity=2)))
        when = timezone.localtime(order.refunded_at)
        page = text_of(client.get(order_url(order)))
        assert f"This order was refunded on {when:%-d %B %Y}" in page
        assert "Refunded (all 2)" in page
        assert f"Total $50.00 Refunded on {when:%-d %B %Y} $50.00" in page

    def test_a_partial_refund_marks_the_refunded_units_and_amount(self, client, paid_order):
        product = factories.DownloadFactory().product
        other = factories.DownloadFactory().product
        order = paid_order(LineInput(product=product, quantity=3), other)
        line = order.lines.get(product=product)
        order_refund(order=order, quantities={line.pk: 1}, amount=2500)
        page = text_of(client.get(order_url(order)))
        assert "1 of 3 refunded" in page
        assert "Total $100.00 Refunded $25.00" in page
        assert "Your files are ready." in page  # the order is still paid

    def test_a_disputed_order_says_its_downloads_are_on_hold(self, client, paid_order):
        order = order_dispute(order=paid_order())
        when = timezone.localtime(order.disputed_at)
        page = text_of(client.get(order_url(order)))
        assert f"The payment for this order was disputed on {when:%-d %B %Y}" in page
        assert "Access revoked" in page
        assert "Your files are ready." not in page

    @pytest.mark.parametrize("lines", [1, 10, 50])
    def test_the_receipt_adds_no_queries(self, client, django_assert_num_queries, lines):
        order = factories.paid_order_with_files(lines=lines, attached=1)
        order.lines.update(price=1900, total=3800, quantity=2)
        with django_assert_num_queries(ORDER_PAGE_QUERIES):
            page = text_of(client.get(order_url(order)))
        assert page.count("$19.00 × 2 $38.00") == lines


def licensed(limit=3, days=None, **kwargs):
    """A product that issues licence keys (and has one file)."""
    product = factories.ProductFactory(
        license_keys=True, license_activation_limit=limit, license_expiry_days=days, **kwargs
    )
    factories.DownloadFactory(product=product)
    return product


def csp_directives(policy: str) -> dict:
    """A Content-Security-Policy as {directive: [sources]}."""
    directives = {}
    for part in policy.split(";"):
        name, *sources = part.split()
        directives[name] = sources
    return directives


def key_item(html: str, key: LicenseKey) -> str:
    """The HTML of one key's <li> on the order page."""
    match = re.search(
        rf'<li class="licence-key[^"]*">(?:(?!</li>\s*</ul>\s*</li>).)*?{key.key}.*?</ul>\s*</li>',
        html,
        flags=re.S,
    )
    assert match, f"{key.key} is not on the page"
    return match.group(0)


def key_text(html: str, key: LicenseKey) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", key_item(html, key))).strip()


class TestOrderPageLicenceKeys:
    """Each key under its line: the key (monospace, selectable), its status in words, its
    activations, what is left, its expiry, and a *Copy* button that its own script shows."""

    def test_each_key_shows_its_usage_what_is_left_its_status_and_expiry(self, client, paid_order):
        app = licensed(limit=3, days=365, name="Pixel Studio")
        order = paid_order(LineInput(product=app, quantity=2))
        first, second = order.license_keys.order_by("unit")
        for name in ("Laptop", "Desktop"):
            license_key_activate(key_text=first.key, instance_name=name)
        first.refresh_from_db()
        html = client.get(order_url(order)).content.decode()
        until = timezone.localtime(first.expires_at)
        assert key_text(html, first) == (
            f"{first.key} Copy licence key 1 for Pixel Studio Active 2 of 3 activations used "
            f"1 left Valid until {until:%-d %B %Y}"
        )
        assert key_text(html, second) == (
            f"{second.key} Copy licence key 2 for Pixel Studio Not activated yet "
            f"0 of 3 activations used 3 left Valid until {until:%-d %B %Y}"
        )
        assert "Licence keys" in text_of(client.get(order_url(order)))
        # Monospace and selectable in one click: the key is its own <code> element.
        assert f'<code class="key-text" id="key-{first.pk}">{first.key}</code>' in html
        assert f'<time datetime="{until:%Y-%m-%dT%H:%M:%S}' in html

    def test_an_unlimited_key_that_never_expires(self, client, paid_order):
        order = paid_order(licensed(limit=None))
        key = order.license_keys.get()
        for name in ("Laptop", "Desktop"):
            license_key_activate(key_text=key.key, instance_name=name)
        html = client.get(order_url(order)).content.decode()
        text = key_text(html, key)
        assert "Active 2 activations (unlimited) Never expires" in text
        assert "left" not in text
        assert "Licence key " in text_of(client.get(order_url(order)))  # one key: singular

    def test_one_activation_is_singular(self, client, paid_order):
        order = paid_order(licensed(limit=1))
        key = order.license_keys.get()
        license_key_activate(key_text=key.key, instance_name="Laptop")
        assert "1 of 1 activation used 0 left" in key_text(
            client.get(order_url(order)).content.decode(), key
        )

    def test_an_expired_key_says_so_and_when(self, client, paid_order):
        order = paid_order(licensed(days=30))
        key = order.license_keys.get()
        key.expires_at = timezone.now() - timedelta(days=2)
        key.save()
        text = key_text(client.get(order_url(order)).content.decode(), key)
        when = timezone.localtime(key.expires_at)
        assert f"Expired 0 of 3 activations used Expired on {when:%-d %B %Y}" in text
        assert "left" not in text

    def test_a_refunded_order_shows_its_keys_disabled_refunded(self, client, paid_order):
        order = order_refund(order=paid_order(LineInput(product=licensed(), quantity=2)))
        html = client.get(order_url(order)).content.decode()
        for key in order.license_keys.all():
            text = key_text(html, key)
            assert "Disabled (refunded) 0 of 3 activations used" in text
            assert "left" not in text and "until" not in text and "expires" not in text

    def test_a_partial_refund_disables_only_the_refunded_units(self, client, paid_order):
        order = paid_order(LineInput(product=licensed(), quantity=3))
        order_refund(order=order, quantities={order.lines.get().pk: 1}, amount=2500)
        html = client.get(order_url(order)).content.decode()
        one, two, three = order.license_keys.order_by("unit")
        assert "Not activated yet" in key_text(html, one)
        assert "Not activated yet" in key_text(html, two)
        assert "Disabled (refunded)" in key_text(html, three)

    def test_a_key_disabled_for_another_reason_just_says_disabled(self, client, paid_order):
        order = paid_order(LineInput(product=licensed(), quantity=2))
        first, second = order.license_keys.order_by("unit")
        license_keys_disable(keys=LicenseKey.objects.filter(pk=first.pk))
        html = client.get(order_url(order)).content.decode()
        assert "Disabled 0 of 3" in key_text(html, first)
        assert "refunded" not in key_text(html, first)
        assert "Not activated yet" in key_text(html, second)

    def test_a_disputed_orders_keys_are_disabled_not_refunded(self, client, paid_order):
        order = order_dispute(order=paid_order(licensed()))
        text = key_text(client.get(order_url(order)).content.decode(), order.license_keys.get())
        assert "Disabled 0 of 3" in text and "refunded" not in text

    def test_keys_sit_under_their_own_line_and_a_product_without_keys_shows_none(
        self, client, paid_order
    ):
        app, book = licensed(name="Pixel Studio"), factories.DownloadFactory().product
        order = paid_order(LineInput(product=book), LineInput(product=app))
        html = client.get(order_url(order)).content.decode()
        key = order.license_keys.get()
        sections = re.findall(r'<section class="card".*?</section>', html, flags=re.S)
        book_card, app_card = sections[:2]
        assert key.key in app_card and "licence-key" not in book_card
        assert book.name in book_card and "Pixel Studio" in app_card

    def test_a_licence_product_without_files_shows_its_keys_and_no_empty_notice(
        self, client, paid_order
    ):
        app = factories.ProductFactory(license_keys=True, license_activation_limit=2)
        order = paid_order(app)
        page = text_of(client.get(order_url(order)))
        assert order.license_keys.get().key in page
        assert "This item has no files to download." not in page

    def test_one_buyers_page_never_shows_another_orders_keys(self, client, paid_order):
        app = licensed()
        mine = paid_order(LineInput(product=app, quantity=2), email="me@example.com")
        theirs = paid_order(LineInput(product=app, quantity=3), email="them@example.com")
        html = client.get(order_url(mine)).content.decode()
        assert html.count('<li class="licence-key') == 2
        for key in mine.license_keys.all():
            assert key.key in html
        for key in theirs.license_keys.all():
            assert key.key not in html

    def test_the_copy_button_is_hidden_until_its_own_script_runs(self, client, paid_order):
        order = paid_order(LineInput(product=licensed(), quantity=2))
        html = client.get(order_url(order)).content.decode()
        scripts = re.findall(r"<script\b[^>]*>", html)
        assert scripts == ['<script src="/static/accounts/copy.js" defer>']
        assert "</script>" in html and re.search(r"<script[^>]*>\s*\S+\s*</script>", html) is None
        assert re.search(r"\son[a-z]+=", html) is None  # no inline handlers
        for key in order.license_keys.all():
            button = re.search(rf'<button[^>]*data-copy-target="key-{key.pk}"[^>]*>', html)
            assert button, "a Copy button for every key"
            assert re.search(r"\shidden(\s|>)", button.group(0))
            assert 'type="button"' in button.group(0)
            assert f'data-copy-status="copied-{key.pk}"' in button.group(0)
            status = re.search(rf'<span[^>]*id="copied-{key.pk}"[^>]*>', html).group(0)
            assert 'role="status"' in status and 'aria-live="polite"' in status
            assert f'id="key-{key.pk}"' in html

    def test_a_page_without_keys_loads_no_script(self, client):
        order = factories.paid_order_with_files(lines=2)
        html = client.get(order_url(order)).content.decode()
        assert "<script" not in html and "data-copy-target" not in html

    def test_the_script_is_found_by_staticfiles_and_uses_the_clipboard_or_selects(self):
        from django.contrib.staticfiles import finders

        source = Path(finders.find("accounts/copy.js")).read_text()
        assert "navigator.clipboard.writeText" in source
        assert "selectNodeContents" in source  # the fallback selects the key
        assert "button.hidden = false" in source
        for unsafe in ("eval(", "innerHTML", "new Function", "document.write"):
            assert unsafe not in source

    def test_the_order_page_allows_its_own_scripts_and_nothing_looser(self, client, paid_order):
        order = paid_order(licensed())
        for response in (
            client.get(order_url(order)),
            client.get(order_url(factories.paid_order_with_files(lines=1))),
            client.get("/account/orders/0c732eb6fd9802a0821a9d29888baee8/"),  # its 404
        ):
            policy = response["Content-Security-Policy"]
            assert policy == ORDER_PAGE_CONTENT_SECURITY_POLICY
            directives = csp_directives(policy)
            assert directives["script-src"] == ["'self'"]
            assert directives["default-src"] == ["'none'"]
            # Everything else is the other pages' policy, unchanged.
            others = csp_directives(CONTENT_SECURITY_POLICY)
            assert {k: v for k, v in directives.items() if k != "script-src"} == others
        for loose in ("unsafe-inline", "unsafe-eval", "strict-dynamic", "unsafe-hashes", "*"):
            assert loose not in ORDER_PAGE_CONTENT_SECURITY_POLICY

    def test_the_other_pages_policies_are_unchanged(self, client, customer):
        assert "script-src" not in CONTENT_SECURITY_POLICY
        assert "script-src" not in CHECKOUT_CONTENT_SECURITY_POLICY
        assert client.get("/")["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert client.get(reverse("accounts:login"))["Content-Security-Policy"] == (
            CONTENT_SECURITY_POLICY
        )
        client.force_login(customer)
        assert client.get(reverse("accounts:order_list"))["Content-Security-Policy"] == (
            CONTENT_SECURITY_POLICY
        )

    @pytest.mark.parametrize("lines", [1, 10])
    def test_query_count_is_constant_with_keys(
        self, client, paid_order, django_assert_num_queries, lines
    ):
        order = paid_order(
            *(LineInput(product=licensed(), quantity=2) for _ in range(lines)),
            factories.DownloadFactory().product,
        )
        keys = list(order.license_keys.all())
        assert len(keys) == 2 * lines
        for key in keys[::2]:
            license_key_activate(key_text=key.key, instance_name="Laptop")
        # the order page's reads (each key with whether its unit was refunded)
        with django_assert_num_queries(ORDER_PAGE_QUERIES):
            response = client.get(order_url(order))
        html = response.content.decode()
        assert html.count('<li class="licence-key') == 2 * lines
        assert html.count("1 of 3 activations used") == lines
        assert all(key.key in html for key in keys)


class TestOrderList:
    def test_needs_a_login(self, client):
        response = client.get(reverse("accounts:order_list"))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("accounts:login"))

    def test_lists_the_customers_orders_newest_first_and_no_one_elses(self, client, customer):
        old = factories.paid_order_with_files(
            lines=1, email=customer.email, placed_at=timezone.now() - timedelta(days=9)
        )
        new = factories.paid_order_with_files(lines=2, email=customer.email)
        linked = factories.paid_order_with_files(lines=1, email="old-address@example.com")
        linked.customer = customer
        linked.save()
        other = factories.paid_order_with_files(lines=1, email="someone@example.com")
        client.force_login(customer)
        html = client.get(reverse("accounts:order_list")).content.decode()
        for order in (old, new, linked):
            assert order_url(order) in html
        assert order_url(other) not in html
        assert html.index(f"#{new.number}") < html.index(f"#{old.number}")
        assert new.lines.first().name in html

    def test_shows_each_orders_total_in_its_currency(self, client, customer, paid_order):
        product = factories.DownloadFactory(product=factories.ProductFactory(price=1250)).product
        paid_order(LineInput(product=product, quantity=2), email=customer.email)
        paid_order(
            LineInput(product=product, price=1250), email=customer.email, currency="JPY", tax=100
        )
        client.force_login(customer)
        page = text_of(client.get(reverse("accounts:order_list")))
        assert "$25.00" in page
        assert "¥1,350" in page

    def test_paginates_and_the_query_count_does_not_grow_with_orders(
        self, client, customer, django_assert_num_queries
    ):
        for _ in range(3):
            factories.paid_order_with_files(lines=2, email=customer.email, attached=0)
        client.force_login(customer)
        url = reverse("accounts:order_list")
        # session, user, count, the page's orders, their lines
        with django_assert_num_queries(5):
            assert client.get(url).status_code == 200
        for _ in range(22):
            factories.paid_order_with_files(lines=3, email=customer.email, attached=0)
        with django_assert_num_queries(5):
            response = client.get(url)
        assert response.content.decode().count('class="order-row"') == 20
        assert "Page 1 of 2" in text_of(response)
        assert text_of(client.get(url, {"page": 2})).count("View order") == 5


class TestLoginAndLogout:
    def test_login_page_has_labelled_fields_and_csrf(self, client):
        html = client.get(reverse("accounts:login")).content.decode()
        assert re.search(r'<label for="id_username">Email address</label>', html)
        assert '<label for="id_password">Password</label>' in html
        assert 'name="csrfmiddlewaretoken"' in html

    def test_a_customer_logs_in_with_email_and_lands_on_their_orders(self, client, customer):
        response = client.post(
            reverse("accounts:login"),
            {"username": customer.email.upper(), "password": "correct horse battery"},
        )
        assert response.status_code == 302
        assert response["Location"] == reverse("accounts:order_list")

    def test_a_wrong_password_says_so(self, client, customer):
        response = client.post(
            reverse("accounts:login"), {"username": customer.email, "password": "nope"}
        )
        assert response.status_code == 200
        assert "enter a correct email address and password" in text_of(response)

    def test_logout_is_a_post_with_csrf(self, client, customer):
        client.force_login(customer)
        html = client.get(reverse("accounts:order_list")).content.decode()
        assert f'action="{reverse("accounts:logout")}"' in html
        assert client.post(reverse("accounts:logout")).status_code == 302
        assert client.get(reverse("accounts:order_list")).status_code == 302

    def test_csrf_is_enforced_on_login(self, customer):
        from django.test import Client

        strict = Client(enforce_csrf_checks=True)
        response = strict.post(
            reverse("accounts:login"),
            {"username": customer.email, "password": "correct horse battery"},
        )
        assert response.status_code == 403


class TestBuyersSeeUpdatedFiles:
    def test_the_storefront_json_and_the_order_page_say_updated_on_for_older_orders(
        self, client, paid_order
    ):
        download = factories.DownloadFactory()
        before = paid_order(download.product, email="early@example.com")
        download_replace_media(download=download, media=factories.MediaFactory())
        download.refresh_from_db()
        after = paid_order(download.product, email="late@example.com")

        def storefront_asset(order):
            body = client.get("/api/v2/customer-account-orders", {"id": order.access_token}).json()
            return body["order"]["lines"][0]["assets"][0]["data"]

        assert storefront_asset(before)["updated_at"] == int(download.file_updated_at.timestamp())
        assert "updated_at" not in storefront_asset(after)  # bought the new file already
        page = client.get(f"/account/orders/{before.access_token}/").content.decode()
        assert "Updated on" in page
        page = client.get(f"/account/orders/{after.access_token}/").content.decode()
        assert "Updated on" not in page


class TestBuyersSeeStampedFiles:
    """A personalised PDF says "Stamped with your email" on the order page and `stamped` in
    the storefront JSON, from the download already read (no query of its own)."""

    @staticmethod
    def stamped_product(filename="Guide.pdf", content_type="application/pdf"):
        media = factories.MediaFactory(filename=filename, content_type=content_type)
        return factories.DownloadFactory(media=media, stamp=True).product

    def test_the_order_page_and_the_storefront_say_which_files_are_stamped(
        self, client, paid_order
    ):
        plain = factories.DownloadFactory().product
        zip_stamped = self.stamped_product("Assets.zip", "application/zip")  # not a PDF
        order = paid_order(self.stamped_product(), plain, zip_stamped)
        page = client.get(order_url(order))
        files = re.findall(r'<li class="file">.*?</li>\s*</ul>', page.content.decode(), re.S)
        assert ["Stamped with your email" in html for html in files] == [True, False, False]
        body = client.get("/api/v2/customer-account-orders", {"id": order.access_token}).json()
        stamped = [line["assets"][0]["data"]["stamped"] for line in body["order"]["lines"]]
        assert stamped == [True, False, False]

    @pytest.mark.parametrize("lines", [1, 10])
    def test_saying_stamped_costs_the_order_pages_read_and_the_storefront_no_query(
        self, client, paid_order, django_assert_num_queries, lines
    ):
        from downloads import selectors

        order = paid_order(*(self.stamped_product() for _ in range(lines)))
        # the order page's reads, as for files that are not stamped
        with django_assert_num_queries(ORDER_PAGE_QUERIES):
            read = selectors.order_get_by_token(access_token=order.access_token)
            stamped = [grant.stamped for line in read.lines.all() for grant in line.grants.all()]
        assert stamped == [True] * lines
        page = client.get(order_url(order)).content.decode()
        assert page.count("Stamped with your email") == lines
        # the lines and the grants: one statement on PostgreSQL, two elsewhere
        with django_assert_num_queries(1 if connection.vendor == "postgresql" else 2):
            body = client.get("/api/v2/customer-account-orders", {"id": order.access_token})
        assert all(line["assets"][0]["data"]["stamped"] for line in body.json()["order"]["lines"])


class TestDownloadAll:
    """GET /account/orders/<token>/download-all/: every file the buyer can still download as
    one ZIP, streamed, one download taken from each; and the order page's *Download all*."""

    @staticmethod
    def url(order) -> str:
        return reverse("accounts:order_download_all", args=[order.access_token])

    @staticmethod
    def zip_of(response):
        import io
        import zipfile

        return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))

    @staticmethod
    def order_of(*files, status=Order.Status.PAID):
        """A paid order with one line per file, (filename, content[, grant fields]), or
        ("link", name). Returns (order, grants)."""
        order = factories.OrderFactory(status=status, paid_at=timezone.now())
        grants = []
        for position, (first, second, *rest) in enumerate(files):
            line = factories.OrderLineFactory(order=order, position=position)
            if first == "link":
                download = factories.LinkDownloadFactory(product=line.product, name=second)
            else:
                media = factories.MediaFactory(filename=first, content=second)
                download = factories.DownloadFactory(product=line.product, media=media)
            fields = {"download_limit": 5, **(rest[0] if rest else {})}
            grants.append(
                factories.GrantFactory(order=order, line=line, download=download, **fields)
            )
        return order, grants

    @staticmethod
    def counts(*grants) -> list[int]:
        from downloads.models import DownloadGrant

        return [DownloadGrant.objects.get(pk=grant.pk).download_count for grant in grants]

    @staticmethod
    def served(grant) -> int:
        return grant.events.filter(outcome="served").count()

    def test_streams_the_orders_zip_with_the_exact_bytes_of_each_file_and_takes_one_each(
        self, client
    ):
        order, grants = self.order_of(
            ("Guide.pdf", b"%PDF guide " * 50), ("Track.flac", bytes(range(256)) * 40)
        )
        response = client.get(self.url(order))
        assert response.status_code == 200 and response.streaming
        assert response["Content-Type"] == "application/zip"
        assert response["Content-Disposition"] == storage.content_disposition(
            f"order-{order.number}.zip"
        )
        archive = self.zip_of(response)
        assert archive.namelist() == ["Guide.pdf", "Track.flac"]
        assert archive.read("Guide.pdf") == b"%PDF guide " * 50
        assert archive.read("Track.flac") == bytes(range(256)) * 40
        assert self.counts(*grants) == [1, 1]
        assert [self.served(grant) for grant in grants] == [1, 1]

    def test_is_never_cached_sends_no_referrer_and_says_its_length_up_front(self, client):
        order, _ = self.order_of(("a.pdf", b"a" * 100), ("b.pdf", b"b" * 200))
        response = client.get(self.url(order))
        body = b"".join(response.streaming_content)
        assert int(response["Content-Length"]) == len(body)
        assert response["Cache-Control"] == "private, no-store"
        assert response["Referrer-Policy"] == "no-referrer"
        assert response["X-Robots-Tag"] == "noindex, nofollow"

    def test_files_sharing_a_name_get_unique_names_in_the_zip(self, client):
        order, _ = self.order_of(("Guide.pdf", b"one"), ("Guide.pdf", b"two"))
        archive = self.zip_of(client.get(self.url(order)))
        assert archive.namelist() == ["Guide.pdf", "Guide (2).pdf"]
        assert (archive.read("Guide.pdf"), archive.read("Guide (2).pdf")) == (b"one", b"two")

    def test_used_up_expired_and_revoked_files_are_left_out_and_not_counted(self, client):
        order, grants = self.order_of(
            ("kept.pdf", b"k"),
            ("used.pdf", b"u", {"download_limit": 2, "download_count": 2}),
            ("old.pdf", b"o", {"expires_at": timezone.now() - timedelta(days=1)}),
            ("revoked.pdf", b"r", {"revoked_at": timezone.now()}),
        )
        archive = self.zip_of(client.get(self.url(order)))
        assert archive.namelist() == ["kept.pdf"]
        assert self.counts(*grants) == [1, 2, 0, 0]
        assert [grant.events.count() for grant in grants] == [1, 0, 0, 0]

    def test_external_links_are_listed_in_links_txt_and_each_takes_one_download(self, client):
        order, grants = self.order_of(("a.pdf", b"a"), ("link", "Demo video"))
        archive = self.zip_of(client.get(self.url(order)))
        assert archive.namelist() == ["a.pdf", "Links.txt"]
        assert f"Demo video: {grants[1].download.url}" in archive.read("Links.txt").decode()
        assert self.counts(*grants) == [1, 1]

    def test_head_answers_what_a_get_would_and_takes_and_logs_nothing(self, client):
        from downloads.models import DownloadEvent

        order, grants = self.order_of(("a.pdf", b"a" * 10), ("b.pdf", b"b" * 20))
        head = client.head(self.url(order))
        assert head.status_code == 200 and head.content == b""
        assert self.counts(*grants) == [0, 0]
        assert not DownloadEvent.objects.exists()
        get = client.get(self.url(order))
        assert head["Content-Length"] == get["Content-Length"]
        assert int(head["Content-Length"]) == len(b"".join(get.streaming_content))
        assert head["Content-Disposition"] == get["Content-Disposition"]

    def test_a_second_download_all_takes_one_more_from_each(self, client):
        order, grants = self.order_of(("a.pdf", b"a"), ("b.pdf", b"b"))
        for _ in range(2):
            assert self.zip_of(client.get(self.url(order))).namelist() == ["a.pdf", "b.pdf"]
        assert self.counts(*grants) == [2, 2]

    def test_a_file_with_one_download_left_is_in_the_first_zip_only(self, client):
        order, grants = self.order_of(("last.pdf", b"l", {"download_limit": 1}), ("b.pdf", b"b"))
        assert self.zip_of(client.get(self.url(order))).namelist() == ["last.pdf", "b.pdf"]
        assert self.zip_of(client.get(self.url(order))).namelist() == ["b.pdf"]
        assert self.counts(*grants) == [1, 2]

    def test_nothing_left_is_a_410_page_naming_each_file_and_why(self, client):
        order, grants = self.order_of(
            ("used.pdf", b"u", {"download_limit": 1, "download_count": 1}),
            ("revoked.pdf", b"r", {"revoked_at": timezone.now()}),
        )
        response = client.get(self.url(order))
        assert response.status_code == 410
        page = text_of(response)
        assert "Nothing left to download" in page
        assert "“used.pdf” (used up), “revoked.pdf” (revoked)" in page
        assert f'href="{order_url(order)}"' in response.content.decode()  # back to the order
        assert "default-src 'none'" in response["Content-Security-Policy"]
        assert response["Cache-Control"] == "private, no-store"
        assert self.counts(*grants) == [1, 0]
        assert client.head(self.url(order)).status_code == 410

    def test_an_order_without_files_is_a_410_page_saying_so(self, client):
        order = factories.OrderFactory(status=Order.Status.PAID)
        response = client.get(self.url(order))
        assert response.status_code == 410
        assert f"Order #{order.number} has no files to download." in text_of(response)

    def test_an_order_awaiting_payment_is_a_409_page(self, client):
        order, grants = self.order_of(("a.pdf", b"a"), status=Order.Status.PENDING)
        response = client.get(self.url(order))
        assert response.status_code == 409
        assert "awaiting payment" in text_of(response)
        assert self.counts(*grants) == [0]

    @pytest.mark.parametrize("token", ["nope", "x" * 65, "a\x00b"])
    def test_an_unknown_token_is_the_order_pages_404(self, client, token):
        response = client.get(f"/account/orders/{token}/download-all/")
        assert response.status_code == 404
        assert "Order not found" in text_of(response)

    def test_other_methods_are_405_and_take_nothing(self, client):
        order, grants = self.order_of(("a.pdf", b"a"))
        assert client.post(self.url(order)).status_code == 405
        assert self.counts(*grants) == [0]

    def test_the_log_has_the_clients_address_and_user_agent(self, client):
        order, grants = self.order_of(("a.pdf", b"a"))
        b"".join(client.get(self.url(order), HTTP_USER_AGENT="Zipper/1.0").streaming_content)
        event = grants[0].events.get()
        assert (event.ip, event.user_agent) == ("127.0.0.1", "Zipper/1.0")

    def test_on_s3_the_zip_holds_each_objects_bytes_read_as_a_stream(self, client, s3, monkeypatch):
        from django.core.files.base import ContentFile

        from downloads.services.media import media_create

        order = factories.OrderFactory(status=Order.Status.PAID)
        contents = {"Book — part 1.pdf": b"s3 book " * 4096, "Audio.mp3": b"\xff\xfb" * 3000}
        for filename, content in contents.items():
            media = media_create(file=ContentFile(content), filename=filename)
            line = factories.OrderLineFactory(order=order)
            download = factories.DownloadFactory(product=line.product, media=media)
            factories.GrantFactory(order=order, line=line, download=download)
        # django-storages' files read a whole object into memory: never used here.
        monkeypatch.setattr(S3Storage, "_open", lambda *a, **k: pytest.fail("S3Storage._open"))
        monkeypatch.setattr(storage, "presigned_download_url", lambda **k: pytest.fail("presigned"))
        response = client.get(self.url(order))
        assert response.status_code == 200
        archive = self.zip_of(response)
        assert {name: archive.read(name) for name in archive.namelist()} == contents
        assert sorted(order.grants.values_list("download_count", flat=True)) == [1, 1]

    def test_a_ready_stamped_copy_is_in_the_zip_and_one_being_prepared_is_left_out(
        self, client, paid_order
    ):
        from downloads.models import StampedCopy
        from downloads.services.stamping import stamped_copy_make
        from tests import pdfs

        book = factories.DownloadFactory(
            media=factories.MediaFactory(content=pdfs.book(3), filename="Book.pdf"), stamp=True
        )
        later = factories.DownloadFactory(
            media=factories.MediaFactory(content=pdfs.book(2), filename="Later.pdf"), stamp=True
        )
        plain = factories.DownloadFactory(
            media=factories.MediaFactory(content=b"notes", filename="Notes.txt")
        )
        order = paid_order(book.product, later.product, plain.product)
        copy = stamped_copy_make(
            copy_id=StampedCopy.objects.get(grant__download=book, status="pending").pk
        )
        archive = self.zip_of(client.get(self.url(order)))
        assert archive.namelist() == ["Book.pdf", "Notes.txt"]
        stamped = b"".join(storage.stored_chunks(copy.file.name))
        assert archive.read("Book.pdf") == stamped != pdfs.book(3)
        later_grant = order.grants.get(download=later)
        assert (later_grant.download_count, later_grant.events.count()) == (0, 0)

    def test_only_files_being_prepared_is_a_503_with_retry_after(self, client, paid_order):
        from tests import pdfs

        book = factories.DownloadFactory(
            media=factories.MediaFactory(content=pdfs.book(2), filename="Book.pdf"), stamp=True
        )
        order = paid_order(book.product)
        response = client.get(self.url(order))
        assert response.status_code == 503
        from downloads.views.delivery import PREPARING_RETRY_AFTER

        assert response["Retry-After"] == str(PREPARING_RETRY_AFTER)
        assert "“Book.pdf” (being prepared)" in text_of(response)
        assert order.grants.get().download_count == 0

    # --- The order page's button --------------------------------------------------------------

    def test_the_order_page_offers_download_all_from_two_files_the_buyer_may_download(self, client):
        order, _ = self.order_of(("a.pdf", b"a" * 1000), ("b.pdf", b"b" * 1000), ("link", "L"))
        response = client.get(order_url(order))
        html = response.content.decode()
        assert f'href="{self.url(order)}"' in html
        assert "2 files and a list of 1 link in one ZIP (2.0 KB)" in text_of(response)
        assert "Not included now" not in text_of(response)

    def test_one_file_left_gets_no_download_all_button(self, client):
        order, _ = self.order_of(
            ("a.pdf", b"a"), ("b.pdf", b"b", {"download_limit": 1, "download_count": 1})
        )
        assert self.url(order) not in client.get(order_url(order)).content.decode()

    def test_beside_the_button_the_page_names_the_files_not_included_now(self, client):
        from tests import pdfs

        order, _ = self.order_of(
            ("a.pdf", b"a"),
            ("b.pdf", b"b"),
            ("used.pdf", b"u", {"download_limit": 1, "download_count": 1}),
            ("old.pdf", b"o", {"expires_at": timezone.now() - timedelta(days=1)}),
            ("revoked.pdf", b"r", {"revoked_at": timezone.now()}),
        )
        line = factories.OrderLineFactory(order=order, position=9)
        book = factories.DownloadFactory(
            product=line.product,
            media=factories.MediaFactory(content=pdfs.book(2), filename="Book.pdf"),
            stamp=True,
        )
        factories.GrantFactory(order=order, line=line, download=book)  # no copy made yet
        page = re.sub(r" ([,.])", r"\1", text_of(client.get(order_url(order))))
        assert (
            "Not included now: used.pdf (used up), old.pdf (expired), revoked.pdf (revoked), "
            "Book.pdf (being prepared)."
        ) in page

    def test_the_button_adds_no_query_to_the_order_page(self, client, django_assert_num_queries):
        order = factories.paid_order_with_files(lines=10, attached=2)
        # the order page's reads, as without the button
        with django_assert_num_queries(ORDER_PAGE_QUERIES):
            html = client.get(order_url(order)).content.decode()
        assert f'href="{self.url(order)}"' in html

    def test_an_order_awaiting_payment_shows_no_button(self, client):
        order, _ = self.order_of(("a.pdf", b"a"), ("b.pdf", b"b"), status=Order.Status.PENDING)
        assert self.url(order) not in client.get(order_url(order)).content.decode()

    # --- Concurrency, through the real endpoint ------------------------------------------------

    @pytest.mark.postgres
    @pytest.mark.django_db(transaction=True)
    def test_twenty_parallel_download_alls_with_seven_left_put_the_file_in_exactly_seven(
        self, postgres_only, live_server
    ):
        import io
        import zipfile

        import requests

        order, (limited, unlimited) = self.order_of(
            ("Seven.pdf", b"seven " * 100, {"download_limit": 10, "download_count": 3}),
            ("Always.pdf", b"always", {"download_limit": None}),
        )
        url = live_server.url + self.url(order)

        def fetch(session):
            with session:
                response = session.get(url, timeout=60)
            assert response.status_code == 200
            archive = zipfile.ZipFile(io.BytesIO(response.content))
            assert archive.testzip() is None
            return archive.namelist()

        names = at_once(20, fetch, setup=lambda _: requests.Session(), timeout=90)
        assert len(names) == 20
        assert sum("Seven.pdf" in zip_names for zip_names in names) == 7
        assert all("Always.pdf" in zip_names for zip_names in names)
        assert self.counts(limited, unlimited) == [10, 20]
        assert self.served(limited) == 7
        assert limited.events.filter(outcome="limit_reached").count() <= 13


class TestBuyersWords:
    """Counts in the buyer's words: one download, two downloads; one day left, five days
    left; a link is opened (visited), a file downloaded."""

    def test_one_download_is_singular_and_more_are_plural(self, client):
        one = factories.GrantFactory(download_limit=1)
        factories.GrantFactory(order=one.order, line=None, download_limit=2)
        page = text_of(client.get(order_url(one.order)))
        assert "0 of 1 download used" in page
        assert "0 of 2 downloads used" in page
        assert "1 downloads" not in page

    @pytest.mark.parametrize(
        ("left", "words"),
        [
            (timedelta(days=1, hours=2), "(1 day left)"),
            (timedelta(days=5, hours=2), "(5 days left)"),
            (timedelta(hours=3), "(less than a day left)"),
        ],
    )
    def test_the_days_left_before_a_file_expires_are_counted_in_words(self, client, left, words):
        grant = factories.GrantFactory(expires_at=timezone.now() + left)
        page = text_of(client.get(order_url(grant.order)))
        until = f"{timezone.localtime(grant.expires_at):%-d %B %Y}"
        assert f"Available until {until} {words}" in page

    def test_an_expired_or_used_up_file_says_no_days_left(self, client):
        grant = factories.GrantFactory(
            expires_at=timezone.now() + timedelta(days=3), download_limit=1, download_count=1
        )
        assert "left)" not in text_of(client.get(order_url(grant.order)))

    def test_an_external_link_is_opened_and_a_file_downloaded(self, client):
        link = factories.GrantFactory(
            download=factories.LinkDownloadFactory(name="Course videos"), download_limit=1
        )
        file = factories.GrantFactory(order=link.order, line=None, download_limit=None)
        html = client.get(order_url(link.order)).content.decode()
        rows = dict(
            (("link" if "Course videos" in row else "file"), text_of_html(row))
            for row in re.findall(r'<li class="file">.*?</li>\s*</ul>.*?</li>', html, re.S)
        )
        assert "Open link Course videos" in rows["link"]
        assert "0 of 1 visit used" in rows["link"] and "External link" in rows["link"]
        assert "Download" not in rows["link"].replace("Download limit", "")
        assert f"Download {file.download.display_name}" in rows["file"]
        assert "Unlimited downloads" in rows["file"]

    def test_a_used_up_link_has_a_disabled_open_button(self, client):
        link = factories.GrantFactory(
            download=factories.LinkDownloadFactory(), download_limit=2, download_count=2
        )
        html = client.get(order_url(link.order)).content.decode()
        button = re.search(r"<button[^>]*disabled[^>]*>(.*?)</button>", html, re.S)
        assert button and button.group(1).startswith("Open link")
        assert "2 of 2 visits used" in text_of_html(html)

    def test_a_file_updated_after_payment_says_what_changed(self, client, paid_order):
        download = factories.DownloadFactory()
        order = paid_order(download.product)
        download_replace_media(
            download=download, media=factories.MediaFactory(), changelog="Fixed chapter 3"
        )
        download_replace_media(
            download=download, media=factories.MediaFactory(), changelog="Added an index <b>"
        )
        download.refresh_from_db()
        response = client.get(order_url(order))
        when = f"{timezone.localtime(download.file_updated_at):%-d %B %Y}"
        # The newest version's line, escaped.
        assert re.search(rf"Updated on {when} ?: Added an index &lt;b&gt;", text_of(response))
        assert "Fixed chapter 3" not in text_of(response)

    def test_a_version_without_a_changelog_says_only_when(self, client, paid_order):
        download = factories.DownloadFactory()
        order = paid_order(download.product)
        download_replace_media(download=download, media=factories.MediaFactory())
        download.refresh_from_db()
        when = f"{timezone.localtime(download.file_updated_at):%-d %B %Y}"
        page = text_of(client.get(order_url(order)))
        assert f"Updated on {when}" in page and not re.search(rf"Updated on {when} ?:", page)

    @pytest.mark.parametrize("lines", [1, 10])
    def test_the_changelog_costs_no_query(
        self, client, paid_order, django_assert_num_queries, lines
    ):
        downloads = [factories.DownloadFactory() for _ in range(lines)]
        order = paid_order(*(download.product for download in downloads))
        for download in downloads:
            for n in (1, 2):
                download_replace_media(
                    download=download, media=factories.MediaFactory(), changelog=f"v{n}"
                )
        # the order page's reads (each grant with its changelog)
        with django_assert_num_queries(ORDER_PAGE_QUERIES):
            page = text_of(client.get(order_url(order)))
        assert page.count(": v2") == lines and ": v1" not in page


def text_of_html(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


class TestOrderBadge:
    """The badge says how the order stands: paid, partly refunded, refunded (the rule:
    selectors.order_payment_state), on the order page and in the order list."""

    @staticmethod
    def badge(html: str) -> str:
        match = re.search(r'<span class="badge badge-([a-z_]+)">([^<]*)</span>', html)
        assert match
        return f"{match.group(1)}: {match.group(2)}"

    def test_one_line_refunded_is_partly_refunded(self, client, customer, paid_order):
        order = paid_order(factories.DownloadFactory().product, email=customer.email)
        assert self.badge(client.get(order_url(order)).content.decode()) == "paid: Paid"
        second = factories.DownloadFactory().product
        order = paid_order(factories.DownloadFactory().product, second, email=customer.email)
        order_refund(order=order, line_ids=[order.lines.get(product=second).pk])
        expected = "partly_refunded: Partly refunded"
        assert self.badge(client.get(order_url(order)).content.decode()) == expected
        client.force_login(customer)
        rows = client.get(reverse("accounts:order_list")).content.decode().split("order-row")
        row = next(row for row in rows if f"#{order.number}" in row)
        assert self.badge(row) == expected

    def test_an_amount_refunded_is_partly_refunded_and_all_of_it_refunded(self, client, paid_order):
        order = paid_order(factories.DownloadFactory().product)  # $25.00
        order_refund(order=order, amount=500)
        assert "Partly refunded" in self.badge(client.get(order_url(order)).content.decode())
        order_refund(order=order, amount=2000)
        assert self.badge(client.get(order_url(order)).content.decode()) == "refunded: Refunded"

    def test_a_refunded_order_says_refunded(self, client, paid_order):
        order = order_refund(order=paid_order(factories.DownloadFactory().product))
        assert self.badge(client.get(order_url(order)).content.decode()) == "refunded: Refunded"

    def test_the_partly_refunded_badge_has_its_own_colours(self):
        from django.contrib.staticfiles import finders

        css = Path(finders.find("accounts/store.css")).read_text()
        assert re.search(r"\.badge-partly_refunded \{[^}]*background", css)

    def test_the_badges_cost_the_order_list_no_query(
        self, client, customer, paid_order, django_assert_num_queries
    ):
        for _ in range(3):
            order = paid_order(
                factories.DownloadFactory().product,
                factories.DownloadFactory().product,
                email=customer.email,
            )
            order_refund(order=order, line_ids=[order.lines.first().pk])
        client.force_login(customer)
        # session, user, count, the page's orders, their lines
        with django_assert_num_queries(5):
            html = client.get(reverse("accounts:order_list")).content.decode()
        assert html.count("Partly refunded") == 3


class TestTheWayBackFromADownload:
    """A refusal page (410) links back to the order page for whoever holds it: a guest whose
    browser opened it (a signed cookie the order page sets) as well as one who came from it
    (Referer) or its logged-in owner; a shared download link alone shows no order link, and
    never sends a guest to the sign-in page as if it were their orders."""

    @staticmethod
    def used_up(**fields):
        return factories.GrantFactory(download_limit=1, download_count=1, **fields)

    def test_a_guest_who_opened_the_order_page_gets_a_link_back_to_it(self, client):
        grant = self.used_up()
        assert client.get(order_url(grant.order)).status_code == 200
        response = client.get(f"/downloads/{grant.token}/")  # no Referer: a bookmark, a retry
        assert response.status_code == 410
        html = response.content.decode()
        assert f'href="{order_url(grant.order)}"' in html
        assert "Back to your order" in html and "Go to your orders" not in html

    def test_the_cookie_is_signed_http_only_and_lists_the_orders_not_their_tokens(self, client):
        first, second = self.used_up(), self.used_up()
        client.get(order_url(first.order))
        response = client.get(order_url(second.order))
        cookie = response.cookies["order_pages"]
        assert cookie["httponly"] and cookie["samesite"] == "Lax"
        assert first.order.access_token not in cookie.value
        for grant in (first, second):
            assert (
                order_url(grant.order) in client.get(f"/downloads/{grant.token}/").content.decode()
            )

    def test_a_guest_with_only_the_download_link_gets_no_order_link_and_no_sign_in_trap(
        self, client
    ):
        grant = self.used_up()
        response = client.get(f"/downloads/{grant.token}/")
        html = response.content.decode()
        assert response.status_code == 410
        assert grant.order.access_token not in html
        assert "Go to your orders" not in html
        assert "Open your order page from the link in your order email" in text_of(response)
        assert f'<a href="{reverse("accounts:login")}">Sign in</a> to see all your orders' in html

    def test_a_forged_cookie_gets_no_order_link(self, client):
        grant = self.used_up()
        client.cookies["order_pages"] = str(grant.order.pk).replace("-", "")
        html = client.get(f"/downloads/{grant.token}/").content.decode()
        assert grant.order.access_token not in html

    def test_another_orders_page_does_not_open_this_one(self, client):
        grant, other = self.used_up(), self.used_up()
        client.get(order_url(other.order))
        assert (
            grant.order.access_token
            not in client.get(f"/downloads/{grant.token}/").content.decode()
        )

    def test_a_signed_in_buyer_who_is_not_the_owner_keeps_the_orders_list(self, client, customer):
        grant = self.used_up()
        client.force_login(customer)
        html = client.get(f"/downloads/{grant.token}/").content.decode()
        assert grant.order.access_token not in html
        assert f'href="{reverse("accounts:order_list")}"' in html and "Go to your orders" in html

    def test_the_order_not_found_page_offers_a_guest_to_sign_in_by_that_name(self, client):
        page = text_of(client.get("/account/orders/0c732eb6fd9802a0821a9d29888baee8/"))
        assert "Sign in to see your orders" in page and "Go to your orders" not in page

    @pytest.mark.parametrize(
        ("limit", "link", "words"),
        [
            (1, False, "You have used your 1 download of"),
            (3, False, "You have used all 3 downloads of"),
            (1, True, "You have used your 1 visit of"),
            (2, True, "You have used all 2 visits of"),
        ],
    )
    def test_the_410_page_counts_in_words(self, client, limit, link, words):
        download = factories.LinkDownloadFactory() if link else factories.DownloadFactory()
        grant = factories.GrantFactory(
            download=download, download_limit=limit, download_count=limit
        )
        page = text_of(client.get(f"/downloads/{grant.token}/"))
        assert f"{words} “{download.display_name}”" in page
        assert "all 1 downloads" not in page
