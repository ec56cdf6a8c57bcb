from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from downloads.errors import ServiceError
from downloads.models import Backfill, DownloadGrant, DownloadVersion, WebhookDelivery
from downloads.services.backfills import backfill_run
from downloads.services.consume import grant_consume
from downloads.services.orders import order_refund
from downloads.services.versions import download_replace_media
from downloads.services.webhooks import webhook_endpoint_create
from tests import factories
from tests.concurrency import at_once

pytestmark = pytest.mark.django_db


def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


class TestDownloadReplaceMedia:
    def test_history_keeps_the_original_and_the_grant_serves_the_new_file(
        self, client, staff, paid_order
    ):
        old = factories.MediaFactory(content=b"edition one", filename="book.pdf")
        download = factories.DownloadFactory(media=old)
        grant = paid_order(download.product).grants.get()
        assert body_of(client.get(f"/downloads/{grant.token}/")) == b"edition one"

        new = factories.MediaFactory(content=b"edition two", filename="book-v2.pdf")
        before = timezone.now()
        version = download_replace_media(
            download=download, media=new, changelog="Fixed chapter 3", created_by=staff
        )

        download.refresh_from_db()
        assert download.media == new
        assert download.file_updated_at >= before
        history = list(download.versions.order_by("created_at"))
        assert [(v.media, v.changelog, v.created_by) for v in history] == [
            (old, "", None),
            (new, "Fixed chapter 3", staff),
        ]
        assert history[-1] == version
        assert history[0].created_at == download.created_at
        response = client.get(f"/downloads/{grant.token}/")
        assert response.status_code == 200
        assert body_of(response) == b"edition two"

    def test_each_later_replacement_adds_one_version(self):
        download = factories.DownloadFactory()
        download_replace_media(download=download, media=factories.MediaFactory())
        third = factories.MediaFactory()
        download_replace_media(download=download, media=third, changelog="v3")
        assert download.versions.count() == 3
        assert download.versions.first().media == third  # newest first

    def test_replacing_with_the_current_file_is_refused_and_changes_nothing(self):
        download = factories.DownloadFactory()
        with pytest.raises(ServiceError) as exc:
            download_replace_media(download=download, media=download.media)
        assert (exc.value.code, exc.value.attribute) == ("download.media_unchanged", "media")
        assert DownloadVersion.objects.count() == 0

    def test_a_changelog_longer_than_500_characters_is_refused(self):
        download = factories.DownloadFactory()
        with pytest.raises(ServiceError) as exc:
            download_replace_media(
                download=download, media=factories.MediaFactory(), changelog="x" * 501
            )
        assert exc.value.attribute == "changelog"

    def test_a_link_download_becomes_a_file_and_keeps_the_link_in_its_history(self):
        download = factories.LinkDownloadFactory()
        link = download.url
        media = factories.MediaFactory()
        download_replace_media(download=download, media=media)
        download.refresh_from_db()
        assert (download.media, download.url) == (media, None)
        assert download.versions.last().url == link

    def test_an_api_key_author_is_recorded_as_no_user(self):
        from accounts.authentication import ApiKeyUser

        key, _raw = factories.api_key()
        version = download_replace_media(
            download=factories.DownloadFactory(),
            media=factories.MediaFactory(),
            created_by=ApiKeyUser(key),
        )
        assert version.created_by is None

    def test_notify_buyers_queues_one_email_run_for_the_version(self):
        download = factories.DownloadFactory()
        version = download_replace_media(
            download=download, media=factories.MediaFactory(), notify_buyers=True
        )
        backfill = Backfill.objects.get()
        assert (backfill.version, backfill.notify_buyers, backfill.status) == (
            version,
            True,
            Backfill.Status.PENDING,
        )

    def test_version_created_event_goes_to_subscribed_endpoints(self):
        webhook_endpoint_create(
            url="https://hooks.example.com/a", event_types=["download.version_created"]
        )
        download = factories.DownloadFactory()
        media = factories.MediaFactory(filename="v2.pdf")
        version = download_replace_media(download=download, media=media, changelog="v2")
        delivery = WebhookDelivery.objects.get()
        assert delivery.event_type == "download.version_created"
        assert delivery.payload["data"]["id"] == str(version.pk)
        assert delivery.payload["data"]["filename"] == "v2.pdf"
        assert delivery.payload["data"]["changelog"] == "v2"


