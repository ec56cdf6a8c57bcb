"""A download's versions and backfills in the back office: adding a version replaces the
file, adding a backfill starts it, and a failed one can be resumed."""

import pytest
from django_tasks_db.models import DBTaskResult

from downloads.models import Backfill, DownloadVersion
from downloads.services.backfills import backfill_run
from tests import factories

pytestmark = pytest.mark.django_db


class TestDownloadVersionAdmin:
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


class TestBackfillAdmin:
    def test_adding_a_backfill_starts_it_and_the_list_shows_progress(
        self, client, staff, store, django_assert_max_num_queries
    ):
        client.force_login(staff)
        download = store["download"]
        response = client.post(
            "/admin/downloads/backfill/add/", {"download": str(download.pk), "notify_buyers": "on"}
        )
        assert response.status_code == 302
        backfill = Backfill.objects.get()
        assert backfill.notify_buyers
        backfill_run(backfill=backfill)
        with django_assert_max_num_queries(8):
            listing = client.get("/admin/downloads/backfill/")
        assert listing.status_code == 200
        assert "File for existing orders" in listing.content.decode()
        page = client.get(f"/admin/downloads/backfill/{backfill.pk}/change/")
        assert page.status_code == 200

    def test_a_download_without_product_is_refused_on_the_form(self, client, staff):
        client.force_login(staff)
        loose = factories.DownloadFactory(product=None)
        response = client.post("/admin/downloads/backfill/add/", {"download": str(loose.pk)})
        assert response.status_code == 200
        assert "attach it to single orders" in response.content.decode()

    def test_resume_queues_a_failed_backfill_again(self, client, staff, store):
        client.force_login(staff)
        backfill = Backfill.objects.create(download=store["download"], status="failed")
        response = client.post(
            "/admin/downloads/backfill/",
            {"action": "resume", "_selected_action": [str(backfill.pk)]},
        )
        assert response.status_code == 302
        assert DBTaskResult.objects.filter(
            task_path="downloads.tasks.backfill_run", args_kwargs__args=[str(backfill.pk)]
        ).exists()

    def test_backfills_and_versions_are_never_deleted_here(self, admin_client):
        download = factories.DownloadFactory()
        backfill = Backfill.objects.create(download=download, status="done")
        version = DownloadVersion.objects.create(download=download, media=download.media)
        for model, row in (("backfill", backfill), ("downloadversion", version)):
            url = f"/admin/downloads/{model}/{row.pk}/delete/"
            assert admin_client.post(url, {"post": "yes"}).status_code == 403
            form = admin_client.get(f"/admin/downloads/{model}/").context["action_form"]
            offered = [name for name, _ in form.fields["action"].choices] if form else []
            assert "delete_selected" not in offered
        assert Backfill.objects.filter(pk=backfill.pk).exists()
        assert DownloadVersion.objects.filter(pk=version.pk).exists()
