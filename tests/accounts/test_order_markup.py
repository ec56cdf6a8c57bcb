"""The order page's markup made in Python (accounts/order_markup.py): a file's row, a licence
key's row, a line's card, the *Download all* notice and the receipt, in every state, are the
HTML the page's templates made (written out here), escaped, localised and pluralised as
templates do."""

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse, set_script_prefix
from django.utils import timezone, translation

from accounts.order_markup import OrderMarkup
from downloads import selectors
from downloads.models import DownloadGrant, LicenseKey, Order
from downloads.services import bundles
from downloads.services.licences import license_key_activate, license_keys_disable
from downloads.services.orders import order_refund
from downloads.services.versions import download_replace_media
from tests import factories

pytestmark = pytest.mark.django_db

EVIL = "<b>&\"'</b>"
ESCAPED = "&lt;b&gt;&amp;&quot;&#x27;&lt;/b&gt;"


def as_page_reads(order: Order) -> Order:
    """The order as the page gets it (selectors.order_get_by_token: prefetched, annotated)."""
    return selectors.order_get_by_token(access_token=order.access_token)


def file_row(grant: DownloadGrant) -> str:
    """The row of this grant's file, from the order read as the page reads it."""
    order = as_page_reads(grant.order)
    grants = [g for line in order.lines.all() for g in line.grants.all()] + order.order_grants
    return OrderMarkup(order).file(next(g for g in grants if g.pk == grant.pk))


def day(moment) -> str:
    local = timezone.localtime(moment)
    return f"{local.day} {local:%B} {local.year}"


def row(*, kind, name, size, used, expiry, stamped="", updated="", action) -> str:
    """A file's row, byte for byte as the former include templates/accounts/_file.html made it."""
    return (
        '\n<li class="file">\n'
        f'  <span class="file-icon" aria-hidden="true">{kind}</span>\n'
        "  <div>\n"
        f'    <p class="file-name">{name}</p>\n'
        '    <ul class="file-meta">\n'
        f"      <li>{size}</li>\n"
        f'      <li class="downloads-used">{used}</li>\n'
        f'      <li class="expiry">{expiry}</li>\n'
        f"      {stamped}\n"
        f"      {updated}\n"
        "    </ul>\n"
        "  </div>\n"
        '  <div class="file-action">\n'
        f"    {action}\n"
        "  </div>\n"
        "</li>\n\n"
    )


def download_link(grant, label, name) -> str:
    return (
        f'\n      <a class="button" href="/downloads/{grant.token}/" rel="nofollow">{label}'
        f'<span class="visually-hidden"> {name}</span></a>\n    '
    )


def disabled_button(grant, label, name, reason) -> str:
    return (
        f'\n      <button type="button" class="button" disabled aria-describedby="reason-{grant.pk}">'
        f'{label}<span class="visually-hidden"> {name}</span></button>\n'
        f'      <p class="file-reason" id="reason-{grant.pk}">{reason}</p>\n    '
    )


def a_file(*, filename="guide.pdf", byte_size=2048, name="", **grant_fields) -> DownloadGrant:
    media = factories.MediaFactory(filename=filename, byte_size=byte_size)
    order = factories.OrderFactory(status=Order.Status.PAID, paid_at=timezone.now())
    line = factories.OrderLineFactory(order=order)
    download = factories.DownloadFactory(product=line.product, media=media, name=name)
    return factories.GrantFactory(order=order, line=line, download=download, **grant_fields)


def a_link(**grant_fields) -> DownloadGrant:
    order = factories.OrderFactory(status=Order.Status.PAID, paid_at=timezone.now())
    line = factories.OrderLineFactory(order=order)
    download = factories.LinkDownloadFactory(product=line.product, name="Soundtrack")
    return factories.GrantFactory(order=order, line=line, download=download, **grant_fields)


