import pytest
from django.utils import timezone

from downloads.errors import ServiceError
from downloads.models import Backfill, DownloadVersion, WebhookDelivery
from downloads.services.versions import download_replace_media
from downloads.services.webhooks import webhook_endpoint_create
from tests import factories

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
