"""Workers' heartbeats and the recovery of tasks whose worker died: a dead worker's task runs
again, a live worker's is left alone, two recoveries at once recover a task once, a task that
keeps losing its worker is failed, and what was left pending (a stamped copy, a webhook
delivery) is done once."""

import logging
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.urls import reverse
from django.utils import timezone
from django_tasks_db.compat import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from downloads import tasks
from downloads.models import StampedCopy, WebhookDelivery, WorkerHeartbeat
from downloads.services import webhooks
from downloads.services.webhooks import webhook_endpoint_create
from downloads.services.workers import (
    WorkerLost,
    tasks_recover,
    worker_beat,
    worker_retire,
)
from tests import factories, pdfs
from tests.concurrency import at_once

RUNNING, READY = TaskResultStatus.RUNNING, TaskResultStatus.READY


def heartbeat(worker_id: str, *, age: float) -> WorkerHeartbeat:
    """A worker's heartbeat row, last written `age` seconds ago."""
    at = timezone.now() - timedelta(seconds=age)
    return WorkerHeartbeat.objects.create(worker_id=worker_id, started_at=at, beat_at=at)


def running(*worker_ids: str, for_seconds: float = 5, task=tasks.webhook_deliver, args=("x",)):
    """A task claimed once per worker id (the last one runs it), started `for_seconds` ago."""
    result = task.enqueue(*args)
    DBTaskResult.objects.filter(pk=result.id).update(
        status=RUNNING,
        started_at=timezone.now() - timedelta(seconds=for_seconds),
        worker_ids=list(worker_ids),
    )
    return DBTaskResult.objects.get(pk=result.id)


def reloaded(task: DBTaskResult) -> DBTaskResult:
    return DBTaskResult.objects.get(pk=task.pk)


def test_the_defaults_make_a_dead_workers_task_runnable_within_two_minutes():
    # Stale after DEAD_AFTER, noticed at the next beat of any other worker.
    heartbeat_s = django_settings.DOWNLOADS_WORKER_HEARTBEAT
    assert (heartbeat_s, django_settings.DOWNLOADS_WORKER_DEAD_AFTER) == (10, 60)
    assert django_settings.DOWNLOADS_WORKER_DEAD_AFTER + heartbeat_s <= 120


@pytest.mark.django_db
class TestHeartbeat:
    def test_the_first_beat_records_the_worker_and_later_beats_move_its_time(self):
        worker_beat(worker_id="w1", host="web-1", pid=4242, starting=True)
        first = WorkerHeartbeat.objects.get()
        assert (first.worker_id, first.host, first.pid) == ("w1", "web-1", 4242)
        assert abs(first.beat_at - timezone.now()) < timedelta(seconds=5)
        WorkerHeartbeat.objects.filter(pk="w1").update(beat_at=first.beat_at - timedelta(hours=1))
        worker_beat(worker_id="w1")
        assert WorkerHeartbeat.objects.get().beat_at >= first.beat_at

    def test_a_beat_whose_row_is_gone_makes_it_again(self):
        worker_beat(worker_id="w1")
        assert WorkerHeartbeat.objects.filter(pk="w1").exists()

    def test_a_starting_worker_forgets_workers_dead_for_a_day_and_keeps_the_others(self):
        heartbeat("long-gone", age=2 * 86400)
        heartbeat("gone-an-hour", age=3600)
        worker_beat(worker_id="w1", starting=True)
        assert set(WorkerHeartbeat.objects.values_list("pk", flat=True)) == {"gone-an-hour", "w1"}

    def test_a_worker_that_stops_cleanly_is_forgotten(self):
        worker_beat(worker_id="w1", starting=True)
        worker_retire(worker_id="w1")
        assert not WorkerHeartbeat.objects.exists()