class TestFileRow:
    def test_a_file_that_can_be_downloaded_shows_kind_name_size_count_and_its_download_link(self):
        grant = a_file(download_limit=5, download_count=2)
        assert file_row(grant) == row(
            kind="PDF",
            name="guide.pdf",
            size="2.0\xa0KB",
            used="2 of 5 downloads used",
            expiry="Never expires",
            action=download_link(grant, "Download", "guide.pdf"),
        )

    def test_a_link_is_visited_and_opened_rather_than_downloaded(self):
        grant = a_link(download_limit=3, download_count=1)
        assert file_row(grant) == row(
            kind="LINK",
            name="Soundtrack",
            size="External link",
            used="1 of 3 visits used",
            expiry="Never expires",
            action=download_link(grant, "Open link", "Soundtrack"),
        )

    @pytest.mark.parametrize(
        ("make", "used", "label", "kind", "name", "size"),
        [
            (a_file, "Unlimited downloads", "Download", "PDF", "guide.pdf", "2.0\xa0KB"),
            (a_link, "Unlimited visits", "Open link", "LINK", "Soundtrack", "External link"),
        ],
    )
    def test_an_unlimited_file_or_link_says_so(self, make, used, label, kind, name, size):
        grant = make(download_limit=None, download_count=40)
        assert file_row(grant) == row(
            kind=kind,
            name=name,
            size=size,
            used=used,
            expiry="Never expires",
            action=download_link(grant, label, name),
        )

    @pytest.mark.parametrize(
        ("fields", "reason"),
        [
            ({"download_limit": 3, "download_count": 3}, "Download limit reached"),
            ({"download_limit": 2, "download_count": 3}, "Download limit reached"),
            ({"revoked_at": timezone.now()}, "Access revoked"),
            ({"revoked_at": timezone.now(), "download_count": 5}, "Access revoked"),
        ],
    )
    def test_a_refused_file_gets_a_disabled_button_and_its_reason(self, fields, reason):
        grant = a_file(**{"download_limit": 5, **fields})
        used = f"{grant.download_count} of {grant.download_limit} downloads used"
        assert file_row(grant) == row(
            kind="PDF",
            name="guide.pdf",
            size="2.0\xa0KB",
            used=used,
            expiry="Never expires",
            action=disabled_button(grant, "Download", "guide.pdf", reason),
        )

    def test_an_expired_file_says_when_it_expired_and_counts_no_days(self):
        expired = timezone.now() - timedelta(days=2)
        grant = a_file(expires_at=expired, download_count=0)
        assert file_row(grant) == row(
            kind="PDF",
            name="guide.pdf",
            size="2.0\xa0KB",
            used="0 of 5 downloads used",
            expiry=f'Expired on <time datetime="{expired.isoformat()}">{day(expired)}</time>',
            action=disabled_button(grant, "Download", "guide.pdf", "Download period ended"),
        )

    def test_a_revoked_file_with_an_expiry_says_until_when_and_counts_no_days(self):
        later = timezone.now() + timedelta(days=4)
        grant = a_file(expires_at=later, revoked_at=timezone.now())
        assert file_row(grant) == row(
            kind="PDF",
            name="guide.pdf",
            size="2.0\xa0KB",
            used="0 of 5 downloads used",
            expiry=f'Available until <time datetime="{later.isoformat()}">{day(later)}</time>',
            action=disabled_button(grant, "Download", "guide.pdf", "Access revoked"),
        )

    @pytest.mark.parametrize(
        ("left", "words"),
        [
            (timedelta(hours=1), "(less than a day left)"),
            (timedelta(days=1, hours=1), "(1 day left)"),
            (timedelta(days=2, hours=1), "(2 days left)"),
        ],
    )
    def test_an_available_file_with_an_expiry_counts_its_days_left(self, left, words):
        expires = timezone.now() + left
        grant = a_file(expires_at=expires)
        available = f'Available until <time datetime="{expires.isoformat()}">{day(expires)}</time>'
        assert file_row(grant) == row(
            kind="PDF",
            name="guide.pdf",
            size="2.0\xa0KB",
            used="0 of 5 downloads used",
            expiry=f'{available} <span class="days-left">{words}</span>',
            action=download_link(grant, "Download", "guide.pdf"),
        )

    @pytest.mark.parametrize(
        ("limit", "count", "words"),
        [(1, 0, "0 of 1 download used"), (2, 1, "1 of 2 downloads used")],
    )
    def test_downloads_used_are_singular_for_one_and_plural_for_two(self, limit, count, words):
        grant = a_file(download_limit=limit, download_count=count)
        assert f'<li class="downloads-used">{words}</li>' in file_row(grant)

    @pytest.mark.parametrize(
        ("limit", "words"), [(1, "0 of 1 visit used"), (2, "0 of 2 visits used")]
    )
    def test_visits_used_are_singular_for_one_and_plural_for_two(self, limit, words):
        grant = a_link(download_limit=limit)
        assert f'<li class="downloads-used">{words}</li>' in file_row(grant)

    @pytest.mark.parametrize(
        ("byte_size", "words"),
        [(0, "0\xa0bytes"), (1, "1\xa0byte"), (1536, "1.5\xa0KB"), (5 * 1024**3, "5.0\xa0GB")],
    )
    def test_the_size_is_filesizeformats(self, byte_size, words):
        assert f"      <li>{words}</li>\n" in file_row(a_file(byte_size=byte_size))

    @pytest.mark.parametrize(
        ("filename", "kind"),
        [("a.tar.gz", "GZ"), ("noext", "FILE"), ("photo.jpeg2000", "JPEG"), ("x.j-p-g", "FILE")],
    )
    def test_the_kind_is_the_extension_or_file(self, filename, kind):
        html = file_row(a_file(filename=filename))
        assert f'<span class="file-icon" aria-hidden="true">{kind}</span>' in html

    def test_a_stamped_file_says_so(self):
        grant = a_file(filename="book.pdf")
        type(grant.download).objects.filter(pk=grant.download_id).update(stamp=True)
        assert '      <li class="stamped">Stamped with your email</li>\n' in file_row(grant)

    def test_a_file_updated_since_payment_says_when_with_its_changelog_escaped(self):
        grant = a_file()
        download = grant.download
        download_replace_media(
            download=download, media=factories.MediaFactory(), changelog=f"Fixed {EVIL}"
        )
        download.refresh_from_db()
        updated = download.file_updated_at
        assert file_row(grant).endswith(
            '      <li class="updated">Updated on '
            f'<time datetime="{updated.isoformat()}">{day(updated)}</time>: '
            f'<span class="changelog">Fixed {ESCAPED}</span></li>\n'
            "    </ul>\n"
            "  </div>\n"
            '  <div class="file-action">\n'
            f"    {download_link(grant, 'Download', download.display_name)}\n"
            "  </div>\n"
            "</li>\n\n"
        )

    def test_a_file_updated_since_payment_without_a_changelog_says_when(self):
        grant = a_file()
        type(grant.download).objects.filter(pk=grant.download_id).update(
            file_updated_at=grant.order.paid_at + timedelta(days=1)
        )
        updated = grant.order.paid_at + timedelta(days=1)
        assert (
            '      <li class="updated">Updated on '
            f'<time datetime="{updated.isoformat()}">{day(updated)}</time></li>\n'
        ) in file_row(grant)

    def test_a_file_replaced_before_payment_says_nothing_of_it(self):
        grant = a_file()
        type(grant.download).objects.filter(pk=grant.download_id).update(
            file_updated_at=grant.order.paid_at - timedelta(days=1)
        )
        assert "Updated on" not in file_row(grant)

    def test_names_are_escaped(self):
        grant = a_file(filename=f"{EVIL}.pdf", name=EVIL)
        assert file_row(grant) == row(
            kind="PDF",
            name=ESCAPED,
            size="2.0\xa0KB",
            used="0 of 5 downloads used",
            expiry="Never expires",
            action=download_link(grant, "Download", ESCAPED),
        )

    def test_the_download_url_is_the_download_views_under_the_script_prefix(self):
        grant = a_file()
        set_script_prefix("/shop/")
        try:
            html = file_row(grant)
            assert reverse("downloads:download", args=[grant.token]).startswith("/shop/")
        finally:
            set_script_prefix("/")
        assert f'href="/shop/downloads/{grant.token}/"' in html

    def test_a_token_with_other_characters_is_reversed_and_escaped_as_the_url_tag_did(self):
        grant = a_file()
        DownloadGrant.objects.filter(pk=grant.pk).update(token="a&b.c~d")
        assert 'href="/downloads/a&amp;b.c~d/"' in file_row(grant)

    def test_dates_are_in_the_current_time_zone_and_language(self, settings):
        settings.TIME_ZONE = "Asia/Tokyo"
        expires = datetime(2099, 1, 31, 20, 0, tzinfo=UTC)  # 1 February 2099 in Tokyo
        grant = a_file(expires_at=expires)
        with translation.override("de"):
            html = file_row(grant)
        assert '<time datetime="2099-02-01T05:00:00+09:00">1 Februar 2099</time>' in html

    def test_numbers_are_grouped_when_the_thousand_separator_is_on(self, settings):
        settings.USE_THOUSAND_SEPARATOR = True
        grant = a_file(download_limit=5000, download_count=1234)
        assert '<li class="downloads-used">1,234 of 5,000 downloads used</li>' in file_row(grant)


