"""Workers in the back office: each heartbeat row listed alive or dead by the recovery's own
rule, and nothing there can be added, changed or deleted."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from downloads.models import WorkerHeartbeat

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:downloads_workerheartbeat_changelist")


def heartbeat(worker_id, *, age):
    at = timezone.now() - timedelta(seconds=age)
    return WorkerHeartbeat.objects.create(
        worker_id=worker_id, host="w-1", started_at=at, beat_at=at
    )


def test_the_list_shows_live_and_dead_workers(admin_client, settings):
    settings.DOWNLOADS_WORKER_DEAD_AFTER = 60
    heartbeat("beating", age=5)
    heartbeat("killed", age=61)
    page = admin_client.get(CHANGELIST).content.decode()
    rows = {line for line in page.split("<tr") if "beating" in line or "killed" in line}
    assert any("beating" in row and "alive" in row for row in rows)
    assert any("killed" in row and "dead (silent for over 60 s)" in row for row in rows)


def test_heartbeats_are_read_only(admin_client):
    row = heartbeat("beating", age=5)
    change = reverse("admin:downloads_workerheartbeat_change", args=[row.pk])
    assert admin_client.get(change).status_code == 200
    assert admin_client.post(change, {"host": "elsewhere"}).status_code == 403
    assert admin_client.get(reverse("admin:downloads_workerheartbeat_add")).status_code == 403
    delete = reverse("admin:downloads_workerheartbeat_delete", args=[row.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert WorkerHeartbeat.objects.get().host == "w-1"