@pytest.mark.django_db
class TestRecovery:
    def test_a_task_whose_worker_stopped_beating_is_ready_to_run_now(self, settings):
        settings.DOWNLOADS_WORKER_DEAD_AFTER = 60
        heartbeat("gone", age=61)
        task = running("gone")
        before = timezone.now()

        recovery = tasks_recover()

        assert recovery.ready == [str(task.pk)] and recovery.failed == []
        task = reloaded(task)
        assert task.status == READY
        assert before <= task.run_after <= timezone.now()
        assert DBTaskResult.objects.ready().filter(pk=task.pk).exists()  # what workers claim

    def test_a_task_of_a_worker_that_still_beats_is_left_running(
        self, settings, django_assert_num_queries
    ):
        settings.DOWNLOADS_WORKER_DEAD_AFTER = 60
        heartbeat("alive", age=50)
        task = running("alive", for_seconds=200)  # longer than the worker's silence

        with django_assert_num_queries(2):  # the running tasks, their workers' heartbeats
            recovery = tasks_recover()

        assert recovery.ready == recovery.failed == []
        assert reloaded(task).status == RUNNING

    def test_with_nothing_running_a_recovery_is_one_query(self, django_assert_num_queries):
        heartbeat("gone", age=3600)
        with django_assert_num_queries(1):
            assert tasks_recover().ready == []

    def test_a_run_past_its_tasks_timeout_is_taken_over_even_from_a_live_worker(self):
        heartbeat("alive", age=1)
        timeout = tasks.RUN_TIMEOUTS[tasks.webhook_deliver.module_path]
        hung = running("alive", for_seconds=timeout + 5)
        slow = running("alive", for_seconds=timeout - 30)
        assert tasks_recover().ready == [str(hung.pk)]
        assert reloaded(slow).status == RUNNING

    def test_a_worker_without_a_heartbeat_keeps_its_task_until_the_tasks_timeout(self):
        # A worker that writes no heartbeat (django-tasks-db's own command, an old release).
        timeout = tasks.RUN_TIMEOUTS[tasks.backfill_run.module_path]
        within = running("silent", for_seconds=timeout - 60, task=tasks.backfill_run)
        past = running("silent", for_seconds=timeout + 1, task=tasks.backfill_run)
        assert tasks_recover().ready == [str(past.pk)]
        assert reloaded(within).status == RUNNING

    def test_a_worker_starting_under_the_id_of_a_dead_one_recovers_its_task_at_once(self):
        heartbeat("worker-1", age=1)  # the row the killed process wrote a second ago
        task = running("worker-1")
        assert tasks_recover().ready == []
        assert tasks_recover(starting_worker_id="worker-1").ready == [str(task.pk)]

    def test_only_the_last_worker_of_a_task_counts(self):
        heartbeat("first", age=3600)
        heartbeat("second", age=1)
        task = running("first", "second")
        assert tasks_recover().ready == []
        assert reloaded(task).status == RUNNING

    def test_a_task_that_lost_its_worker_more_than_the_limit_is_failed_saying_why(
        self, settings, caplog
    ):
        settings.DOWNLOADS_WORKER_MAX_RECOVERIES = 2
        for worker in ("w1", "w2", "w3"):
            heartbeat(worker, age=3600)
        twice = running("w1", "w2")  # recovered once: one more recovery allowed
        thrice = running("w1", "w2", "w3")  # recovered twice: that was the last

        with caplog.at_level(logging.WARNING, logger="downloads.services.workers"):
            recovery = tasks_recover()

        assert (recovery.ready, recovery.failed) == ([str(twice.pk)], [str(thrice.pk)])
        failed = reloaded(thrice)
        assert failed.status == TaskResultStatus.FAILED and failed.finished_at is not None
        assert failed.exception_class_path == "downloads.services.workers.WorkerLost"
        assert failed.traceback.startswith("downloads.services.workers.WorkerLost: Task ")
        assert "started 3 times" in failed.traceback and "w1, w2, w3" in failed.traceback
        assert "DOWNLOADS_WORKER_MAX_RECOVERIES" in failed.traceback
        assert failed.task_result.errors[0].exception_class is WorkerLost
        assert reloaded(twice).status == READY
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1 and str(thrice.pk) in errors[0].getMessage()
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "recovery 2 of 2" in warnings[0]

    def test_with_no_recoveries_allowed_a_stuck_task_fails_at_once(self, settings):
        settings.DOWNLOADS_WORKER_MAX_RECOVERIES = 0
        heartbeat("gone", age=3600)
        task = running("gone")
        assert tasks_recover().failed == [str(task.pk)]

    def test_a_finished_task_is_never_touched(self):
        heartbeat("gone", age=3600)
        task = running("gone")
        DBTaskResult.objects.filter(pk=task.pk).update(status=TaskResultStatus.SUCCESSFUL)
        assert tasks_recover().ready == []
        assert reloaded(task).status == TaskResultStatus.SUCCESSFUL


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_workers_recovering_at_the_same_moment_recover_a_task_once(postgres_only):
    heartbeat("gone", age=3600)
    task = running("gone")
    passes = at_once(8, lambda _n: tasks_recover())
    assert sorted(len(recovery.ready) for recovery in passes) == [0] * 7 + [1]
    assert reloaded(task).status == READY


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_workers_giving_up_at_the_same_moment_fail_a_task_once(postgres_only, settings, caplog):
    settings.DOWNLOADS_WORKER_MAX_RECOVERIES = 0
    heartbeat("gone", age=3600)
    running("gone")
    with caplog.at_level(logging.ERROR, logger="downloads.services.workers"):
        passes = at_once(8, lambda _n: tasks_recover())
    assert sum(len(recovery.failed) for recovery in passes) == 1
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1