def key_row(key, line, *, status, state, usage, left="", expiry="") -> str:
    """A licence key's row, byte for byte as the former include _licence_key.html made it."""
    return (
        f'\n<li class="licence-key licence-key-{status}">\n'
        '  <div class="key-row">\n'
        f'    <code class="key-text" id="key-{key.pk}">{key.key}</code>\n'
        "    \n"
        '    <button type="button" class="button button-secondary copy-button"'
        f' data-copy-target="key-{key.pk}" data-copy-status="copied-{key.pk}" data-copied="Copied"'
        ' data-selected="Selected: press Ctrl+C (⌘C on a Mac) to copy" hidden>Copy'
        f'<span class="visually-hidden"> licence key {key.unit} for {line}</span></button>\n'
        f'    <span class="copy-status" id="copied-{key.pk}" role="status" aria-live="polite">'
        "</span>\n"
        "  </div>\n"
        '  <ul class="key-meta">\n'
        f'    <li class="key-status">{state}</li>\n'
        f'    <li class="key-usage">{usage}</li>\n'
        f"    {left}\n"
        f"    {expiry}\n"
        "  </ul>\n"
        "</li>\n\n"
    )


def key_rows(order) -> list[str]:
    order = as_page_reads(order)
    markup = OrderMarkup(order)
    return [
        markup.licence_key(key, line)
        for line in order.lines.all()
        for key in line.license_keys.all()
    ]


