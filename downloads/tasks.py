"""Background tasks, on the django-tasks backport of Django's Tasks API (`django.tasks` in
Django 6): webhook deliveries, backfills (grants and buyer emails for files added or
changed after the sale), the processing of sales channels' webhooks, and buyers' stamped
copies of PDFs.

Production runs the database backend and one or more `manage.py db_worker` processes; there
is no other server. The task functions only take ids and re-read the rows, so a task that
runs late, twice or after a crash does no harm: a task whose worker died is run again by
another worker (`services.workers`), and `RUN_TIMEOUTS` says how long each may take. The
work lives in services; the imports in the task bodies are function-local because the
services import this module (to enqueue).
"""

try:  # Django 6 ships the Tasks API; on Django 5.2 the django-tasks backport provides it.
    from django.tasks import task  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the Django version
    from django_tasks import task

from .models import Backfill


@task
def webhook_deliver(delivery_id: str) -> str | None:
    """One attempt at a webhook delivery; schedules its own retry on failure."""
    from .services.webhooks import webhook_delivery_attempt

    delivery = webhook_delivery_attempt(delivery_id=delivery_id)
    return delivery.status if delivery is not None else None


@task
def backfill_run(backfill_id: str) -> str | None:
    """Run or resume a backfill (grants for existing orders, and/or buyer emails)."""
    from .services.backfills import backfill_run as run

    backfill = Backfill.objects.filter(pk=backfill_id).first()
    if backfill is None:
        return None
    return run(backfill=backfill).status


@task
def channel_event_process(event_id: str) -> str | None:
    """Process one stored sales-channel event (a Shopify or Stripe webhook)."""
    from .services.channels import channel_event_process as process

    event = process(event_id=event_id)
    return event.status if event is not None else None


@task
def stamped_copy_make(copy_id: str) -> str | None:
    """Make one buyer's stamped copy of a PDF."""
    from .services.stamping import stamped_copy_make as make

    copy = make(copy_id=copy_id)
    return copy.status if copy is not None else None


# Seconds one run of each task may take. A run still RUNNING after that is presumed stuck even
# on a worker that still beats (a call that hangs), and it is the only sign of a stuck run of
# a worker that writes no heartbeat; services.workers then gives it to another worker. Far
# above what the work takes, because a run taken over while the first is merely slow runs
# twice (harmless here, but wasted, and a webhook would reach its receiver twice with the
# same Webhook-Id).
RUN_TIMEOUTS = {
    webhook_deliver.module_path: 5 * 60,  # one POST with a DOWNLOADS_WEBHOOK_TIMEOUT of 10 s
    channel_event_process.module_path: 15 * 60,
    stamped_copy_make.module_path: 30 * 60,  # a 500-page PDF takes 0.1 s (README, Benchmarks)
    # 200,000 orders take about 30 s; a run taken over resumes at the batch in flight.
    backfill_run.module_path: 6 * 3600,
}
DEFAULT_RUN_TIMEOUT = 3600  # a task of another module (bench, a future one)


def stamped_copy_given_up(copy_id: str) -> None:
    """The worker making this copy died too often: deliver the file unstamped, not never."""
    from .services.stamping import stamped_copy_give_up

    stamped_copy_give_up(copy_id=copy_id, reason="its worker stopped before the copy was made")


# What to do with a task's rows when the recovery gives the task up (`services.workers`):
# called with the task's arguments. A task not listed leaves its rows as they are (a webhook
# delivery stays pending and can be retried from the admin).
GIVEN_UP = {
    stamped_copy_make.module_path: stamped_copy_given_up,
}
