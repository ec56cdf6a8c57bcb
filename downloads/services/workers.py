"""Workers: the heartbeat of each `manage.py db_worker`, and the tasks whose worker died.

django-tasks-db marks a task RUNNING when a worker claims it and finished when that worker
ends it; a worker killed in between (SIGKILL, the OOM killer, a lost host) would leave it
RUNNING for ever, and with it a webhook delivery, a backfill, a buyer's email or a stamped
copy that never happens.

Rules owned here:
- A worker is alive while its heartbeat (`WorkerHeartbeat.beat_at`, written and compared with
  the database's clock) is younger than DOWNLOADS_WORKER_DEAD_AFTER seconds; it beats every
  DOWNLOADS_WORKER_HEARTBEAT seconds (`worker_beat`) from a thread, whatever task it runs.
- A RUNNING task is stuck (`tasks_recover`) when the last worker that claimed it is dead, when
  that worker id is the one starting now (a worker restarted with the same `--worker-id` has
  nothing running yet), or when the run is older than its task's timeout
  (`tasks.RUN_TIMEOUTS`: a call that hangs, or a worker that writes no heartbeat).
- A stuck task becomes READY to run now through one conditional UPDATE of the run it was (its
  id, RUNNING, its `started_at`): of two workers recovering at once exactly one wins, and a
  run that ends meanwhile keeps its end. Every worker recovers at each beat, so a task is
  runnable again within DEAD_AFTER + HEARTBEAT seconds of its worker's death (70 by default).
- A task is started at most DOWNLOADS_WORKER_MAX_RECOVERIES + 1 times (`worker_ids` holds one
  worker per start): one found stuck after that is FAILED with a `WorkerLost` error naming
  its workers, rather than given to the next worker to kill; this is logged as an error.
- Running a task again is safe (`downloads.tasks`); a webhook delivery keeps its `Webhook-Id`
  on every run and is not sent again once recorded as delivered (`services.webhooks`).
"""

import logging
import traceback
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone
from django_tasks_db.compat import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from .. import tasks
from ..models import WorkerHeartbeat

logger = logging.getLogger(__name__)

# A heartbeat row left by a worker that was killed is kept this long (its tasks are recovered
# within a minute or so), then dropped when a worker starts.
FORGET_AFTER = timedelta(days=1)


class WorkerLost(Exception):
    """The worker running a task stopped before the task ended, too many times in a row."""


@dataclass
class Recovery:
    """What one `tasks_recover` pass did: the ids of the tasks made READY and FAILED."""

    ready: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def worker_beat(
    *, worker_id: str, host: str = "", pid: int | None = None, starting: bool = False
) -> None:
    """Record that the worker `worker_id` is alive now (the database's time).

    `starting`: the worker's first beat, which also records where it runs and since when, and
    forgets the rows of workers dead for a day. A row that is missing (first start, or
    deleted) is created."""
    values = {"beat_at": Now()}
    if starting:
        values.update(host=host[:255], pid=pid, started_at=Now())
        WorkerHeartbeat.objects.filter(beat_at__lt=Now() - FORGET_AFTER).delete()
    if WorkerHeartbeat.objects.filter(pk=worker_id).update(**values):
        return
    try:
        with transaction.atomic():
            WorkerHeartbeat.objects.create(
                worker_id=worker_id, host=host[:255], pid=pid, started_at=Now(), beat_at=Now()
            )
    except IntegrityError:  # created by the same id meanwhile: beat on that row
        WorkerHeartbeat.objects.filter(pk=worker_id).update(**values)


def worker_retire(*, worker_id: str) -> None:
    """Forget a worker that stops cleanly (it finished or gave back what it was running)."""
    WorkerHeartbeat.objects.filter(pk=worker_id).delete()


def worker_dead_q() -> Q:
    """The heartbeats of dead workers: older than DOWNLOADS_WORKER_DEAD_AFTER seconds by the
    database's clock (the recovery and the admin's list of workers both ask this)."""
    return Q(beat_at__lt=Now() - timedelta(seconds=settings.DOWNLOADS_WORKER_DEAD_AFTER))