NEVER = '<li class="key-expiry">Never expires</li>'


class TestLicenceKeyRow:
    def test_a_key_not_activated_yet_shows_its_usage_what_is_left_and_its_expiry(self):
        order = factories.licensed_order(name=f"App {EVIL}")
        key = order.license_keys.get()
        assert key_rows(order) == [
            key_row(
                key,
                f"App {ESCAPED}",
                status="inactive",
                state="Not activated yet",
                usage="0 of 3 activations used",
                left='<li class="key-left">3 left</li>',
                expiry=NEVER,
            )
        ]

    @pytest.mark.parametrize(
        ("activations", "usage", "left"),
        [(1, "1 of 3 activations used", "2 left"), (2, "2 of 3 activations used", "1 left")],
    )
    def test_an_active_key_counts_its_activations(self, activations, usage, left):
        order = factories.licensed_order(name="App")
        key = order.license_keys.get()
        for number in range(activations):
            license_key_activate(key_text=key.key, instance_name=f"laptop {number}")
        assert key_rows(order) == [
            key_row(
                key,
                "App",
                status="active",
                state="Active",
                usage=usage,
                left=f'<li class="key-left">{left}</li>',
                expiry=NEVER,
            )
        ]

    @pytest.mark.parametrize(
        ("limit", "usage"), [(1, "0 of 1 activation used"), (2, "0 of 2 activations used")]
    )
    def test_activations_used_are_singular_for_one_and_plural_for_two(self, limit, usage):
        order = factories.licensed_order(name="App", license_activation_limit=limit)
        assert f'<li class="key-usage">{usage}</li>' in key_rows(order)[0]

    @pytest.mark.parametrize(
        ("activations", "usage"),
        [(1, "1 activation (unlimited)"), (2, "2 activations (unlimited)")],
    )
    def test_an_unlimited_key_counts_its_activations_and_nothing_left(self, activations, usage):
        order = factories.licensed_order(name="App", license_activation_limit=None)
        key = order.license_keys.get()
        for number in range(activations):
            license_key_activate(key_text=key.key, instance_name=f"laptop {number}")
        assert key_rows(order) == [
            key_row(key, "App", status="active", state="Active", usage=usage, expiry=NEVER)
        ]

    def test_a_key_with_an_expiry_says_until_when(self):
        order = factories.licensed_order(name="App")
        valid_until = timezone.now() + timedelta(days=100)
        LicenseKey.objects.update(expires_at=valid_until)
        key = order.license_keys.get()
        expiry = f'Valid until <time datetime="{valid_until.isoformat()}">{day(valid_until)}</time>'
        assert key_rows(order) == [
            key_row(
                key,
                "App",
                status="inactive",
                state="Not activated yet",
                usage="0 of 3 activations used",
                left='<li class="key-left">3 left</li>',
                expiry=f'<li class="key-expiry">{expiry}</li>',
            )
        ]

    def test_an_expired_key_says_when_and_nothing_left(self):
        order = factories.licensed_order(name="App")
        expired = timezone.now() - timedelta(days=1)
        LicenseKey.objects.update(expires_at=expired)
        key = order.license_keys.get()
        expiry = f'Expired on <time datetime="{expired.isoformat()}">{day(expired)}</time>'
        assert key_rows(order) == [
            key_row(
                key,
                "App",
                status="expired",
                state="Expired",
                usage="0 of 3 activations used",
                expiry=f'<li class="key-expiry">{expiry}</li>',
            )
        ]

    def test_a_refunded_units_key_is_disabled_refunded_and_shows_no_expiry(self):
        order = factories.licensed_order(quantity=2, name="App")
        order_refund(order=order, quantities={order.lines.get().pk: 1})
        first, second = order.license_keys.order_by("unit")
        assert key_rows(order) == [
            key_row(
                first,
                "App",
                status="inactive",
                state="Not activated yet",
                usage="0 of 3 activations used",
                left='<li class="key-left">3 left</li>',
                expiry=NEVER,
            ),
            key_row(
                second,
                "App",
                status="disabled",
                state="Disabled (refunded)",
                usage="0 of 3 activations used",
            ),
        ]

    def test_a_key_disabled_for_another_reason_just_says_disabled(self):
        order = factories.licensed_order(name="App")
        license_keys_disable(keys=order.license_keys.all())
        key = order.license_keys.get()
        assert key_rows(order) == [
            key_row(
                key, "App", status="disabled", state="Disabled", usage="0 of 3 activations used"
            )
        ]


