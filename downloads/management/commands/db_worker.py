"""`manage.py db_worker`: django-tasks-db's worker, beating and recovering stuck tasks.

The options and the loop are django-tasks-db's own (`--queue-name`, `--interval`, `--batch`,
`--max-tasks`, `--worker-id`, `--reload`, …; README "Deploying"). This command takes the
place of that one because `downloads` comes before `django_tasks_db` in INSTALLED_APPS, and
adds a heartbeat thread per worker: it beats every DOWNLOADS_WORKER_HEARTBEAT seconds and, at
each beat, recovers the tasks whose worker died (`services.workers.tasks_recover`). The
recovery rides on the heartbeat rather than on the claiming loop because that loop does
nothing else while a task runs, and a stuck task must become runnable within two minutes
even while every worker is busy.
"""

import logging
import os
import socket
import threading

from django.conf import settings
from django.core.management.base import CommandError
from django.db import close_old_connections, connection
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV, run_with_reloader
from django_tasks_db.management.commands import db_worker

from ...services.workers import tasks_recover, worker_beat, worker_retire

logger = logging.getLogger("downloads.services.workers")


class Heartbeat:
    """A daemon thread that beats for one worker and recovers stuck tasks at every beat.

    The thread owns its database connection and its heartbeat row from the first beat to the
    last: `start()` returns once the first beat and recovery are done (so the worker claims
    nothing before a task left under its own id is recovered), `stop()` deletes the row. A
    failed beat (the database restarting) is logged and tried again at the next one."""

    def __init__(self, *, worker_id: str, interval: float):
        self.worker_id = worker_id
        self.interval = interval
        self._stopping = threading.Event()
        self._first_done = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"heartbeat-{worker_id}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        self._first_done.wait(timeout=max(30.0, 3 * self.interval))

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=max(10.0, 2 * self.interval))

    def _beat(self, *, starting: bool = False) -> None:
        try:
            close_old_connections()
            worker_beat(
                worker_id=self.worker_id,
                host=socket.gethostname(),
                pid=os.getpid(),
                starting=starting,
            )
            tasks_recover(starting_worker_id=self.worker_id if starting else None)
        except Exception:  # the next beat tries again; the worker itself goes on
            logger.warning("Worker %s: heartbeat failed.", self.worker_id, exc_info=True)

    def _run(self) -> None:
        try:
            self._beat(starting=True)
            self._first_done.set()
            while not self._stopping.wait(self.interval):
                self._beat()
            try:
                worker_retire(worker_id=self.worker_id)
            except Exception:  # its row goes stale and is forgotten a day later
                logger.warning("Worker %s: could not retire.", self.worker_id, exc_info=True)
        finally:
            self._first_done.set()
            connection.close()  # this thread's own connection


class Worker(db_worker.Worker):
    """django-tasks-db's Worker, running its loop beside a Heartbeat."""

    def run(self) -> None:
        heartbeat = Heartbeat(
            worker_id=self.worker_id, interval=settings.DOWNLOADS_WORKER_HEARTBEAT
        )
        heartbeat.start()
        try:
            super().run()
        finally:  # also on SystemExit from the SIGTERM/SIGINT handler
            heartbeat.stop()


class Command(db_worker.Command):
    help = (
        "Run a database background worker (django-tasks-db's), with a heartbeat and the "
        "recovery of tasks whose worker died."
    )

    def handle(
        self,
        *,
        verbosity: int,
        queue_name: str,
        interval: float,
        batch: bool,
        backend_name: str,
        startup_delay: bool,
        reload: bool,
        max_tasks: int | None,
        worker_id: str,
        exclude_queues: str,
        **options,
    ) -> None:
        # django-tasks-db 0.13's Command.handle, building this module's Worker.
        self.configure_logging(verbosity)

        if reload and batch:
            db_worker.logger.warning(
                "Warning: --reload and --batch cannot be specified together. Disabling autoreload."
            )
            reload = False

        queue_names = queue_name.split(",")
        excluded_queue_names = exclude_queues.split(",") if exclude_queues else []
        if excluded_queue_names and "*" not in queue_names:
            raise CommandError("--exclude-queues can only be used with --queue-name=*")

        worker = Worker(
            queue_names=queue_names,
            interval=interval,
            batch=batch,
            backend_name=backend_name,
            startup_delay=startup_delay,
            max_tasks=max_tasks,
            worker_id=worker_id,
            excluded_queue_names=excluded_queue_names,
        )
        if reload:
            if os.environ.get(DJANGO_AUTORELOAD_ENV) == "true":
                worker.configure_signals()  # only the reloaded child handles signals
            run_with_reloader(worker.run)
        else:
            worker.configure_signals()
            worker.run()
