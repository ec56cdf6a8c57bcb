"""The emails buyers get (downloads.emails).

The order email: sent once an order is paid (after commit) and on request; it lists the
files and links to the order page, never to /downloads/ (mail scanners follow links).
The notices of files added or changed after the sale: one per order, sent by a backfill.
"""

import re

import pytest
from django.core import mail
from django.utils import timezone

from downloads.models import Backfill, Order, OrderNotification
from downloads.services.backfills import backfill_run, download_deliver_to_existing_orders
from downloads.services.orders import (
    LineInput,
    order_create,
    order_pay,
    order_refund,
    order_send_email,
)
from downloads.services.versions import download_replace_media
from tests import factories

pytestmark = pytest.mark.django_db


def product_with_files():
    product = factories.ProductFactory(name="The Field Guide", download_limit=3)
    factories.DownloadFactory(product=product, media=factories.MediaFactory(filename="Guide.pdf"))
    factories.LinkDownloadFactory(product=product, name="Audio edition")
    return product


def test_paying_an_order_sends_one_email_after_commit(django_capture_on_commit_callbacks):
    product = product_with_files()
    order = order_create(email="buyer@example.com", lines=[LineInput(product=product)])
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        order_pay(order=order)
    assert mail.outbox == []  # nothing leaves before the payment is committed
    for callback in callbacks:
        callback()
    (message,) = mail.outbox
    assert message.to == ["buyer@example.com"]
    assert message.subject == f"Digital Downloads: your downloads for order #{order.number}"
    order.refresh_from_db()
    assert order.email_sent_at is not None


def test_the_email_lists_the_files_and_links_only_to_the_order_page(
    django_capture_on_commit_callbacks,
):
    product = product_with_files()
    extra = factories.DownloadFactory(
        product=None, media=factories.MediaFactory(filename="Bonus.zip")
    )
    with django_capture_on_commit_callbacks(execute=True):
        order = order_create(
            email="buyer@example.com",
            lines=[LineInput(product=product)],
            downloads=[extra],
            status=Order.Status.PAID,
        )
    (message,) = mail.outbox
    html, content_type = message.alternatives[0]
    assert content_type == "text/html"
    page = f"http://testserver/account/orders/{order.access_token}/"
    for body in (message.body, html):
        assert page in body
        assert "/downloads/" not in body
        for grant in order.grants.all():
            assert grant.token not in body
        assert "Guide.pdf" in body
        assert "Audio edition" in body
        assert "Bonus.zip" in body
        assert "3 downloads" in body
        assert "The Field Guide" in body
    assert f'href="{page}"' in html


def test_the_email_carries_the_lines_prices_and_total_in_the_orders_currency(
    django_capture_on_commit_callbacks,
):
    product = product_with_files()
    with django_capture_on_commit_callbacks(execute=True):
        order_create(
            email="buyer@example.com",
            lines=[LineInput(product=product, quantity=2, price=2500)],  # yen have no cents
            currency="JPY",
            tax=400,
            status=Order.Status.PAID,
            channel=Order.Channel.STRIPE,
            payment_method="card",
        )
    (message,) = mail.outbox
    html = message.alternatives[0][0]
    assert "The Field Guide: ¥2,500 × 2 = ¥5,000" in message.body
    assert "Subtotal: ¥5,000\nTax: ¥400\nTotal: ¥5,400, paid " in message.body
    assert "via Stripe Checkout (card)" in message.body
    for part in ("¥2,500 × 2", "¥5,000", "¥400", "¥5,400", "via Stripe Checkout (card)"):
        assert part in html
    assert "$" not in message.body and "$" not in html


def test_without_tax_the_email_shows_only_the_total():
    order = order_create(
        email="buyer@example.com",
        lines=[LineInput(product=product_with_files())],
        status=Order.Status.PAID,
        send_email=False,
    )
    order_send_email(order=order)
    (message,) = mail.outbox
    assert "Total: $25.00, paid " in message.body
    assert "Subtotal" not in message.body and "Tax" not in message.body
    assert "Subtotal" not in message.alternatives[0][0]


def test_an_unpaid_order_or_send_email_false_sends_nothing(django_capture_on_commit_callbacks):
    product = product_with_files()
    with django_capture_on_commit_callbacks(execute=True):
        order_create(email="a@example.com", lines=[LineInput(product=product)])
        order_create(
            email="b@example.com",
            lines=[LineInput(product=product)],
            status=Order.Status.PAID,
            send_email=False,
        )
    assert mail.outbox == []


