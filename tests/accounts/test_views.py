"""The buyer's pages: one order by its secret link, the customer's order list."""

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
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
            assert f"{grant.download_count} of 10 downloads used" in page
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
        assert '<html lang="en">' in html and 'name="viewport"' in html
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
        # session, user, then the same 5 as for a guest
        with django_assert_num_queries(7):
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
        original = S3Storage.url
        monkeypatch.setattr(
            S3Storage, "url", lambda self, *a, **k: presigned.append(a) or original(self, *a, **k)
        )
        assert storage.is_s3()
        # order, lines (+product, variant), the lines' grants (+download, media), the lines'
        # licence keys, order grants
        with django_assert_num_queries(5):
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
        # order, lines (+product, variant), the lines' grants (+download, media), the lines'
        # licence keys, order grants
        with django_assert_num_queries(5):
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
        # order, lines (+product, variant), the lines' grants (+download, media), the lines'
        # licence keys (+ whether their unit was refunded), order grants
        with django_assert_num_queries(5):
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
