"""Webhooks: signed JSON about what happens in the store, sent to the merchants' endpoints.

How an event travels:

1. The service that makes a change calls `emit()` inside its own transaction. For each
   active endpoint subscribed to the event type, a `WebhookDelivery` row (the outbox) and a
   django-tasks task row are INSERTed in that same transaction: a rollback takes both away,
   so an event is never sent for a change that did not happen.
2. A worker (`manage.py db_worker`) runs `downloads.tasks.webhook_deliver`, which POSTs the
   payload with an HMAC-SHA256 signature, records every attempt (`WebhookAttempt`) and, on
   failure, enqueues itself again with exponential backoff, giving up a day after the event.
3. The receiver deduplicates on the `Webhook-Id` header (the delivery id, the same on every
   retry of one delivery, and when a worker died mid-attempt and another sends it again,
   `services.workers`). A delivery recorded as delivered is never sent again: an attempt's
   outcome is written only over a delivery still pending.

Where events may go (see `outbound.check_destination`): an https URL without credentials whose host
resolves only to public addresses. This is checked when the endpoint is saved and again before
every attempt (DNS can change), and the attempt connects to the addresses it checked, so a name
that is re-pointed between the check and the connection cannot reach an internal service.
`DOWNLOADS_WEBHOOK_ALLOW_HTTP` and `DOWNLOADS_WEBHOOK_ALLOW_PRIVATE` loosen this for tests and
closed networks.

The hot path (serving a download) must not pay a query to learn that nobody listens, so
`download.served` and `grant.limit_reached` are checked against a per-process memo of the
event types active endpoints subscribe to (see `subscribed_types`).
"""

import hashlib
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.db.models import F
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from .. import tasks
from ..errors import ServiceError
from ..models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, new_grant_token
from .common import UNSET, enqueue_in_transaction, save_fields
from .outbound import DestinationRefused, check_destination, post

logger = logging.getLogger(__name__)

EventType = WebhookEndpoint.EventType
EVENT_TYPES: tuple[str, ...] = tuple(EventType.values)
# Emitted while serving a download: checked against the per-process memo, never the database.
HOT_EVENT_TYPES = frozenset({EventType.DOWNLOAD_SERVED, EventType.GRANT_LIMIT_REACHED})

ID_HEADER = "Webhook-Id"
EVENT_HEADER = "Webhook-Event"
SIGNATURE_HEADER = "Webhook-Signature"
USER_AGENT = "DigitalDownloads-Webhooks/1"
MAX_BACKOFF = timedelta(hours=6)


# --- Signing ----------------------------------------------------------------------------------


def sign(*, secret: str, timestamp: int, body: bytes) -> str:
    """The `Webhook-Signature` header: `t=<unix seconds>,v1=<hex HMAC-SHA256>`.

    The MAC covers `<timestamp>.<raw body>`, so a captured request cannot be replayed later
    with a fresh timestamp, and the receiver must verify the raw bytes before parsing JSON.
    """
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def encode(payload: dict) -> bytes:
    """The exact bytes sent (and signed) for a stored payload."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


# --- Who listens: a per-process memo for the hot path -----------------------------------------

_VERSION_KEY = "downloads:webhooks:subscriptions"


@dataclass
class _Memo:
    types: frozenset | None = None
    version: str | None = None
    loaded_at: float = 0.0


_memo = _Memo()
_memo_lock = threading.Lock()


def _endpoint_types(event_types) -> Iterable[str]:
    return event_types or EVENT_TYPES  # an empty list subscribes to every event


def subscribed_types() -> frozenset:
    """The event types at least one active endpoint subscribes to, without a query per call.

    The set is kept in process memory and reloaded (one SELECT) when either
    - the subscription version in Django's cache changed: saving or deleting an endpoint
      bumps it, so with a shared cache (Redis) every process sees the change at once; or
    - it is older than DOWNLOADS_WEBHOOK_CACHE_SECONDS (default 30): with the default
      per-process memory cache, other processes learn of a new endpoint within that time.
    The trade-off: for that long after an endpoint is created in ANOTHER process without a
    shared cache, `download.served` and `grant.limit_reached` may not be sent. Every other
    event type reads the endpoints from the database when it happens and is never missed.
    """
    version = cache.get(_VERSION_KEY)
    ttl = settings.DOWNLOADS_WEBHOOK_CACHE_SECONDS
    memo = _memo
    if (
        memo.types is not None
        and memo.version == version
        and time.monotonic() - memo.loaded_at < ttl
    ):
        return memo.types
    types = set()
    for event_types in WebhookEndpoint.objects.filter(is_active=True).values_list(
        "event_types", flat=True
    ):
        types.update(_endpoint_types(event_types))
    with _memo_lock:
        _memo.types, _memo.version, _memo.loaded_at = frozenset(types), version, time.monotonic()
    return _memo.types


def subscriptions_changed() -> None:
    """Forget the memo here and tell other processes (through the cache) to reload theirs."""
    cache.set(_VERSION_KEY, uuid.uuid4().hex, None)
    with _memo_lock:
        _memo.types = None


def subscriptions_prime(types: Iterable[str]) -> None:
    """Set the memo to a known set of types (tests start from an empty endpoint table)."""
    with _memo_lock:
        _memo.types = frozenset(types)
        _memo.version = cache.get(_VERSION_KEY)
        _memo.loaded_at = time.monotonic()


@receiver(post_save, sender=WebhookEndpoint, dispatch_uid="webhooks_endpoint_saved")
@receiver(post_delete, sender=WebhookEndpoint, dispatch_uid="webhooks_endpoint_deleted")
def _endpoint_changed(**kwargs) -> None:
    # Now, so this transaction's own events see the endpoint, and again after commit, so a
    # memo reloaded mid-transaction (seeing uncommitted rows) does not outlive a rollback.
    subscriptions_changed()
    transaction.on_commit(subscriptions_changed)


# --- Emitting ---------------------------------------------------------------------------------


def unix(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None


def emit(event_type: str, data: dict | Callable[[], dict]) -> list[WebhookDelivery]:
    """Queue one event for every active endpoint subscribed to it, in the caller's transaction."""
    return emit_many(event_type, [data])