class TestAnAnnouncedVersionIsDownloadable:
    """A version announced to buyers (`notify_buyers`) gives each of them a fresh allowance
    for it (`grants_renew_for_version`): the buyers told can download what they are told
    about, used up or expired before; nothing is taken from anyone."""

    @staticmethod
    def grant_of(paid_order, product, **state):
        grant = paid_order(product).grants.get()
        DownloadGrant.objects.filter(pk=grant.pk).update(**state)
        return grant

    def test_a_used_up_buyer_gets_the_products_allowance_and_keeps_their_count(self, paid_order):
        product = factories.ProductFactory(download_limit=3)
        download = factories.DownloadFactory(product=product)
        used_up = self.grant_of(paid_order, product, download_count=3)
        one_left = self.grant_of(paid_order, product, download_count=2)
        download_replace_media(
            download=download, media=factories.MediaFactory(), notify_buyers=True
        )
        for grant in (used_up, one_left):
            grant.refresh_from_db()
        assert (used_up.download_count, used_up.download_limit) == (3, 6)
        assert (one_left.download_count, one_left.download_limit) == (2, 5)
        assert used_up.refusal() is None and used_up.downloads_remaining == 3

    def test_an_expired_buyer_gets_the_products_period_from_now(self, paid_order):
        product = factories.ProductFactory(download_expiry_days=30)
        download = factories.DownloadFactory(product=product)
        expired = self.grant_of(paid_order, product, expires_at=timezone.now() - timedelta(days=1))
        before = timezone.now()
        download_replace_media(
            download=download, media=factories.MediaFactory(), notify_buyers=True
        )
        expired.refresh_from_db()
        assert before + timedelta(days=30) <= expired.expires_at
        assert expired.expires_at <= timezone.now() + timedelta(days=30)
        assert expired.refusal() is None

    def test_nothing_is_taken_away(self, paid_order):
        product = factories.ProductFactory(download_limit=3, download_expiry_days=30)
        download = factories.DownloadFactory(product=product)
        later = timezone.now() + timedelta(days=300)
        generous = self.grant_of(paid_order, product, download_limit=50, expires_at=later)
        unlimited = self.grant_of(paid_order, product, download_limit=None, expires_at=None)
        download_replace_media(
            download=download, media=factories.MediaFactory(), notify_buyers=True
        )
        generous.refresh_from_db()
        unlimited.refresh_from_db()
        assert (generous.download_limit, generous.expires_at) == (50, later)
        assert (unlimited.download_limit, unlimited.expires_at) == (None, None)

    def test_an_unlimited_product_makes_those_told_unlimited(self, paid_order, settings):
        settings.DOWNLOADS_DEFAULT_LIMIT = 0  # unlimited when the product sets none
        settings.DOWNLOADS_DEFAULT_EXPIRY_DAYS = 0  # never expires
        product = factories.ProductFactory(download_limit=None, download_expiry_days=None)
        download = factories.DownloadFactory(product=product)
        grant = self.grant_of(
            paid_order,
            product,
            download_limit=2,
            download_count=2,
            expires_at=timezone.now() - timedelta(days=1),
        )
        download_replace_media(
            download=download, media=factories.MediaFactory(), notify_buyers=True
        )
        grant.refresh_from_db()
        assert (grant.download_limit, grant.expires_at, grant.download_count) == (None, None, 2)

    def test_a_file_attached_to_an_order_gets_the_stores_allowance(self, settings):
        settings.DOWNLOADS_DEFAULT_LIMIT = 4
        download = factories.DownloadFactory(product=None)
        grant = factories.GrantFactory(download=download, download_limit=1, download_count=1)
        download_replace_media(
            download=download, media=factories.MediaFactory(), notify_buyers=True
        )
        grant.refresh_from_db()
        assert grant.download_limit == 5

    def test_revoked_grants_and_refunded_orders_get_nothing(self, paid_order):
        product = factories.ProductFactory(download_limit=1)
        download = factories.DownloadFactory(product=product)
        refunded = order_refund(order=paid_order(product)).grants.get()
        revoked = self.grant_of(paid_order, product, download_count=1, revoked_at=timezone.now())
        DownloadGrant.objects.filter(pk=refunded.pk).update(download_count=1)
        download_replace_media(
            download=download, media=factories.MediaFactory(), notify_buyers=True
        )
        for grant in (refunded, revoked):
            grant.refresh_from_db()
            assert grant.download_limit == 1 and grant.refusal() is not None

    def test_a_version_not_announced_changes_no_grant(self, paid_order):
        product = factories.ProductFactory(download_limit=2)
        download = factories.DownloadFactory(product=product)
        grant = self.grant_of(paid_order, product, download_count=2)
        download_replace_media(download=download, media=factories.MediaFactory())
        grant.refresh_from_db()
        assert grant.download_limit == 2 and grant.refusal() == "limit_reached"

    def test_other_files_of_the_order_are_not_touched(self, paid_order):
        product = factories.ProductFactory(download_limit=1)
        updated, other = (factories.DownloadFactory(product=product) for _ in range(2))
        order = paid_order(product)
        order.grants.update(download_count=1)
        download_replace_media(download=updated, media=factories.MediaFactory(), notify_buyers=True)
        limits = dict(order.grants.values_list("download_id", "download_limit"))
        assert limits == {updated.pk: 2, other.pk: 1}

    def test_the_buyer_emailed_about_the_version_can_download_it(self, client, paid_order):
        product = factories.ProductFactory(download_limit=2)
        download = factories.DownloadFactory(
            product=product, media=factories.MediaFactory(content=b"edition one")
        )
        order = paid_order(product, email="reader@example.com")
        grant = order.grants.get()
        for _ in range(2):
            assert body_of(client.get(f"/downloads/{grant.token}/")) == b"edition one"
        assert client.get(f"/downloads/{grant.token}/").status_code == 410

        new = factories.MediaFactory(content=b"edition two")
        download_replace_media(
            download=download, media=new, changelog="Chapter 4 rewritten", notify_buyers=True
        )
        backfill_run(backfill=Backfill.objects.get())
        (message,) = mail.outbox
        assert message.to == ["reader@example.com"] and "Chapter 4 rewritten" in message.body
        assert "start afresh" in message.body
        # The page the email links to offers a working button, and the button delivers.
        page = client.get(f"/account/orders/{order.access_token}/").content.decode()
        assert f'href="/downloads/{grant.token}/"' in page
        assert "2 of 4 downloads used" in page
        for _ in range(2):
            response = client.get(f"/downloads/{grant.token}/")
            assert response.status_code == 200 and body_of(response) == b"edition two"
        assert client.get(f"/downloads/{grant.token}/").status_code == 410


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_announcement_racing_twenty_downloads_keeps_the_limit_and_every_count(
    postgres_only,
):
    """The allowance is counted from the count the UPDATE itself sees, under the row's lock:
    downloads racing it neither deadlock nor pass a limit, and none is lost from the count."""
    product = factories.ProductFactory(download_limit=5)
    download = factories.DownloadFactory(product=product)
    grant = factories.GrantFactory(download=download, download_limit=10, download_count=7)
    media = factories.MediaFactory()

    def work(n):
        if n == 0:
            download_replace_media(download=download, media=media, notify_buyers=True)
            return None
        return grant_consume(grant=DownloadGrant.objects.get(pk=grant.pk)).allowed

    results = at_once(21, work)
    grant.refresh_from_db()
    served = results.count(True)
    seen = grant.download_limit - 5  # the count when the announcement's UPDATE ran
    assert 7 <= seen <= 10  # 0 to 3 taken before it
    assert seen <= grant.download_count <= grant.download_limit
    assert grant.download_count == 7 + served
    assert served == grant.events.filter(outcome="served").count()