def test_paying_twice_sends_one_email(django_capture_on_commit_callbacks):
    product = product_with_files()
    order = order_create(email="a@example.com", lines=[LineInput(product=product)])
    with django_capture_on_commit_callbacks(execute=True):
        order_pay(order=order)
        order_pay(order=order)
    assert len(mail.outbox) == 1


def test_sending_on_request_records_when(django_capture_on_commit_callbacks):
    order = factories.paid_order_with_files(lines=2, attached=1)
    before = timezone.now()
    order_send_email(order=order)
    (message,) = mail.outbox
    assert f"#{order.number}" in message.subject
    order.refresh_from_db()
    assert order.email_sent_at >= before


def test_html_in_names_is_escaped_in_the_html_part():
    order = factories.paid_order_with_files(lines=0, attached=0)
    download = factories.LinkDownloadFactory(product=None, name="<script>alert(1)</script>")
    factories.GrantFactory(order=order, line=None, download=download)
    order_send_email(order=order)
    html = mail.outbox[0].alternatives[0][0]
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "<script>alert(1)</script>" in mail.outbox[0].body  # plain text stays plain


def test_a_mail_server_failure_does_not_undo_the_payment(
    django_capture_on_commit_callbacks, monkeypatch, caplog
):
    product = product_with_files()
    order = order_create(email="a@example.com", lines=[LineInput(product=product)])

    def refuse(self, *args, **kwargs):
        raise ConnectionRefusedError("smtp is down")

    monkeypatch.setattr("django.core.mail.EmailMessage.send", refuse)
    with django_capture_on_commit_callbacks(execute=True):
        order_pay(order=order)
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert order.grants.count() == 2
    assert order.email_sent_at is None  # so the merchant can see it and resend
    assert "smtp is down" in caplog.text


# --- Licence keys: each line's keys, with the activations each allows -------------------------


def licensed(limit=3, days=None, **kwargs):
    return factories.ProductFactory(
        license_keys=True, license_activation_limit=limit, license_expiry_days=days, **kwargs
    )


def test_the_email_lists_each_lines_keys_with_the_activations_allowed_in_both_parts(
    django_capture_on_commit_callbacks,
):
    app = licensed(limit=3, days=365, name="Pixel Studio")
    factories.DownloadFactory(product=app, media=factories.MediaFactory(filename="Setup.dmg"))
    unlimited = licensed(limit=None, name="Font Pack")
    with django_capture_on_commit_callbacks(execute=True):
        order = order_create(
            email="buyer@example.com",
            lines=[LineInput(product=app, quantity=2), LineInput(product=unlimited)],
            status=Order.Status.PAID,
        )
    (message,) = mail.outbox
    html = message.alternatives[0][0]
    first, second = order.license_keys.filter(product=app).order_by("unit")
    font = order.license_keys.get(product=unlimited)
    until = f"{timezone.localtime(first.expires_at):%-d %B %Y}"
    body = message.body
    assert "Your licence keys:\n\nPixel Studio\n" in body
    assert f"  - {first.key}: 3 activations allowed, until {until}\n" in body
    assert f"  - {second.key}: 3 activations allowed, until {until}\n" in body
    assert f"Font Pack\n  - {font.key}: unlimited activations\n" in body
    assert body.index("Pixel Studio\n  - ") < body.index("Font Pack\n  - ")
    assert "Setup.dmg" in body  # the files are still listed
    for key in (first, second):
        assert re.search(
            rf"<code[^>]*>{key.key}</code><span[^>]*> · 3 activations allowed · until {until}<",
            html,
        )
    assert re.search(rf"<code[^>]*>{font.key}</code><span[^>]*> · unlimited activations<", html)
    # Under their own line: Pixel Studio's section holds its file and keys, not the fonts'.
    sections = html.split('<p style="margin: 0 0 4px; font-weight: 600;">')[1:]
    pixel = next(section for section in sections if section.startswith("Pixel Studio"))
    assert "Setup.dmg" in pixel and first.key in pixel and second.key in pixel
    assert font.key not in pixel
    assert "Licence keys" in html and "Licence key<" in html  # plural, then one key


