"""Background tasks, on the django-tasks backport of Django's Tasks API (`django.tasks` in
Django 6): webhook deliveries, backfills (grants and buyer emails for files added or
changed after the sale), the processing of sales channels' webhooks, and buyers' stamped
copies of PDFs.

Production runs the database backend and one or more `manage.py db_worker` processes; there
is no other server. The task functions only take ids and re-read the rows, so a task that
runs late, twice or after a crash does no harm. The work lives in services; the imports in
the task bodies are function-local because the services import this module (to enqueue).
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
