"""Background workers: the heartbeat each `manage.py db_worker` writes while it lives.

The task table belongs to django-tasks-db and records which worker ids ran a task
(`DBTaskResult.worker_ids`) but nothing about whether a worker is still there; this row does
(`downloads.services.workers` reads it to recover the tasks of a worker that died).
"""

from django.db import models


class WorkerHeartbeat(models.Model):
    """One running worker process, keyed by its django-tasks-db worker id.

    `beat_at` is written with the database's clock (`Now()`) and compared with it, so workers
    on hosts whose clocks disagree still judge each other alike. A worker deletes its row when
    it stops cleanly; the row of a worker that was killed stays, goes stale, and tells the
    others that its running task needs a new worker.
    """

    worker_id = models.CharField(primary_key=True, max_length=64)
    host = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField()
    beat_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-beat_at"]

    def __str__(self):
        return f"{self.worker_id} ({self.host} pid {self.pid})"