def test_one_activation_is_singular_and_a_keys_only_order_is_not_waiting_for_files():
    order = order_create(
        email="buyer@example.com",
        lines=[LineInput(product=licensed(limit=1, name="Plugin"))],
        status=Order.Status.PAID,
        send_email=False,
    )
    order_send_email(order=order)
    (message,) = mail.outbox
    key = order.license_keys.get()
    assert f"  - {key.key}: 1 activation allowed\n" in message.body
    assert "not ready yet" not in message.body
    assert "not ready yet" not in message.alternatives[0][0]
    assert "Your licence keys are below." in message.alternatives[0][0]
    assert f"http://testserver/account/orders/{order.access_token}/" in message.body


def test_disabled_keys_and_refunded_lines_are_left_out_of_a_resent_email():
    app = licensed(name="Pixel Studio")
    order = order_create(
        email="buyer@example.com",
        lines=[LineInput(product=app, quantity=3)],
        status=Order.Status.PAID,
        send_email=False,
    )
    order_refund(order=order, quantities={order.lines.get().pk: 1}, amount=2500)
    order_send_email(order=order)
    (message,) = mail.outbox
    one, two, three = order.license_keys.order_by("unit")
    for body in (message.body, message.alternatives[0][0]):
        assert one.key in body and two.key in body
        assert three.key not in body  # its unit was refunded: the key is disabled


def test_an_email_without_keys_has_no_keys_section():
    order = factories.paid_order_with_files(lines=2, attached=0)
    order_send_email(order=order)
    (message,) = mail.outbox
    assert "licence" not in message.body.lower()
    assert "licence" not in message.alternatives[0][0].lower()


# --- After the sale: a new file or a new version, told by a backfill --------------------------


@pytest.fixture
def sold(paid_order):
    """A file on a product, bought by three orders (one with two lines) and one refunded."""
    download = factories.DownloadFactory(name="The Book (PDF)")
    product = download.product
    orders = [
        paid_order(product, email="a@example.com"),
        paid_order(product, product, email="b@example.com"),
        paid_order(product, email="c@example.com"),
    ]
    refunded = order_refund(order=paid_order(product, email="refunded@example.com"))
    return {"download": download, "product": product, "orders": orders, "refunded": refunded}


def recipients():
    return sorted(address for message in mail.outbox for address in message.to)


class TestNewFileEmails:
    def test_one_email_per_order_linking_to_the_order_page_never_to_a_download(self, sold):
        extra = factories.DownloadFactory(product=sold["product"], name="Bonus chapter")
        backfill = download_deliver_to_existing_orders(download=extra, notify_buyers=True)
        backfill = backfill_run(backfill=backfill, batch_size=2)

        assert recipients() == ["a@example.com", "b@example.com", "c@example.com"]
        assert backfill.emails_sent == 3
        for message in mail.outbox:
            order = Order.objects.get(email=message.to[0])
            html = message.alternatives[0][0]
            assert f"http://testserver/account/orders/{order.access_token}/" in message.body
            assert f"http://testserver/account/orders/{order.access_token}/" in html
            assert "/downloads/" not in message.body and "/downloads/" not in html
            assert "Bonus chapter" in message.body
            assert f"#{order.number}" in message.subject
        assert OrderNotification.objects.filter(sent_at__isnull=False).count() == 3

    def test_running_again_sends_nothing_more(self, sold):
        extra = factories.DownloadFactory(product=sold["product"])
        backfill_run(
            backfill=download_deliver_to_existing_orders(download=extra, notify_buyers=True)
        )
        again = Backfill.objects.create(download=extra, notify_buyers=True)
        again = backfill_run(backfill=again)
        assert len(mail.outbox) == 3
        assert again.emails_sent == 0

    def test_an_email_that_fails_is_tried_again_on_resume_and_the_others_are_not_resent(
        self, sold, monkeypatch
    ):
        from django.core.mail import EmailMultiAlternatives

        extra = factories.DownloadFactory(product=sold["product"])
        real_send = EmailMultiAlternatives.send

        def smtp_refuses_b(self, *args, **kwargs):
            if self.to == ["b@example.com"]:
                raise OSError("connection refused")
            return real_send(self, *args, **kwargs)

        monkeypatch.setattr(EmailMultiAlternatives, "send", smtp_refuses_b)
        backfill = backfill_run(
            backfill=download_deliver_to_existing_orders(download=extra, notify_buyers=True)
        )
        assert backfill.status == Backfill.Status.FAILED
        assert "1 email(s) could not be sent" in backfill.error
        assert recipients() == ["a@example.com", "c@example.com"]

        monkeypatch.setattr(EmailMultiAlternatives, "send", real_send)
        backfill = backfill_run(backfill=backfill)
        assert backfill.status == Backfill.Status.DONE
        assert recipients() == ["a@example.com", "b@example.com", "c@example.com"]
        assert backfill.emails_sent == 3

    def test_without_notify_buyers_no_email_is_sent(self, sold):
        extra = factories.DownloadFactory(product=sold["product"])
        backfill_run(backfill=download_deliver_to_existing_orders(download=extra))
        assert mail.outbox == []
        assert not OrderNotification.objects.exists()