def card(order_read, line_read, number=1) -> str:
    return OrderMarkup(order_read).line(line_read, number)


def card_html(*, number, name, note="", price, quantity, total, files, keys="") -> str:
    """A line's card as templates/accounts/order_detail.html rendered it."""
    return (
        f'<section class="card" aria-labelledby="line-{number}">\n'
        '      <header class="card-header">\n'
        "        <div>\n"
        f'          <h3 id="line-{number}">{name}</h3>\n'
        f"          {note}\n"
        "        </div>\n"
        f'        <p class="line-amount"><span class="line-price">{price} × {quantity}</span>'
        f' <strong class="line-total">{total}</strong></p>\n'
        "      </header>\n"
        "      \n"
        f"      {files}\n"
        f"      {keys}\n"
        "      \n"
        "    </section>"
    )


class TestLineCard:
    def line_of(self, status=Order.Status.PAID, **line_fields):
        order = factories.OrderFactory(status=status, paid_at=timezone.now())
        fields = {"name": "Guide", "price": 2500, "quantity": 1, "total": 2500, **line_fields}
        factories.OrderLineFactory(order=order, **fields)
        order = as_page_reads(order)
        return order, order.lines.all()[0]

    def test_a_line_with_files_lists_their_rows(self):
        grant = a_file()
        order = as_page_reads(grant.order)
        line = order.lines.all()[0]
        rows = OrderMarkup(order).file(line.grants.all()[0])
        assert card(order, line, 3) == card_html(
            number=3,
            name=line.name,
            price="$0.00",
            quantity=1,
            total="$0.00",
            files=f'\n        <ul class="files">\n          {rows}\n        </ul>\n      ',
        )

    @pytest.mark.parametrize(
        ("status", "refunded", "words"),
        [
            (Order.Status.PAID, False, "This item has no files to download."),
            (Order.Status.PAID, True, "No files available."),
            (Order.Status.REFUNDED, False, "No files available."),
            (Order.Status.PENDING, False, "Files appear here once the payment is confirmed."),
        ],
    )
    def test_a_line_without_files_says_why(self, status, refunded, words):
        fields = {"refunded_at": timezone.now()} if refunded else {}
        order, line = self.line_of(status=status, **fields)
        note = '\n            <p><strong class="refunded">Refunded</strong></p>\n          '
        assert card(order, line) == card_html(
            number=1,
            name="Guide",
            note=note if refunded else "",
            price="$25.00",
            quantity=1,
            total="$25.00",
            files=f'\n        <p class="empty">{words}</p>\n      ',
        )

    @pytest.mark.parametrize(
        ("fields", "note"),
        [
            ({"variant_name": "Hardcover"}, "Hardcover"),
            (
                {"variant_name": EVIL, "quantity": 3, "refunded_at": timezone.now()},
                f'{ESCAPED} · <strong class="refunded">Refunded (all 3)</strong>',
            ),
            (
                {"quantity": 3, "refunded_quantity": 1},
                '<strong class="refunded">1 of 3 refunded</strong>',
            ),
            (
                {"variant_name": "Paperback", "quantity": 3, "refunded_quantity": 2},
                'Paperback · <strong class="refunded">2 of 3 refunded</strong>',
            ),
        ],
    )
    def test_the_variant_and_the_refund_are_noted_under_the_name(self, fields, note):
        order, line = self.line_of(name=EVIL, **fields)
        html = card(order, line)
        assert f'<h3 id="line-1">{ESCAPED}</h3>\n          \n            <p>{note}</p>\n' in html

    def test_the_price_and_total_are_in_the_orders_currency(self):
        order = factories.OrderFactory(status=Order.Status.PAID, currency="JPY")
        factories.OrderLineFactory(order=order, price=4900, quantity=2, total=9800)
        order = as_page_reads(order)
        html = card(order, order.lines.all()[0])
        assert '<span class="line-price">¥4,900 × 2</span>' in html
        assert '<strong class="line-total">¥9,800</strong>' in html

    @pytest.mark.parametrize(("quantity", "title"), [(1, "Licence key"), (2, "Licence keys")])
    def test_a_line_of_keys_lists_them_under_a_title_singular_or_plural(self, quantity, title):
        order = as_page_reads(factories.licensed_order(quantity=quantity, name="App"))
        line = order.lines.all()[0]
        markup = OrderMarkup(order)
        rows = "".join(markup.licence_key(key, line) for key in line.license_keys.all())
        assert card(order, line, 2).endswith(
            "      \n"  # no files: the item is its keys
            "      \n"
            '        <div class="licence-keys">\n'
            f'          <h4 class="licence-keys-title" id="keys-2">{title}</h4>\n'
            '          <ul class="keys" aria-labelledby="keys-2">\n'
            f"            {rows}\n"
            "          </ul>\n"
            "        </div>\n"
            "      \n"
            "      \n"
            "    </section>"
        )


