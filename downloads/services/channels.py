"""Sales channels: the inbox of webhooks from where the sale happened (Shopify, Stripe).

The mirror of the webhook outbox (services/webhooks.py). A receiver verifies the channel's
signature over the raw body, then `channel_event_receive` stores the event and enqueues its
processing in the same transaction, and the receiver answers 2xx at once; a worker runs
`channel_event_process`, which hands the event to its channel's handler
(`services.shopify.event_process`, `services.stripe_checkout.event_process`).

Rules owned here: nothing is stored before it is verified (receivers call this module only
after verifying); an event is stored once per (channel, event id), so a redelivery is
answered 2xx and changes nothing; processing is idempotent and may run any number of times,
in any order of events (the handlers go through `order_intake`, one order per channel and
external id); an event that could not be matched to the catalogue stays `unmatched`, one
that failed stays `failed` with the reason, and either is processed again from the admin
(`channel_event_process_again`) without asking the channel to resend it; an event that
waits for another (a refund delivered before its order's payment) is processed again when
that one is (`channel_events_wake`).
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from .. import tasks
from ..errors import ServiceError
from ..models import ChannelEvent, Order
from .common import enqueue_in_transaction

logger = logging.getLogger(__name__)

Status = ChannelEvent.Status

# Where each channel's handler lives; imported on first use, because the handlers import
# the order services, which import this package's other modules.
HANDLERS = {
    Order.Channel.SHOPIFY: "downloads.services.shopify.event_process",
    Order.Channel.STRIPE: "downloads.services.stripe_checkout.event_process",
}


@dataclass(frozen=True)
class Outcome:
    """What a handler made of an event: its new status, the order it concerns, and why
    (for `unmatched`, `ignored` and `failed`)."""

    status: str
    order: Order | None = None
    error: str = ""


def _handler(channel: str) -> Callable[[ChannelEvent], Outcome]:
    return import_string(HANDLERS[channel])


def channel_event_receive(
    *, channel: str, event_id: str, event_type: str, payload: dict
) -> tuple[ChannelEvent, bool]:
    """Store a verified event once and enqueue its processing; (event, created).

    A second delivery of the same (channel, event id) returns the stored event and enqueues
    nothing. Safe under concurrency: the unique constraint decides which delivery stores it.
    """
    if channel not in HANDLERS:
        raise ValueError(f"not a channel with webhooks: {channel!r}")
    event_id = str(event_id)[:255]
    existing = ChannelEvent.objects.filter(channel=channel, event_id=event_id).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            event = ChannelEvent.objects.create(
                channel=channel, event_id=event_id, type=str(event_type)[:100], payload=payload
            )
            enqueue_in_transaction(tasks.channel_event_process, str(event.pk))
    except IntegrityError:
        return ChannelEvent.objects.get(channel=channel, event_id=event_id), False
    return event, True


def channel_event_process(*, event_id, again: bool = False) -> ChannelEvent | None:
    """Process a stored event (the task's work). One that is already processed or ignored
    is left alone unless `again`; the handlers are idempotent either way. The event row is
    locked while its handler runs, so two workers never process one event at once."""
    with transaction.atomic():
        event = ChannelEvent.objects.select_for_update().filter(pk=event_id).first()
        if event is None:
            return None
        if event.status in (Status.PROCESSED, Status.IGNORED) and not again:
            return event
        event.attempts += 1
        try:
            with transaction.atomic():
                outcome = _handler(event.channel)(event)
        except ServiceError as exc:
            outcome = Outcome(Status.FAILED, error=f"{exc.code}: {exc.message}")
        except Exception as exc:  # a bug or bad data must not lose the event: keep it failed
            logger.exception("channel event %s failed", event.pk)
            outcome = Outcome(Status.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000])
        event.status = outcome.status
        event.error = outcome.error
        if outcome.order is not None:
            event.order = outcome.order
        event.processed_at = timezone.now()
        event.save(update_fields=["status", "error", "order", "attempts", "processed_at"])
    return event


def channel_event_process_again(*, event: ChannelEvent) -> ChannelEvent:
    """Process an event again now (the admin's *Process again*), whatever its status: after
    mapping a product, an `unmatched` order gets its missing lines and files."""
    processed = channel_event_process(event_id=event.pk, again=True)
    if processed is None:
        raise ServiceError("The event no longer exists.", code="channel_event.not_found")
    return processed


def channel_events_wake(*, channel: str, types, **payload_lookup) -> None:
    """Enqueue the processing of the channel's events of `types` that wait (received or
    unmatched) and match `payload_lookup` (e.g. `payload__order_id=...`): now, in this
    transaction, and again after it commits, for one stored meanwhile (whose own
    processing looked before this transaction's order was committed)."""

    def enqueue():
        waiting = ChannelEvent.objects.filter(
            channel=channel,
            type__in=list(types),
            status__in=(Status.RECEIVED, Status.UNMATCHED),
            **payload_lookup,
        ).values_list("pk", flat=True)
        for pk in waiting:
            enqueue_in_transaction(tasks.channel_event_process, str(pk))

    enqueue()
    transaction.on_commit(enqueue, robust=True)
