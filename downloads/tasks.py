"""Background tasks, on the django-tasks backport of Django's Tasks API (`django.tasks` in
Django 6): webhook deliveries and backfills (grants and buyer emails for files added or
changed after the sale).

Production runs the database backend and one or more `manage.py db_worker` processes; there
is no other server. The task functions only take ids and re-read the rows, so a task that
runs late, twice or after a crash does no harm.
"""

from datetime import datetime
from functools import partial

from django.db import transaction

try:  # Django 6 ships the Tasks API; on Django 5.2 the django-tasks backport provides it.
    from django.tasks import task  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the Django version
    from django_tasks import task


def _is_database_backend(backend) -> bool:
    # The backport's and Django's own database backends both write the task row with the ORM.
    return type(backend).__name__ == "DatabaseBackend"


def enqueue_in_transaction(task_obj, *args, run_after: datetime | None = None) -> None:
    """Enqueue `task_obj(*args)` so that it exists only if the current transaction commits.

    With the database backend the task row is INSERTed in the current transaction itself: a
    crash right after the commit cannot lose it, and a rollback removes it. Other backends
    (the immediate one, an external queue) cannot join the transaction, so they are handed
    the task after the commit.
    """
    backend = task_obj.get_backend()
    if run_after is not None and backend.supports_defer:
        task_obj = task_obj.using(run_after=run_after)
    if _is_database_backend(backend):
        task_obj.enqueue(*args)
    else:
        transaction.on_commit(partial(task_obj.enqueue, *args))


@task
def webhook_deliver(delivery_id: str) -> str | None:
    """One attempt at a webhook delivery; schedules its own retry on failure."""
    from .webhooks import deliver

    delivery = deliver(delivery_id=delivery_id)
    return delivery.status if delivery is not None else None


@task
def backfill_run(backfill_id: str) -> str | None:
    """Run or resume a backfill (grants for existing orders, and/or buyer emails)."""
    from .models import Backfill
    from .services import download_backfill_run

    backfill = Backfill.objects.filter(pk=backfill_id).first()
    if backfill is None:
        return None
    return download_backfill_run(backfill=backfill).status
