"""The order email: sent once an order is paid (after commit) and on request; it lists the
files and links to the order page, never to /downloads/ (mail scanners follow links)."""

import pytest
from django.core import mail
from django.utils import timezone

from downloads.models import Order
from downloads.services.orders import LineInput, order_create, order_pay, order_send_email
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
