"""`manage.py db_worker`: django-tasks-db's worker with a heartbeat and the recovery of tasks
whose worker died, proved with real worker processes: one is SIGKILLed in the middle of a
webhook delivery and the next delivers it once, with the same Webhook-Id."""

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings as django_settings
from django.core.management import get_commands, load_command_class
from django.db import connection
from django_tasks_db.compat import TaskResultStatus
from django_tasks_db.management.commands.db_worker import Command as TasksDbCommand
from django_tasks_db.models import DBTaskResult

from downloads import tasks
from downloads.models import WebhookAttempt, WebhookDelivery, WorkerHeartbeat
from downloads.services import webhooks
from downloads.services.webhooks import webhook_endpoint_create

ROOT = Path(django_settings.BASE_DIR)
DEADLINE = 60  # seconds any one step may take on a loaded machine before the test fails


def test_db_worker_is_this_projects_command_with_django_tasks_dbs_options():
    assert get_commands()["db_worker"] == "downloads"
    command = load_command_class("downloads", "db_worker")
    assert isinstance(command, TasksDbCommand)
    ours = {action.dest for action in command.create_parser("manage.py", "db_worker")._actions}
    theirs = {a.dest for a in TasksDbCommand().create_parser("manage.py", "db_worker")._actions}
    assert ours == theirs


@pytest.mark.django_db(transaction=True)
def test_a_worker_that_stops_cleanly_leaves_no_heartbeat(run_worker):
    run_worker(worker_id="clean-exit")
    assert not WorkerHeartbeat.objects.exists()


# --- A worker killed mid-delivery ----------------------------------------------------------


class HoldingReceiver:
    """A webhook receiver on 127.0.0.1 that holds the first request until `release` (the end
    of the test) and then drops it unanswered, and answers every later one 200 at once."""

    def __init__(self):
        self.requests: list[str] = []  # Webhook-Id of each request, in arrival order
        self.answered: list[int] = []  # the statuses actually sent
        self.first_arrived = threading.Event()
        self.second_answered = threading.Event()
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(self.headers[webhooks.ID_HEADER])
                if len(receiver.requests) == 1:
                    receiver.first_arrived.set()
                    receiver.release.wait(timeout=2 * DEADLINE)
                    return  # its sender was killed meanwhile: nobody to answer
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                receiver.answered.append(200)
                if len(receiver.requests) >= 2:
                    receiver.second_answered.set()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def database_for_subprocesses(tmp_path):
    """A DATABASE_URL under which other processes see this test's database.

    PostgreSQL: the test database itself. SQLite: pytest-django keeps the test database in
    memory, where no other process can reach it, so it is copied to a file for the workers
    and copied back when they are done (the test then reads what they wrote)."""
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        user, password = quote(db["USER"], safe=""), quote(db["PASSWORD"], safe="")
        yield f"postgres://{user}:{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
        return
    if not connection.is_in_memory_db():
        yield f"sqlite:///{db['NAME']}"
        return
    connection.ensure_connection()
    path = tmp_path / "workers.sqlite3"
    with sqlite3.connect(path) as file_db:
        connection.connection.backup(file_db)
    file_db.close()
    yield f"sqlite:///{path}"
    back = sqlite3.connect(path)
    back.backup(connection.connection)
    back.close()


def start_worker(worker_id: str, *, database_url: str, tmp_path) -> subprocess.Popen:
    """A real `manage.py db_worker` process with short heartbeat settings, logging to a file."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DOWNLOADS_VAR_DIR": str(tmp_path / "var"),
        "DOWNLOADS_WORKER_HEARTBEAT": "0.5",
        "DOWNLOADS_WORKER_DEAD_AFTER": "2",
        "DOWNLOADS_WEBHOOK_ALLOW_HTTP": "1",
        "DOWNLOADS_WEBHOOK_ALLOW_PRIVATE": "1",
        "DOWNLOADS_WEBHOOK_TIMEOUT": str(2 * DEADLINE),  # the held request never times out
    }
    log = (tmp_path / f"{worker_id}.log").open("w")
    return subprocess.Popen(
        [
            *(sys.executable, "manage.py", "db_worker", "--no-reload", "--no-startup-delay"),
            *("--interval", "0.1", "--worker-id", worker_id, "-v", "2"),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_for(event: threading.Event, what: str, worker: subprocess.Popen, tmp_path, worker_id):
    deadline = time.monotonic() + DEADLINE
    while not event.wait(timeout=0.1):
        if worker.poll() is not None or time.monotonic() > deadline:
            log = (tmp_path / f"{worker_id}.log").read_text()
            pytest.fail(f"{what}: not within {DEADLINE} s (worker exit {worker.poll()}):\n{log}")


@pytest.mark.django_db(transaction=True)
def test_a_delivery_whose_worker_is_killed_mid_request_is_delivered_once_by_the_next_worker(
    tmp_path, paid_order, settings
):
    hook = HoldingReceiver()
    workers: list[subprocess.Popen] = []
    try:
        webhook_endpoint_create(url=hook.url, event_types=["order.paid"])
        paid_order()
        delivery = WebhookDelivery.objects.get()
        task = DBTaskResult.objects.get(task_path=tasks.webhook_deliver.module_path)

        with database_for_subprocesses(tmp_path) as database_url:
            first = start_worker("worker-one", database_url=database_url, tmp_path=tmp_path)
            workers.append(first)
            wait_for(hook.first_arrived, "the first worker posts", first, tmp_path, "worker-one")
            first.send_signal(signal.SIGKILL)  # mid-request: nothing recorded, task RUNNING
            first.wait(timeout=DEADLINE)

            second = start_worker("worker-two", database_url=database_url, tmp_path=tmp_path)
            workers.append(second)
            wait_for(
                hook.second_answered, "the next worker delivers", second, tmp_path, "worker-two"
            )
            second.send_signal(signal.SIGTERM)  # it records the attempt, ends the task, stops
            assert second.wait(timeout=DEADLINE) == 0
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait(timeout=DEADLINE)
        hook.stop()

    # The receiver saw a retry of one event (the same Webhook-Id) and took it once.
    assert hook.requests == [str(delivery.pk), str(delivery.pk)]
    assert hook.answered == [200]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (WebhookDelivery.Status.DELIVERED, 1)
    assert list(WebhookAttempt.objects.values_list("status_code", flat=True)) == [200]
    task.refresh_from_db()
    assert task.status == TaskResultStatus.SUCCESSFUL
    assert task.worker_ids == ["worker-one", "worker-two"]
    assert not DBTaskResult.objects.filter(status=TaskResultStatus.RUNNING).exists()
    # The killed worker's heartbeat is left stale; the one that stopped cleanly is gone.
    assert list(WorkerHeartbeat.objects.values_list("pk", flat=True)) == ["worker-one"]
    log = (tmp_path / "worker-two.log").read_text()
    assert "worker worker-one sent no heartbeat for 2 s" in log
    assert "ready to run again (recovery 1 of 3)" in log
