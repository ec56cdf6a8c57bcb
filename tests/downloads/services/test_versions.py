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


class TestAdmin:
    def test_adding_a_version_in_the_admin_replaces_the_file(self, client, staff):
        client.force_login(staff)
        download = factories.DownloadFactory()
        new = factories.MediaFactory()
        response = client.post(
            "/admin/downloads/downloadversion/add/",
            {"download": str(download.pk), "media": str(new.pk), "changelog": "Second edition"},
        )
        assert response.status_code == 302
        download.refresh_from_db()
        assert download.media == new
        version = download.versions.first()
        assert (version.changelog, version.created_by) == ("Second edition", staff)
        assert client.get("/admin/downloads/downloadversion/").status_code == 200
        page = client.get(f"/admin/downloads/downloadversion/{version.pk}/change/")
        assert page.status_code == 200

    def test_the_current_file_again_is_refused_on_the_form(self, client, staff):
        client.force_login(staff)
        download = factories.DownloadFactory()
        response = client.post(
            "/admin/downloads/downloadversion/add/",
            {"download": str(download.pk), "media": str(download.media_id)},
        )
        assert response.status_code == 200
        assert "already the current version" in response.content.decode()
        assert not DownloadVersion.objects.exists()


def api_client():
    from rest_framework.test import APIClient

    _key, raw = factories.api_key()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


class TestApi:
    def test_post_a_version_then_list_the_history_newest_first(self):
        api = api_client()
        download = factories.DownloadFactory()
        original = download.media
        new = factories.MediaFactory(filename="v2.pdf")
        response = api.post(
            f"/api/v1/downloads/{download.pk}/versions",
            {"media": str(new.pk), "changelog": "v2"},
            format="json",
        )
        assert response.status_code == 201
        assert response.json()["object"] == "download_version"
        assert (response.json()["filename"], response.json()["current"]) == ("v2.pdf", True)
        body = api.get(f"/api/v1/downloads/{download.pk}/versions").json()
        assert body["object"] == "list"
        assert [(v["media"], v["current"]) for v in body["data"]] == [
            (str(new.pk), True),
            (str(original.pk), False),
        ]
        assert api.get(f"/api/v1/downloads/{download.pk}").json()["media"] == str(new.pk)

    def test_a_media_change_on_update_keeps_the_history(self):
        api = api_client()
        download = factories.DownloadFactory()
        new = factories.MediaFactory()
        response = api.patch(
            f"/api/v1/downloads/{download.pk}", {"media": str(new.pk)}, format="json"
        )
        assert response.status_code == 200
        assert download.versions.count() == 2

    def test_unknown_download_404_same_file_422_unknown_media_422(self):
        api = api_client()
        download = factories.DownloadFactory()
        missing = api.post(
            "/api/v1/downloads/00000000-0000-0000-0000-000000000000/versions",
            {"media": str(download.media_id)},
            format="json",
        )
        assert missing.status_code == 404
        same = api.post(
            f"/api/v1/downloads/{download.pk}/versions",
            {"media": str(download.media_id)},
            format="json",
        )
        assert (same.status_code, same.json()["code"]) == (422, "download.media_unchanged")
        unknown = api.post(
            f"/api/v1/downloads/{download.pk}/versions",
            {"media": "00000000-0000-0000-0000-000000000000"},
            format="json",
        )
        assert unknown.status_code == 422
        assert api.get("/api/v1/downloads/not-a-uuid/versions").status_code == 404


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