def emit_many(event_type: str, items: Iterable) -> list[WebhookDelivery]:
    """Queue one event per item (a dict, or a callable building it) for every subscriber.

    Hot event types cost nothing when no endpoint subscribes to them; the others cost one
    SELECT of the active endpoints. Deliveries and their tasks are written in the current
    transaction (one is opened if there is none).
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"Unknown webhook event type {event_type!r}")
    if event_type in HOT_EVENT_TYPES and event_type not in subscribed_types():
        return []
    items = list(items)
    if not items:
        return []
    endpoints = [
        endpoint
        for endpoint in WebhookEndpoint.objects.filter(is_active=True).only("id", "event_types")
        if event_type in _endpoint_types(endpoint.event_types)
    ]
    if not endpoints:
        return []
    now = timezone.now()
    deliveries = []
    for item in items:
        data = item() if callable(item) else item
        for endpoint in endpoints:
            delivery = WebhookDelivery(
                endpoint=endpoint, event_type=event_type, created_at=now, next_attempt_at=now
            )
            delivery.payload = {
                "id": str(delivery.id),
                "object": "event",
                "type": event_type,
                "created_at": unix(now),
                "data": data,
            }
            deliveries.append(delivery)
    with transaction.atomic(savepoint=False):
        WebhookDelivery.objects.bulk_create(deliveries)
        for delivery in deliveries:
            enqueue_delivery(delivery_id=delivery.pk)
    return deliveries


def enqueue_delivery(*, delivery_id, run_after: datetime | None = None) -> None:
    """Enqueue the delivery task; with the database backend, inside the current transaction."""
    enqueue_in_transaction(tasks.webhook_deliver, str(delivery_id), run_after=run_after)


# --- Delivering -------------------------------------------------------------------------------


def backoff(attempts: int) -> timedelta:
    """Wait before the next try after `attempts` failures: base × 2^(attempts-1), ≤ 6 hours."""
    base = settings.DOWNLOADS_WEBHOOK_RETRY_BASE
    return min(timedelta(seconds=base * 2 ** max(attempts - 1, 0)), MAX_BACKOFF)


def webhook_delivery_attempt(*, delivery_id) -> WebhookDelivery | None:
    """Make one attempt at a pending delivery, log it, and schedule the next one if it failed.

    Runs in the worker, never in a request. No transaction is held during the HTTP call.
    """
    delivery = (
        WebhookDelivery.objects.select_related("endpoint")
        .filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING)
        .first()
    )
    if delivery is None:
        return None
    # A task superseded by a later schedule (a manual retry moved next_attempt_at) stands down.
    if delivery.next_attempt_at and delivery.next_attempt_at > timezone.now() + timedelta(
        seconds=5
    ):
        return delivery
    endpoint = delivery.endpoint
    body = encode(delivery.payload)
    if endpoint.is_active:
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            ID_HEADER: str(delivery.pk),
            EVENT_HEADER: delivery.event_type,
            SIGNATURE_HEADER: sign(secret=endpoint.secret, timestamp=timestamp, body=body),
        }
        started = time.monotonic()
        status_code, error = post(endpoint.url, body, headers, settings.DOWNLOADS_WEBHOOK_TIMEOUT)
        duration_ms = int((time.monotonic() - started) * 1000)
    else:
        status_code, error, duration_ms = None, "The endpoint is disabled.", 0

    now = timezone.now()
    ok = status_code is not None and 200 <= status_code < 300
    error = "" if ok else (error or f"HTTP {status_code}")
    attempts = delivery.attempts + 1
    give_up_at = delivery.created_at + timedelta(seconds=settings.DOWNLOADS_WEBHOOK_GIVE_UP_AFTER)
    with transaction.atomic():
        WebhookAttempt.objects.create(
            delivery=delivery,
            at=now,
            status_code=status_code,
            error=error[:500],
            duration_ms=duration_ms,
        )
        delivery.attempts = attempts
        retry_at = None
        if ok:
            delivery.status = WebhookDelivery.Status.DELIVERED
            delivery.delivered_at = now
            delivery.next_attempt_at = None
        else:
            next_at = now + backoff(attempts)
            if next_at > give_up_at or not endpoint.is_active:
                delivery.status = WebhookDelivery.Status.FAILED
                delivery.next_attempt_at = None
            else:
                delivery.next_attempt_at = retry_at = next_at
        # Written only over a delivery still pending: another run of it (a task taken over
        # from a worker that seemed dead, services.workers; a manual retry) may have recorded
        # it delivered meanwhile, and a failure written over that would send it once more.
        recorded = WebhookDelivery.objects.filter(
            pk=delivery.pk, status=WebhookDelivery.Status.PENDING
        ).update(
            attempts=F("attempts") + 1,
            status=delivery.status,
            delivered_at=delivery.delivered_at,
            next_attempt_at=delivery.next_attempt_at,
        )
        if recorded and retry_at is not None:
            enqueue_delivery(delivery_id=delivery.pk, run_after=retry_at)
    if not recorded:
        delivery.refresh_from_db(fields=["status", "attempts", "delivered_at", "next_attempt_at"])
    if not ok:
        logger.info(
            "Webhook %s to %s failed (attempt %s): %s", delivery.pk, endpoint.url, attempts, error
        )
    return delivery


# --- Payloads ---------------------------------------------------------------------------------


def order_data(order) -> dict:
    return {
        "object": "order",
        "id": str(order.pk),
        "number": order.number,
        "email": order.email,
        "status": order.status,
        "channel": order.channel,
        "external_id": order.external_id,
        "currency": order.currency,
        "subtotal": order.subtotal,
        "tax": order.tax,
        "total": order.total,
        "refunded_total": order.refunded_total,
        "placed_at": unix(order.placed_at),
        "paid_at": unix(order.paid_at),
        "refunded_at": unix(order.refunded_at),
        "disputed_at": unix(order.disputed_at),
    }


def grant_data(grant) -> dict:
    return {
        "object": "grant",
        "id": str(grant.pk),
        "order": str(grant.order_id),
        "line": str(grant.line_id) if grant.line_id else None,
        "download": str(grant.download_id),
        "download_count": grant.download_count,
        "download_limit": grant.download_limit,
        "expires_at": unix(grant.expires_at),
        "revoked_at": unix(grant.revoked_at),
        "last_downloaded_at": unix(grant.last_downloaded_at),
    }


def served_data(grant, *, at, ip, user_agent) -> dict:
    return {
        "object": "download_event",
        "grant": str(grant.pk),
        "order": str(grant.order_id),
        "download": str(grant.download_id),
        "at": unix(at),
        "ip": ip or None,
        "user_agent": (user_agent or "")[:512],
        "download_count": grant.download_count,
        "download_limit": grant.download_limit,
    }


def version_data(version) -> dict:
    media = version.media
    return {
        "object": "download_version",
        "id": str(version.pk),
        "download": str(version.download_id),
        "media": str(version.media_id) if version.media_id else None,
        "filename": media.filename if media else None,
        "byte_size": media.byte_size if media else None,
        "sha256": media.sha256 if media else None,
        "url": version.url,
        "changelog": version.changelog,
        "notify_buyers": version.notify_buyers,
        "created_at": unix(version.created_at),
    }


def license_key_data(key, *, instance=None, instance_id=None) -> dict:
    data = {
        "object": "license_key",
        "id": str(key.pk),
        "key": key.key,
        "status": key.status,
        "order": str(key.order_id),
        "line": str(key.line_id),
        "product": str(key.product_id),
        "activation_limit": key.activation_limit,
        "activation_usage": key.activation_usage,
        "expires_at": unix(key.expires_at),
        "disabled_at": unix(key.disabled_at),
        "created_at": unix(key.created_at),
    }
    if instance is not None:
        data["instance"] = {
            "id": str(instance.pk),
            "name": instance.name,
            "created_at": unix(instance.created_at),
        }
    elif instance_id is not None:
        data["instance"] = {"id": str(instance_id)}
    return data


def emit_grants(event_type: str, grants: Iterable) -> None:
    """Emit one event per grant (grant.created, grant.revoked, grant.limit_reached)."""
    emit_many(event_type, [partial(grant_data, grant) for grant in grants])


# --- Endpoints (admin and API) ---


def _webhook_validate(*, url=UNSET, event_types=UNSET) -> dict:
    clean = {}
    if url is not UNSET:
        url = (url or "").strip()
        try:
            URLValidator(schemes=["http", "https"])(url)
        except ValidationError as exc:
            raise ServiceError(
                "Enter a valid http or https URL.",
                code="webhook_endpoint.invalid",
                reason="invalid",
                attribute="url",
            ) from exc
        if len(url) > 2048:
            raise ServiceError(
                "The URL is too long.",
                code="webhook_endpoint.invalid",
                reason="max_length",
                attribute="url",
            )
        try:
            check_destination(url)
        except DestinationRefused as exc:
            raise ServiceError(
                exc.message,
                code="webhook_endpoint.invalid",
                reason="not_allowed",
                attribute="url",
            ) from exc
        clean["url"] = url
    if event_types is not UNSET:
        if event_types is None:
            event_types = []
        if isinstance(event_types, str) or not all(isinstance(t, str) for t in event_types):
            raise ServiceError(
                "event_types is a list of event type names.",
                code="webhook_endpoint.invalid",
                reason="invalid",
                attribute="event_types",
            )
        unknown = sorted(set(event_types) - set(EVENT_TYPES))
        if unknown:
            raise ServiceError(
                f"Unknown event types: {', '.join(unknown)}. Known: {', '.join(EVENT_TYPES)}.",
                code="webhook_endpoint.invalid",
                reason="invalid_choice",
                attribute="event_types",
            )
        clean["event_types"] = list(dict.fromkeys(event_types))
    return clean


def webhook_endpoint_create(
    *, url: str, event_types=(), description: str = "", is_active: bool = True
) -> WebhookEndpoint:
    """Register a receiver; it gets a fresh 256-bit signing secret. No event types: all."""
    clean = _webhook_validate(url=url, event_types=event_types)
    return WebhookEndpoint.objects.create(
        description=(description or "")[:255], is_active=is_active, **clean
    )


def webhook_endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    url=UNSET,
    event_types=UNSET,
    description=UNSET,
    is_active=UNSET,
) -> WebhookEndpoint:
    """Change an endpoint's URL, event types, description or active flag."""
    clean = _webhook_validate(url=url, event_types=event_types)
    if description is not UNSET:
        clean["description"] = (description or "")[:255]
    if is_active is not UNSET:
        clean["is_active"] = bool(is_active)
    save_fields(endpoint, clean)
    return endpoint


def webhook_endpoint_rotate_secret(*, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """Give the endpoint a new signing secret; pending retries are signed with it."""
    endpoint.secret = new_grant_token()
    endpoint.save(update_fields=["secret", "updated_at"])
    return endpoint


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """Delete an endpoint and its delivery log."""
    endpoint.delete()


def webhook_delivery_retry(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Queue one more attempt now (a failed delivery gets one try; a pending one is hurried)."""
    if delivery.status == WebhookDelivery.Status.DELIVERED:
        raise ServiceError("This delivery already succeeded.", code="webhook_delivery.delivered")
    now = timezone.now()
    with transaction.atomic():
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=WebhookDelivery.Status.PENDING, next_attempt_at=now
        )
        enqueue_delivery(delivery_id=delivery.pk)
    delivery.status, delivery.next_attempt_at = WebhookDelivery.Status.PENDING, now
    return delivery