class TestNewVersionEmails:
    def test_each_order_holding_the_file_gets_one_email_with_the_changelog(self, sold):
        version = download_replace_media(
            download=sold["download"],
            media=factories.MediaFactory(),
            changelog="Fixed the typos in chapter 2",
            notify_buyers=True,
        )
        backfill = Backfill.objects.get(version=version)
        backfill = backfill_run(backfill=backfill, batch_size=2)

        assert recipients() == ["a@example.com", "b@example.com", "c@example.com"]
        assert all("Fixed the typos in chapter 2" in m.body for m in mail.outbox)
        assert all("The Book (PDF)" in m.subject for m in mail.outbox)
        assert backfill.emails_sent == 3
        assert backfill.grants_created == 0

        # The same change never emails twice, even through a second run...
        backfill_run(
            backfill=Backfill.objects.create(
                download=sold["download"], version=version, notify_buyers=True
            )
        )
        assert len(mail.outbox) == 3
        # ...while the next version is a new change, told once more.
        download_replace_media(
            download=sold["download"], media=factories.MediaFactory(), notify_buyers=True
        )
        backfill_run(backfill=Backfill.objects.get(status="pending"))
        assert len(mail.outbox) == 6

    def test_a_version_without_notify_buyers_sends_nothing(self, sold):
        download_replace_media(download=sold["download"], media=factories.MediaFactory())
        assert not Backfill.objects.exists()
        assert mail.outbox == []


class TestEmailWords:
    """Counts in the buyer's words, and a link named as a link, in both parts."""

    @staticmethod
    def order_email(*downloads_and_limits):
        product = factories.ProductFactory(name="Kit")
        for download, _limit in downloads_and_limits:
            download.product = product
            download.save()
        order = order_create(
            email="buyer@example.com",
            lines=[LineInput(product=product)],
            status=Order.Status.PAID,
            send_email=False,
        )
        for download, limit in downloads_and_limits:
            order.grants.filter(download=download).update(download_limit=limit)
        order_send_email(order=order)
        (message,) = mail.outbox
        return message.body, message.alternatives[0][0]

    def test_one_download_is_singular_more_are_plural_and_a_link_is_visited(self):
        one = factories.DownloadFactory(media=factories.MediaFactory(filename="One.pdf"))
        many = factories.DownloadFactory(media=factories.MediaFactory(filename="Many.pdf"))
        link = factories.LinkDownloadFactory(name="Course videos")
        body, html = self.order_email((one, 1), (many, 4), (link, 1))
        assert re.search(r"  - One\.pdf \(\d+\sbytes\), 1 download\n", body)
        assert re.search(r"  - Many\.pdf \(\d+\sbytes\), 4 downloads\n", body)
        assert "  - Course videos (link), 1 visit\n" in body
        assert re.search(r"One\.pdf<span[^>]*> · \d+\sbytes · 1 download</span>", html)
        assert re.search(r"Course videos<span[^>]*> · link · 1 visit</span>", html)
        for part in (body, html):
            assert "1 downloads" not in part and "1 visits" not in part

    def test_the_new_version_email_says_what_changed_and_that_downloads_start_afresh(self, sold):
        download_replace_media(
            download=sold["download"],
            media=factories.MediaFactory(),
            changelog="Chapter 4 rewritten",
            notify_buyers=True,
        )
        backfill_run(backfill=Backfill.objects.get())
        for message in mail.outbox:
            html = message.alternatives[0][0]
            for part in (message.body, html):
                assert "What changed: Chapter 4 rewritten" in part
                assert "Your downloads start afresh for the new version." in part

    def test_a_link_added_later_is_opened_from_the_order_page(self, sold):
        link = factories.LinkDownloadFactory(product=sold["product"], name="Live session")
        backfill_run(
            backfill=download_deliver_to_existing_orders(download=link, notify_buyers=True)
        )
        assert all("Open it from your order page:" in m.body for m in mail.outbox)
        assert all("Live session" in m.body for m in mail.outbox)