# --- What a dead worker left pending, done by the next worker (the real db_worker) ------------


def left_by_a_dead_worker(task_path: str) -> DBTaskResult:
    """The task of `task_path` as a worker killed while running it leaves it."""
    heartbeat("killed", age=3600)
    task = DBTaskResult.objects.get(task_path=task_path)
    DBTaskResult.objects.filter(pk=task.pk).update(
        status=RUNNING, started_at=timezone.now() - timedelta(minutes=2), worker_ids=["killed"]
    )
    return task


@pytest.mark.django_db(transaction=True)
class TestTheNextWorker:
    def test_makes_the_stamped_copy_a_dead_worker_left_pending(
        self, client, paid_order, run_worker
    ):
        media = factories.MediaFactory(content=pdfs.book(2), filename="Guide.pdf")
        download = factories.DownloadFactory(media=media, stamp=True)
        grant = paid_order(download.product).grants.get()
        task = left_by_a_dead_worker(tasks.stamped_copy_make.module_path)
        url = reverse("downloads:download", args=[grant.token])
        assert client.get(url).status_code == 503  # not ready: the buyer is told to wait

        run_worker()  # recovers at its first heartbeat, then runs what is ready

        assert StampedCopy.objects.get(grant=grant).status == StampedCopy.Status.READY
        assert reloaded(task).status == TaskResultStatus.SUCCESSFUL
        assert reloaded(task).worker_ids[0] == "killed"
        response = client.get(url)
        assert response.status_code == 200
        assert b"".join(response.streaming_content).startswith(b"%PDF")

    def test_delivers_the_file_unstamped_when_its_copy_s_task_is_given_up(
        self, client, paid_order, settings
    ):
        settings.DOWNLOADS_WORKER_MAX_RECOVERIES = 0
        media = factories.MediaFactory(content=pdfs.book(2), filename="Guide.pdf")
        download = factories.DownloadFactory(media=media, stamp=True)
        grant = paid_order(download.product).grants.get()
        task = left_by_a_dead_worker(tasks.stamped_copy_make.module_path)
        url = reverse("downloads:download", args=[grant.token])
        assert client.get(url).status_code == 503

        assert tasks_recover().failed == [str(task.pk)]

        copy = StampedCopy.objects.get(grant=grant)
        assert copy.status == StampedCopy.Status.UNSTAMPABLE
        assert "worker stopped" in copy.error  # what the merchant sees on the file
        response = client.get(url)
        assert response.status_code == 200  # the file itself, not a 503 for ever
        assert b"".join(response.streaming_content) == media.file.open("rb").read()

    def test_sends_a_pending_delivery_once_with_its_webhook_id(
        self, receiver, paid_order, run_worker
    ):
        hook = receiver()
        webhook_endpoint_create(url=hook.url, event_types=["order.paid"])
        paid_order()
        delivery = WebhookDelivery.objects.get()
        task = left_by_a_dead_worker(tasks.webhook_deliver.module_path)

        run_worker()

        assert [r["headers"][webhooks.ID_HEADER] for r in hook.requests] == [str(delivery.pk)]
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts) == (WebhookDelivery.Status.DELIVERED, 1)
        assert reloaded(task).status == TaskResultStatus.SUCCESSFUL

    def test_does_not_send_again_a_delivery_recorded_as_delivered(
        self, receiver, paid_order, run_worker
    ):
        # The first worker died after recording the delivery and before ending its task.
        hook = receiver()
        webhook_endpoint_create(url=hook.url, event_types=["order.paid"])
        paid_order()
        delivered_at = timezone.now()
        WebhookDelivery.objects.update(
            status=WebhookDelivery.Status.DELIVERED, attempts=1, delivered_at=delivered_at
        )
        task = left_by_a_dead_worker(tasks.webhook_deliver.module_path)

        run_worker()

        assert hook.requests == []
        assert reloaded(task).status == TaskResultStatus.SUCCESSFUL
        delivery = WebhookDelivery.objects.get()
        assert (delivery.status, delivery.attempts) == (WebhookDelivery.Status.DELIVERED, 1)
