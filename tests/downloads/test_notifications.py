import pytest
from django.core import mail

from downloads.models import Backfill, Order, OrderNotification
from downloads.services.backfills import backfill_run, download_deliver_to_existing_orders
from downloads.services.orders import LineInput, order_create, order_refund
from downloads.services.versions import download_replace_media
from tests import factories

pytestmark = pytest.mark.django_db


def paid(product, email, lines=1):
    return order_create(
        email=email,
        lines=[LineInput(product=product)] * lines,
        status=Order.Status.PAID,
        send_email=False,
    )


@pytest.fixture
def sold():
    """A file on a product, bought by three orders (one with two lines) and one refunded."""
    download = factories.DownloadFactory(name="The Book (PDF)")
    product = download.product
    orders = [
        paid(product, "a@example.com"),
        paid(product, "b@example.com", lines=2),
        paid(product, "c@example.com"),
    ]
    refunded = order_refund(order=paid(product, "refunded@example.com"))
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