class TestOncePerPage:
    def test_download_all_says_how_many_files_and_how_big_for_one_and_two(self):
        order = factories.paid_order_with_files(lines=2, attached=0)  # a file and a file
        order = as_page_reads(order)
        contents = bundles.bundle_contents(
            order=order, grants=[g for line in order.lines.all() for g in line.grants.all()]
        )
        url = f"/account/orders/{order.access_token}/download-all/"
        assert reverse("accounts:order_download_all", args=[order.access_token]) == url
        assert OrderMarkup(order).download_all(contents) == (
            '<div class="download-all">\n'
            f'      <a class="button" href="{url}" rel="nofollow"'
            ' aria-describedby="download-all-what">Download all</a>\n'
            "      <div>\n"
            '        <p id="download-all-what">2 files in one ZIP (40\xa0bytes); each file counts'
            " as one download.</p>\n"
            "        \n"
            "      </div>\n"
            "    </div>"
        )

    def test_download_all_counts_links_and_lists_what_it_leaves_out_and_why(self):
        order = factories.paid_order_with_files(lines=3, attached=0)  # two files and a link
        first = order.lines.get(position=0).grants.get()
        DownloadGrant.objects.filter(pk=first.pk).update(download_count=10)
        type(first.download).objects.filter(pk=first.download_id).update(name=EVIL)
        order = as_page_reads(order)
        contents = bundles.bundle_contents(
            order=order, grants=[g for line in order.lines.all() for g in line.grants.all()]
        )
        html = OrderMarkup(order).download_all(contents)
        assert (
            '<p id="download-all-what">1 files and a list of 1 link in one ZIP (20\xa0bytes);'
            " each file counts as one download.</p>\n"
            "        \n"
            '          <p class="download-all-left-out">Not included now: '
            f'<span class="left-out">{ESCAPED} (used up)</span>.</p>\n'
            "        \n"
        ) in html

    def test_the_receipt_of_a_paid_order_says_when_and_how_it_was_paid(self):
        paid = timezone.now()
        order = factories.OrderFactory(
            status=Order.Status.PAID,
            paid_at=paid,
            subtotal=4900,
            tax=100,
            total=5000,
            channel=Order.Channel.STRIPE,
            payment_method="card",
        )
        assert OrderMarkup(as_page_reads(order)).receipt() == (
            '<li class="order-row"><span>Subtotal</span><span class="amount">$49.00</span></li>\n'
            '      <li class="order-row"><span>Tax</span><span class="amount">$1.00</span></li>\n'
            '      <li class="order-row total"><strong>Total</strong>'
            '<strong class="amount">$50.00</strong></li>\n'
            "      \n"
            '      <li class="order-row payment muted"><span>Paid '
            f'<time datetime="{paid.isoformat()}">{day(paid)}</time>'
            f" via {order.paid_via}</span></li>"
        )

    def test_the_receipt_shows_what_was_refunded_and_when(self):
        order = factories.paid_order_with_files(lines=1, attached=0, total=5000, subtotal=5000)
        order_refund(order=order, line_ids=[order.lines.get().pk])
        order = as_page_reads(order)
        refunded = order.refunded_at
        assert (
            "      \n"
            '        <li class="order-row refunded"><span>Refunded on '
            f'<time datetime="{refunded.isoformat()}">{day(refunded)}</time></span>'
            '<span class="amount">$50.00</span></li>\n'
            "      \n"
            '      <li class="order-row payment muted"><span>Paid '
        ) in OrderMarkup(order).receipt()

    def test_the_receipt_shows_an_amount_refunded_without_a_date(self):
        order = factories.paid_order_with_files(lines=1, attached=0, total=5000, subtotal=5000)
        order_refund(order=order, amount=1000)
        assert (
            "      \n"
            '        <li class="order-row refunded"><span>Refunded</span>'
            '<span class="amount">$10.00</span></li>\n'
            "      \n"
        ) in OrderMarkup(as_page_reads(order)).receipt()

    @pytest.mark.parametrize(
        ("status", "words"),
        [
            (Order.Status.PENDING, "Not paid yet."),
            (Order.Status.CANCELLED, "Not paid: the order was cancelled."),
        ],
    )
    def test_the_receipt_of_an_unpaid_order_says_it_is_not_paid(self, status, words):
        order = factories.OrderFactory(status=status)
        assert (
            OrderMarkup(as_page_reads(order))
            .receipt()
            .endswith(f'      <li class="order-row payment muted"><span>{words}</span></li>')
        )