def run_timeout(task_path: str) -> timedelta:
    """How long one run of the task at `task_path` may take before it counts as stuck."""
    return timedelta(seconds=tasks.RUN_TIMEOUTS.get(task_path, tasks.DEFAULT_RUN_TIMEOUT))


def tasks_recover(*, starting_worker_id: str | None = None) -> Recovery:
    """Make every stuck RUNNING task READY again, or FAILED past its recoveries (see above).

    One query when nothing runs (a partial index holds the RUNNING rows, migration 0007), two
    when tasks run and none is stuck, plus one UPDATE per stuck task. `starting_worker_id`:
    the id of the worker calling this before it claims anything; a task still RUNNING under
    that id was left by an earlier process with the same id."""
    running = list(
        DBTaskResult.objects.filter(status=TaskResultStatus.RUNNING)
        .order_by()
        .values_list("pk", "task_path", "started_at", "worker_ids", "args_kwargs")
    )
    recovery = Recovery()
    if not running:
        return recovery
    last_workers = {worker_ids[-1] for *_, worker_ids, _ in running if worker_ids}
    dead = (
        set(
            WorkerHeartbeat.objects.filter(worker_dead_q(), pk__in=last_workers).values_list(
                "pk", flat=True
            )
        )
        if last_workers
        else set()
    )
    now = timezone.now()
    for pk, task_path, started_at, worker_ids, args_kwargs in running:
        worker = worker_ids[-1] if worker_ids else None
        timeout = run_timeout(task_path)
        if worker is not None and worker in dead:
            silence = settings.DOWNLOADS_WORKER_DEAD_AFTER
            why = f"worker {worker} sent no heartbeat for {silence:g} s"
        elif worker is not None and worker == starting_worker_id:
            why = f"worker {worker} started again"
        elif started_at is None or now - started_at > timeout:
            why = f"it ran longer than its timeout of {timeout.total_seconds():g} s"
        else:
            continue
        outcome = _task_recover(
            pk=pk, task_path=task_path, started_at=started_at, ids=worker_ids, why=why
        )
        if outcome == "failed" and task_path in tasks.GIVEN_UP:
            # The rows the task was to finish must not wait for it for ever.
            tasks.GIVEN_UP[task_path](*args_kwargs.get("args", ()), **args_kwargs.get("kwargs", {}))
        if outcome is not None:  # None: another worker recovered it, or the run ended
            getattr(recovery, outcome).append(str(pk))
    return recovery


def _task_recover(*, pk, task_path, started_at, ids, why) -> str | None:
    """Make one stuck run READY ("ready") or FAILED ("failed") if it is still that run."""
    run = DBTaskResult.objects.filter(pk=pk, status=TaskResultStatus.RUNNING, started_at=started_at)
    name = task_path.rsplit(".", 1)[-1]
    limit = settings.DOWNLOADS_WORKER_MAX_RECOVERIES
    recoveries = max(len(ids) - 1, 0)  # every start but the first followed a recovery
    if recoveries < limit:
        if not run.update(status=TaskResultStatus.READY, run_after=timezone.now()):
            return None
        logger.warning(
            "Task %s %s was stuck (%s): ready to run again (recovery %d of %d).",
            name,
            pk,
            why,
            recoveries + 1,
            limit,
        )
        return "ready"
    error = WorkerLost(
        f"Task {name} {pk} was started {len(ids)} times and its worker stopped before it "
        f"ended each time (workers: {', '.join(ids) or 'none'}; the last time {why}). "
        f"It is not run again after {limit} recoveries (DOWNLOADS_WORKER_MAX_RECOVERIES)."
    )
    failed = run.update(
        status=TaskResultStatus.FAILED,
        finished_at=timezone.now(),
        return_value=None,
        exception_class_path=f"{WorkerLost.__module__}.{WorkerLost.__qualname__}",
        traceback="".join(traceback.format_exception_only(error)),
    )
    if not failed:
        return None
    logger.error("%s", error)
    return "failed"
