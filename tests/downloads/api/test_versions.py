"""A download's versions and backfills through the API: /api/v1/downloads/<id>/versions,
/api/v1/downloads/<id>/backfills and /api/v1/backfills."""

import pytest

from downloads.models import Backfill
from downloads.services.backfills import backfill_run
from tests import factories

pytestmark = pytest.mark.django_db


class TestDownloadVersionApi:
    def test_post_a_version_then_list_the_history_newest_first(self, api):
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

    def test_a_media_change_on_update_keeps_the_history(self, api):
        download = factories.DownloadFactory()
        new = factories.MediaFactory()
        response = api.patch(
            f"/api/v1/downloads/{download.pk}", {"media": str(new.pk)}, format="json"
        )
        assert response.status_code == 200
        assert download.versions.count() == 2

    def test_unknown_download_404_same_file_422_unknown_media_422(self, api):
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


class TestBackfillApi:
    def test_post_starts_a_backfill_and_its_progress_can_be_read(self, store, api):
        download = store["download"]
        response = api.post(
            f"/api/v1/downloads/{download.pk}/backfills", {"notify_buyers": True}, format="json"
        )
        assert response.status_code == 202
        body = response.json()
        assert (body["object"], body["status"], body["kind"]) == (
            "backfill",
            "pending",
            "deliver_to_existing_orders",
        )
        backfill_run(backfill=Backfill.objects.get(pk=body["id"]))
        done = api.get(f"/api/v1/backfills/{body['id']}").json()
        assert (done["status"], done["grants_created"], done["emails_sent"]) == ("done", 7, 6)
        listing = api.get(f"/api/v1/downloads/{download.pk}/backfills").json()
        assert [row["id"] for row in listing["data"]] == [body["id"]]
        loose = factories.DownloadFactory(product=None)
        refused = api.post(f"/api/v1/downloads/{loose.pk}/backfills", {}, format="json")
        assert (refused.status_code, refused.json()["code"]) == (422, "download.no_product")
